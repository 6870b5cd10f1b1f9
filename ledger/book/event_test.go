package book

import (
	"bytes"
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/heed/heed/ledger"
	"github.com/heed/heed/ledger/mem"
	"github.com/heed/heed/ledger/pii"
)

// TestEventIsWhatSealingMakes: the event a row is recorded as is, byte
// for byte, what pii.Sealing makes of ledger.NewEvent's, so rows recorded
// either way are the same writes.
func TestEventIsWhatSealingMakes(t *testing.T) {
	if got := ledger.PersonalFields(ledger.TypeRelationshipStarted); !slices.Equal(got, []string{"number"}) {
		t.Fatalf("RelationshipStarted's personal fields are %v: event seals the number only", got)
	}
	keys, err := pii.OpenKeys(filepath.Join(t.TempDir(), "keys.db"), bytes.Repeat([]byte{3}, 32))
	if err != nil {
		t.Fatal(err)
	}
	defer keys.Close()
	st := mem.New()
	defer st.Close()
	im, err := New(Config{Store: st, Keys: keys, Tenant: "acme", Actor: "importer", Subject: func(string) (string, string, error) { return "", "", nil }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	at := time.Date(2025, 6, 1, 0, 0, 0, 0, time.FixedZone("CST", 8*3600))
	exp := at.AddDate(1, 0, 0)
	cases := []struct {
		name    string
		payload any
	}{
		{"with a plan, so the number", &ledger.RelationshipStarted{ContractRef: "P-1", Product: "车险", StartsAt: at.UTC(), ExpiresAt: &exp, Plan: "renewal", Number: "+8613800138000"}},
		{"without a plan", &ledger.RelationshipStarted{ContractRef: "P-2", StartsAt: at.UTC(), ExpiresAt: &exp}},
		{"a renewal", &ledger.RelationshipRenewed{ContractRef: "P-1", ExpiresAt: exp.AddDate(1, 0, 0)}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			subject := "subject-" + string(rune('a'+i))
			id := EventID("acme", subject)
			prepared, err := keys.Prepare(ctx, []string{pii.Owner("acme", subject)})
			if err != nil {
				t.Fatal(err)
			}
			got, err := im.event(ctx, subject, at, tc.payload, id, prepared)
			if err != nil {
				t.Fatal(err)
			}
			want, err := ledger.NewEvent("acme", subject, at, tc.payload)
			if err != nil {
				t.Fatal(err)
			}
			want.ID, want.Actor = id, "importer"
			stream := ledger.ContactStream("acme", subject)
			if _, err := pii.Seal(st, keys).Append(ctx, stream, ledger.NoStream(), []ledger.Event{want}); err != nil {
				t.Fatal(err)
			}
			stored, err := st.ReadStream(ctx, stream, 1, 0)
			if err != nil {
				t.Fatal(err)
			}
			if !ledger.SameContent(&stored[0], &got) || !bytes.Equal(stored[0].Data, got.Data) || !bytes.Equal(stored[0].PII, got.PII) {
				t.Fatalf("the importer's event differs from the Sealing's:\n%s %x\n%s %x", got.Data, got.PII, stored[0].Data, stored[0].PII)
			}
		})
	}
}

package pii

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/heed/heed/ledger"
	"github.com/heed/heed/ledger/mem"
)

const marker = "MARK-7f3a9c"

// personalEvents has an event of every type with personal fields, each
// field holding the marker.
func personalEvents(t *testing.T, tenant, subject string) []ledger.Event {
	t.Helper()
	now := time.Now()
	payloads := []any{
		ledger.ConsentGranted{Purposes: []string{"service"}, Channels: []string{"sms"}, Source: "web_form",
			Evidence: ledger.Evidence{Text: "本人张伟 " + marker, URL: "https://x.example/" + marker, RecordingID: marker, ContentHash: "sha256:00"}},
		ledger.ConsentWithdrawn{All: true, Via: "sms_keyword", RawText: "TD " + marker},
		ledger.RelationshipEnded{ContractRef: "POL-1", EndedAt: now, Reason: marker},
		ledger.ContactMade{Line: "L1", Channel: "call", Purpose: "service", Campaign: marker, Outcome: "said " + marker},
		ledger.ComplaintReceived{Source: "customer", Reason: marker},
		ledger.SuppressionListed{Scope: "tenant", List: "dnc", Source: marker},
		ledger.SuppressionLifted{Scope: "tenant", List: "dnc", Reason: marker},
	}
	var out []ledger.Event
	for _, p := range payloads {
		e, err := ledger.NewEvent(tenant, subject, now, p)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

func TestSealingMovesEveryPersonalFieldIntoPII(t *testing.T) {
	ctx := context.Background()
	keys, _ := openKeys(t)
	st := Seal(mem.New(), keys)
	defer st.Close()
	for _, e := range personalEvents(t, "acme", "s1") {
		t.Run(e.Type, func(t *testing.T) {
			stored, err := st.Append(ctx, ledger.ContactStream("acme", "s1"), ledger.Any(), []ledger.Event{e})
			if err != nil {
				t.Fatal(err)
			}
			leaf, err := stored[0].Leaf()
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(leaf, []byte(marker)) || bytes.Contains(leaf, []byte("张伟")) {
				t.Fatalf("the stored leaf holds personal text in clear: %s", leaf)
			}
			if len(stored[0].PII) == 0 {
				t.Fatal("nothing sealed")
			}
			fields, err := keys.OpenEvent(ctx, &stored[0])
			if err != nil {
				t.Fatal(err)
			}
			want := ledger.PersonalFields(e.Type)
			if len(fields) != len(want) {
				t.Fatalf("opened %v, want every one of %v", fields, want)
			}
			for _, name := range want {
				if !strings.Contains(fields[name], marker) {
					t.Fatalf("field %s opened as %q", name, fields[name])
				}
			}
			if err := ledger.Validate(&stored[0]); err != nil {
				t.Fatalf("the stripped event no longer validates: %v", err)
			}
		})
	}
}

func TestSealingLeavesOutcomeCodesAndPlainEventsAlone(t *testing.T) {
	ctx := context.Background()
	keys, _ := openKeys(t)
	st := Seal(mem.New(), keys)
	defer st.Close()
	e, _ := ledger.NewEvent("acme", "s1", time.Now(), ledger.ContactMade{Line: "L1", Channel: "call", Purpose: "service", Outcome: "answered"})
	data := append([]byte(nil), e.Data...)
	stored, err := st.Append(ctx, ledger.ContactStream("acme", "s1"), ledger.Any(), []ledger.Event{e})
	if err != nil {
		t.Fatal(err)
	}
	if len(stored[0].PII) != 0 || !bytes.Equal(stored[0].Data, data) {
		t.Fatalf("a contact with an outcome code was changed: data %s, pii %d bytes", stored[0].Data, len(stored[0].PII))
	}
	// No key was made for it.
	if w, err := keys.store.Get(ctx, Owner("acme", "s1")); err != nil || w != nil {
		t.Fatalf("a key was created for an event with nothing to seal: %v", err)
	}
}

func TestSealingRefusesWhatItCannotSeal(t *testing.T) {
	ctx := context.Background()
	keys, _ := openKeys(t)
	st := Seal(mem.New(), keys)
	defer st.Close()
	noSubject, _ := ledger.NewEvent("acme", "", time.Now(), ledger.ComplaintReceived{Source: "customer", Reason: marker})
	both, _ := ledger.NewEvent("acme", "s1", time.Now(), ledger.ComplaintReceived{Source: "customer", Reason: marker})
	both.PII = []byte{1, 2, 3}
	dup, _ := ledger.NewEvent("acme", "s1", time.Now(), ledger.ComplaintReceived{Source: "customer"})
	dup.Data = []byte(`{"source":"customer","reason":"a","Reason":"` + marker + `"}`)
	for name, e := range map[string]ledger.Event{"no subject": noSubject, "sealed and in data": both, "case-variant member": dup} {
		if _, err := st.Append(ctx, "contact-acme-s1", ledger.Any(), []ledger.Event{e}); !errors.Is(err, ledger.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
	if h, _ := st.Head(ctx); h != 0 {
		t.Fatalf("head %d after refused appends", h)
	}
}

// A retried append of the same event is a no-op: sealing is deterministic
// per event id and content, so the store sees identical content.
func TestSealingRetryIsTheSameWrite(t *testing.T) {
	ctx := context.Background()
	keys, _ := openKeys(t)
	st := Seal(mem.New(), keys)
	defer st.Close()
	e := personalEvents(t, "acme", "s1")[0]
	first, err := st.Append(ctx, ledger.ContactStream("acme", "s1"), ledger.Any(), []ledger.Event{e})
	if err != nil {
		t.Fatal(err)
	}
	again, err := st.Append(ctx, ledger.ContactStream("acme", "s1"), ledger.Any(), []ledger.Event{e})
	if err != nil || again[0].Position != first[0].Position {
		t.Fatalf("retry = %v, %v; want the original position %d", again, err, first[0].Position)
	}
	// Different content under the same id is still a conflict.
	changed := e
	changed.Data = bytes.Replace(e.Data, []byte(marker), []byte("other"), 1)
	if _, err := st.Append(ctx, ledger.ContactStream("acme", "s1"), ledger.Any(), []ledger.Event{changed}); !errors.Is(err, ledger.ErrIDConflict) {
		t.Fatalf("changed personal text under the same id = %v, want ErrIDConflict", err)
	}
	// Two events with equal text get different ciphertexts.
	other := e
	other.ID = ledger.NewID()
	second, err := st.Append(ctx, ledger.ContactStream("acme", "s1"), ledger.Any(), []ledger.Event{other})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(second[0].PII, first[0].PII) {
		t.Fatal("two events with the same text share a ciphertext")
	}
}

// A tenant's erasure destroys its own key for the subject only; erasing
// everywhere destroys every tenant's.
func TestErasureIsPerTenant(t *testing.T) {
	ctx := context.Background()
	keys, _ := openKeys(t)
	st := Seal(mem.New(), keys)
	defer st.Close()
	const subject = "s1"
	stored := map[string]ledger.Event{}
	for _, tenant := range []string{"acme", "globex"} {
		out, err := st.Append(ctx, ledger.ContactStream(tenant, subject), ledger.Any(), personalEvents(t, tenant, subject)[:1])
		if err != nil {
			t.Fatal(err)
		}
		stored[tenant] = out[0]
	}
	opens := func(tenant string) error {
		e := stored[tenant]
		_, err := keys.OpenEvent(ctx, &e)
		return err
	}
	ev, err := EraseSubject(ctx, st, keys, subject, "acme", "key-a", "customer_request")
	if err != nil {
		t.Fatal(err)
	}
	if ev.Stream != ledger.ContactStream("acme", subject) || ev.Tenant != "acme" {
		t.Fatalf("erasure recorded in %s for %q, want acme's contact stream", ev.Stream, ev.Tenant)
	}
	if err := opens("acme"); !errors.Is(err, ErrErased) {
		t.Fatalf("acme's data after acme's erasure: %v, want ErrErased", err)
	}
	if err := opens("globex"); err != nil {
		t.Fatalf("globex's data after acme's erasure: %v, want it to open", err)
	}
	evs, err := EraseEverywhere(ctx, st, keys, subject, []string{"acme", "globex"}, "customer", "customer_request")
	if err != nil || len(evs) != 3 {
		t.Fatalf("EraseEverywhere = %d events, %v", len(evs), err)
	}
	if !evs[1].OccurredAt.Equal(ev.OccurredAt) || evs[1].Actor != "customer" {
		t.Fatalf("the customer's erasure at acme: at %v by %q, want when acme's key was destroyed (%v), by the customer", evs[1].OccurredAt, evs[1].Actor, ev.OccurredAt)
	}
	if again, err := EraseEverywhere(ctx, st, keys, subject, []string{"acme", "globex"}, "customer", "customer_request"); err != nil || again[2].Position != evs[2].Position {
		t.Fatalf("a retried erasure everywhere appended again: %v", err)
	}
	if err := opens("globex"); !errors.Is(err, ErrErased) {
		t.Fatalf("globex's data after erasing everywhere: %v, want ErrErased", err)
	}
}

// BenchmarkSealingAppend is what the sealing store adds to an append: for
// a contact with an outcome code, reading Data; for a consent with
// evidence, moving three fields out and sealing them (key already made).
func BenchmarkSealingAppend(b *testing.B) {
	keys, err := OpenKeys(b.TempDir()+"/keys.db", key(9))
	if err != nil {
		b.Fatal(err)
	}
	defer keys.Close()
	st := Seal(discard{}, keys)
	now := time.Now()
	for _, c := range []struct {
		name string
		p    any
	}{
		{"contact-outcome-code", ledger.ContactMade{Line: "L1", Channel: "call", Purpose: "service", Outcome: "answered"}},
		{"consent-evidence", ledger.ConsentGranted{Purposes: []string{"service"}, Channels: []string{"sms"}, Source: "web_form",
			Evidence: ledger.Evidence{Text: "本人张伟同意接收保单到期提醒", URL: "https://forms.example/c/123", RecordingID: "rec-42", ContentHash: "sha256:0f"}}},
	} {
		e, err := ledger.NewEvent("acme", "s1", now, c.p)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := st.Append(context.Background(), "contact-acme-s1", ledger.Any(), []ledger.Event{e}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// discard is a store that accepts every append and keeps nothing.
type discard struct{ ledger.Store }

func (discard) Append(_ context.Context, _ string, _ ledger.Expected, evs []ledger.Event) ([]ledger.Event, error) {
	return evs, nil
}

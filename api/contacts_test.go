package api

import (
	"context"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/heed/heed/ledger"
	"github.com/heed/heed/ledger/bolt"
)

func TestLeafKeysMatchDecodedEvent(t *testing.T) {
	at := time.Date(2026, 11, 27, 4, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		e    ledger.Event
		ok   bool // false: the index decodes the leaf instead
	}{
		{"contact", ledger.Event{ID: "e1", Type: ledger.TypeContactMade, Tenant: "acme", Subject: "s1",
			Stream: ledger.ContactStream("acme", "s1"), Revision: 1, Position: 7}, true},
		{"no tenant", ledger.Event{ID: "e2", Type: ledger.TypeSubjectErased, Subject: "s1",
			Stream: ledger.SubjectStream("s1"), Revision: 3, Position: 12345678901}, true},
		{"line stream", ledger.Event{ID: "e3", Type: ledger.TypeContactMade, Tenant: "acme",
			Stream: ledger.LineStream("acme", "1069"), Revision: 2, Position: 9}, true},
		{"another tenant's stream", ledger.Event{ID: "e4", Type: ledger.TypeContactMade, Tenant: "acme", Subject: "s1",
			Stream: ledger.ContactStream("acme-s1", "s1"), Revision: 1, Position: 10}, true},
		{"escaped tenant", ledger.Event{ID: "e5", Type: ledger.TypeContactMade, Tenant: `a"b`, Subject: "s1",
			Stream: ledger.ContactStream(`a"b`, "s1"), Revision: 1, Position: 11}, false},
		{"unicode subject", ledger.Event{ID: "e6", Type: ledger.TypeContactMade, Tenant: "acme", Subject: "顾客",
			Stream: ledger.ContactStream("acme", "顾客"), Revision: 4, Position: 12}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := tc.e
			e.OccurredAt, e.RecordedAt, e.Schema = at, at, 1
			e.Data = []byte(`{"stream":"contact-x-y","revision":1,"position":99,"tenant":"zz"}`)
			leaf, err := e.Leaf()
			if err != nil {
				t.Fatal(err)
			}
			k, ok := leafKeys(leaf)
			if ok != tc.ok {
				t.Fatalf("leafKeys ok = %v, want %v (%s)", ok, tc.ok, leaf)
			}
			if !ok {
				return
			}
			want := e.Tenant != "" && e.Subject != ""
			if string(k.tenant) != e.Tenant || string(k.subject) != e.Subject || string(k.stream) != e.Stream ||
				k.position != e.Position || k.contact() != want {
				t.Fatalf("leafKeys = %q %q %q %d contact=%v; event %q %q %q %d contact=%v",
					k.tenant, k.subject, k.stream, k.position, k.contact(), e.Tenant, e.Subject, e.Stream, e.Position, want)
			}
		})
	}
}

// TestContactIndexSameFromLeavesAndEvents: on a bolt log, the index built
// from undecoded leaves equals the one built from followed events.
func TestContactIndexSameFromLeavesAndEvents(t *testing.T) {
	ctx := context.Background()
	st, err := bolt.Open(filepath.Join(t.TempDir(), "log.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Now()
	for i := range 300 {
		tenant, subject := fmt.Sprint("t", i%3), fmt.Sprint("s", i%40)
		var p any = ledger.ContactMade{Channel: ledger.ChannelFlash, Purpose: ledger.PurposeService, Line: "1069"}
		stream := ledger.ContactStream(tenant, subject)
		if i%7 == 0 {
			p, stream = ledger.SubjectErased{Reason: "asked"}, ledger.SubjectStream(subject)
		}
		e, err := ledger.NewEvent(tenant, subject, now, p)
		if err != nil {
			t.Fatal(err)
		}
		if i%7 == 0 {
			e.Tenant = ""
		}
		if _, err := st.Append(ctx, stream, ledger.Any(), []ledger.Event{e}); err != nil {
			t.Fatal(err)
		}
	}
	followed, leaved := newIndex(), newIndex()
	leaved.leaves = st
	for _, x := range []*index{followed, leaved} {
		ctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); _ = x.run(ctx, st) }()
		if _, err := x.of(ctx, st, "s1"); err != nil {
			t.Fatal(err)
		}
		cancel()
		<-done
	}
	head, _ := st.Head(ctx)
	if followed.seen.Load() != head || leaved.seen.Load() != head {
		t.Fatalf("seen %d and %d, head %d", followed.seen.Load(), leaved.seen.Load(), head)
	}
	if leaved.decoded != 0 {
		t.Fatalf("%d of %d leaves were decoded", leaved.decoded, head)
	}
	if f, l := followed.tenants.dump(), leaved.tenants.dump(); len(f) != 40 || !maps.EqualFunc(f, l, slices.Equal) {
		t.Fatalf("from events %v\nfrom leaves %v", f, l)
	}
}

// BenchmarkContactIndex: the index catching up on a bolt log, from
// followed (decoded) events and from undecoded leaves; ns/event.
func BenchmarkContactIndex(b *testing.B) {
	ctx := context.Background()
	st, err := bolt.Open(filepath.Join(b.TempDir(), "log.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	const n = 20000
	batch := make([]ledger.Event, 0, 100)
	for i := range n {
		tenant, subject := fmt.Sprint("tenant", i%4), fmt.Sprintf("subject-%06d", i%5000)
		e, err := ledger.NewEvent(tenant, subject, time.Now(), ledger.ContactMade{Channel: ledger.ChannelCall,
			Purpose: ledger.PurposeService, Line: "10690001"})
		if err != nil {
			b.Fatal(err)
		}
		batch = append(batch, e)
		if len(batch) == cap(batch) {
			// One stream per batch keeps the setup quick; streams do not matter to the index.
			if _, err := st.Append(ctx, ledger.ContactStream(tenant, subject), ledger.Any(), batch); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	for _, mode := range []string{"follow", "leaves"} {
		b.Run(mode, func(b *testing.B) {
			for b.Loop() {
				x := newIndex()
				if mode == "leaves" {
					x.leaves = st
				}
				ctx, cancel := context.WithCancel(ctx)
				done := make(chan struct{})
				go func() { defer close(done); _ = x.run(ctx, st) }()
				for x.seen.Load() < n {
					time.Sleep(100 * time.Microsecond)
				}
				cancel()
				<-done
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/event")
		})
	}
}

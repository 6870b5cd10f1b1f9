package contactindex

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/heed/heed/ledger"
	"github.com/heed/heed/ledger/bolt"
	"github.com/heed/heed/ledger/mem"
)

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
	followed, leaved := New(st, nil), New(st, st)
	for _, x := range []*Index{followed, leaved} {
		ctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); _ = x.Run(ctx) }()
		if _, err := x.Tenants(ctx, "s1"); err != nil {
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
				x := New(st, nil)
				if mode == "leaves" {
					x = New(st, st)
				}
				ctx, cancel := context.WithCancel(ctx)
				done := make(chan struct{})
				go func() { defer close(done); _ = x.Run(ctx) }()
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

// TestIndexWaitHonoursContext: a request waiting for the contact index to
// reach the head stops waiting when the request ends.
func TestIndexWaitHonoursContext(t *testing.T) {
	st := mem.New()
	defer st.Close()
	e, err := ledger.NewEvent("acme", "s1", time.Now(), ledger.ComplaintReceived{Source: "customer"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Append(context.Background(), ledger.ContactStream("acme", "s1"), ledger.Any(), []ledger.Event{e}); err != nil {
		t.Fatal(err)
	}
	x := New(st, nil) // never run: it stays behind the head
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := x.Tenants(ctx, "s1"); !errors.Is(err, context.Canceled) {
		t.Errorf("waited out a cancelled request: %v", err)
	}
}

// TestIndexAnswersAcrossTenants: what a customer's page reads of the
// index — the tenants that recorded something about the number, sorted,
// and no others; the templates each tenant proposed — follows appends
// made after the index started, on both ways of reading the log.
func TestIndexAnswersAcrossTenants(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := bolt.Open(filepath.Join(t.TempDir(), "log.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	indexes := map[string]*Index{"follow": New(st, nil), "leaves": New(st, st)}
	for _, x := range indexes {
		go func() { _ = x.Run(ctx) }()
	}
	add := func(stream, tenant, subject string, p any) {
		e, err := ledger.NewEvent(tenant, subject, time.Now(), p)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Append(ctx, stream, ledger.Any(), []ledger.Event{e}); err != nil {
			t.Fatal(err)
		}
	}
	contact := ledger.ContactMade{Channel: ledger.ChannelCall, Purpose: ledger.PurposeService, Line: "1069"}
	add(ledger.ContactStream("zeta", "s1"), "zeta", "s1", contact)
	add(ledger.ContactStream("acme", "s1"), "acme", "s1", contact)
	add(ledger.ContactStream("acme", "s2"), "acme", "s2", contact)
	add(ledger.TemplateStream("acme", "renewal"), "acme", "", ledger.TemplateProposed{TemplateID: "renewal", Version: 1,
		Purpose: ledger.PurposeService, Signature: "平安保险", Text: "您的保单将到期。"})
	for name, x := range indexes {
		t.Run(name, func(t *testing.T) {
			for subject, want := range map[string][]string{"s1": {"acme", "zeta"}, "s2": {"acme"}, "s3": {}} {
				got, err := x.Tenants(ctx, subject)
				if err != nil || !slices.Equal(got, want) {
					t.Errorf("Tenants(%s) = %v, %v; want %v", subject, got, err, want)
				}
			}
			tm, err := x.Templates(ctx)
			if err != nil || !slices.Equal(tm, []Template{{Tenant: "acme", ID: "renewal"}}) {
				t.Errorf("Templates = %v, %v", tm, err)
			}
		})
	}
}

package kurrent_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/kurrent-io/KurrentDB-Client-Go/kurrentdb"

	"github.com/heed/heed/ledger"
	"github.com/heed/heed/ledger/kurrent"
	"github.com/heed/heed/ledger/kurrent/fake"
	"github.com/heed/heed/ledger/ledgertest"
	"github.com/heed/heed/ledger/storetest"
)

func consents(n int) []ledger.Event {
	out := make([]ledger.Event, n)
	for i := range out {
		out[i] = storetest.Consent("acme", fmt.Sprintf("subj-%d", i), 0)
	}
	return out
}

// TestAppendFaults drives Append through what a cluster does to it: a
// commit whose acknowledgement is lost, an unavailable node, a follower
// answering instead of the leader, and an outage that outlasts the
// retries.
func TestAppendFaults(t *testing.T) {
	tests := []struct {
		name     string
		faults   []fake.Fault
		expected ledger.Expected
		calls    int   // append calls the server should see
		err      error // nil: the append succeeds
	}{
		{"lost ack, exact revision", []fake.Fault{fake.LostAck}, ledger.NoStream(), 2, nil},
		// With Any the retry first looks for its ids, finds them and stops.
		{"lost ack, any revision", []fake.Fault{fake.LostAck}, ledger.Any(), 1, nil},
		{"unavailable twice", []fake.Fault{fake.Unavailable, fake.Unavailable}, ledger.NoStream(), 3, nil},
		{"not leader", []fake.Fault{fake.NotLeader}, ledger.Exact(0), 2, nil},
		{"unavailable throughout", []fake.Fault{fake.Unavailable, fake.Unavailable, fake.Unavailable, fake.Unavailable, fake.Unavailable, fake.Unavailable}, ledger.NoStream(), 6, kurrent.ErrUnavailable},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv, s := ledgertest.Kurrent(t)
			ctx := context.Background()
			in := consents(3)
			srv.FailAppends(tc.faults...)
			out, err := s.Append(ctx, "contact-acme-x", tc.expected, in)
			if got := srv.Appends(); got != tc.calls {
				t.Errorf("server saw %d append calls, want %d", got, tc.calls)
			}
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("err = %v, want %v", err, tc.err)
				}
				if srv.Events() != 0 {
					t.Fatalf("a failed append left %d events", srv.Events())
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if srv.Events() != len(in) {
				t.Fatalf("server holds %d events after one logical append of %d: a retry wrote twice", srv.Events(), len(in))
			}
			for i, e := range out {
				if e.ID != in[i].ID || e.Position != uint64(i+1) || e.Revision != uint64(i+1) {
					t.Fatalf("event %d: id %s position %d revision %d", i, e.ID, e.Position, e.Revision)
				}
			}
			if s.Stats().Retries == 0 {
				t.Fatal("no retry was counted")
			}
		})
	}
}

// TestWrongRevisionMapped checks the server's wrong-expected-version
// answer becomes ledger.ErrWrongRevision and writes nothing.
func TestWrongRevisionMapped(t *testing.T) {
	srv, s := ledgertest.Kurrent(t)
	ctx := context.Background()
	if _, err := s.Append(ctx, "st", ledger.NoStream(), consents(2)); err != nil {
		t.Fatal(err)
	}
	for _, exp := range []ledger.Expected{ledger.NoStream(), ledger.Exact(1), ledger.Exact(3)} {
		_, err := s.Append(ctx, "st", exp, consents(1))
		if !errors.Is(err, ledger.ErrWrongRevision) {
			t.Fatalf("expected %v: err = %v, want ErrWrongRevision", exp, err)
		}
		if !strings.Contains(err.Error(), "is at 2") {
			t.Fatalf("error %q does not say where the stream is", err)
		}
	}
	if srv.Events() != 2 {
		t.Fatalf("refused appends wrote: %d events", srv.Events())
	}
}

// TestClientPanicRecovered sends the client a read response it does not
// handle; the client panics, and the store turns that into an error and
// keeps working.
func TestClientPanicRecovered(t *testing.T) {
	srv, s := ledgertest.Kurrent(t)
	ctx := context.Background()
	if _, err := s.Append(ctx, "st", ledger.NoStream(), consents(2)); err != nil {
		t.Fatal(err)
	}
	srv.FailReads(fake.BadMessage)
	if _, err := s.ReadStream(ctx, "st", 1, 0); !errors.Is(err, kurrent.ErrClientPanic) {
		t.Fatalf("err = %v, want ErrClientPanic", err)
	}
	srv.FailReads(fake.BadMessage)
	if _, err := s.StreamRevision(ctx, "st"); !errors.Is(err, kurrent.ErrClientPanic) {
		t.Fatalf("StreamRevision err = %v, want ErrClientPanic", err)
	}
	got, err := s.ReadStream(ctx, "st", 1, 0)
	if err != nil || len(got) != 2 {
		t.Fatalf("after the panic: %d events, %v", len(got), err)
	}
}

// TestReadRetried checks a read that meets an unavailable node is
// repeated.
func TestReadRetried(t *testing.T) {
	srv, s := ledgertest.Kurrent(t)
	ctx := context.Background()
	if _, err := s.Append(ctx, "st", ledger.NoStream(), consents(2)); err != nil {
		t.Fatal(err)
	}
	srv.FailReads(fake.Unavailable, fake.Unavailable)
	got, err := s.ReadStream(ctx, "st", 1, 0)
	if err != nil || len(got) != 2 {
		t.Fatalf("%d events, %v", len(got), err)
	}
}

// raw appends an event that is not heed's straight to the server, as
// another application sharing the cluster would.
func raw(t *testing.T, srv *fake.Server, stream string) {
	t.Helper()
	cfg, err := kurrentdb.ParseConnectionString(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	cfg.Logger = kurrentdb.NoopLogging()
	c, err := kurrentdb.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.AppendToStream(context.Background(), stream, kurrentdb.AppendToStreamOptions{},
		kurrentdb.EventData{EventID: uuid.New(), EventType: "Other", ContentType: kurrentdb.ContentTypeJson, Data: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
}

// TestFollowAcrossDrops follows the log while the server drops the $all
// subscription between appends and other applications write to the same
// cluster: Follow must hand over every heed event exactly once, in
// position order.
func TestFollowAcrossDrops(t *testing.T) {
	for _, resend := range []bool{false, true} {
		t.Run(fmt.Sprintf("resend=%v", resend), func(t *testing.T) { followAcrossDrops(t, resend) })
	}
}

func followAcrossDrops(t *testing.T, resend bool) {
	srv, s := ledgertest.Kurrent(t)
	srv.ResendOnResume(resend)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const rounds, per = 5, 4
	got := make(chan ledger.Event, rounds*per+10)
	errc := make(chan error, 1)
	go func() {
		errc <- s.Follow(ctx, 1, func(e ledger.Event) error { got <- e; return nil })
	}()
	var want []ledger.Event
	for r := range rounds {
		raw(t, srv, "billing-1")
		out, err := s.Append(ctx, fmt.Sprintf("contact-acme-%d", r%2), ledger.Any(), consents(per))
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, out...)
		srv.DropSubscriptions()
	}
	for i := range want {
		select {
		case e := <-got:
			if e.Position != uint64(i+1) || e.ID != want[i].ID {
				t.Fatalf("event %d: position %d id %s, want position %d id %s", i, e.Position, e.ID, i+1, want[i].ID)
			}
		case err := <-errc:
			t.Fatalf("Follow returned %v after %d events", err, i)
		case <-ctx.Done():
			t.Fatalf("Follow stalled after %d of %d events", i, len(want))
		}
	}
	// Nothing more: no duplicate arrives after a resume.
	raw(t, srv, "billing-1")
	srv.DropSubscriptions()
	last, err := s.Append(ctx, "contact-acme-9", ledger.Any(), consents(1))
	if err != nil {
		t.Fatal(err)
	}
	if e := <-got; e.ID != last[0].ID || e.Position != uint64(len(want)+1) {
		t.Fatalf("after the last drop got position %d id %s, want %d %s", e.Position, e.ID, len(want)+1, last[0].ID)
	}
	if s.Stats().Resubscriptions < rounds {
		t.Fatalf("%d resubscriptions after %d drops", s.Stats().Resubscriptions, rounds+1)
	}
}

// TestInstancesAgree opens two stores on one cluster, as two heed
// instances would: each assigns the same position to the same event
// without coordinating.
func TestInstancesAgree(t *testing.T) {
	srv, a := ledgertest.Kurrent(t)
	ctx := context.Background()
	b, err := kurrent.Open(ctx, srv.URL(), kurrent.Options{Backoff: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var written []ledger.Event
	for i := range 6 {
		st := []*kurrent.Store{a, b}[i%2]
		raw(t, srv, "other")
		out, err := st.Append(ctx, "contact-acme-a", ledger.Any(), consents(2))
		if err != nil {
			t.Fatal(err)
		}
		written = append(written, out...)
	}
	for _, st := range []*kurrent.Store{a, b} {
		var all []ledger.Event
		err := st.Follow(ctx, 1, func(e ledger.Event) error {
			all = append(all, e)
			if len(all) == len(written) {
				return errStop
			}
			return nil
		})
		if !errors.Is(err, errStop) {
			t.Fatal(err)
		}
		for i := range all {
			wl, _ := written[i].Leaf()
			gl, _ := all[i].Leaf()
			if string(wl) != string(gl) {
				t.Fatalf("position %d differs between instances:\n%s\n%s", i+1, wl, gl)
			}
		}
	}
	// A late starter builds the same index from $all.
	c, err := kurrent.Open(ctx, srv.URL(), kurrent.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if h, _ := c.Head(ctx); h != uint64(len(written)) {
		t.Fatalf("late instance head %d, want %d", h, len(written))
	}
	// A retry through the other instance is still a no-op.
	again, err := b.Append(ctx, "contact-acme-a", ledger.Any(), []ledger.Event{consentsFrom(written[0])})
	if err != nil || again[0].Position != 1 {
		t.Fatalf("retry through the other instance: %v, %v", again, err)
	}
}

var errStop = errors.New("stop")

// consentsFrom returns the proposal that produced a stored event.
func consentsFrom(e ledger.Event) ledger.Event {
	e.Stream, e.Revision, e.Position, e.RecordedAt = "", 0, 0, time.Time{}
	return e
}

// TestServerRestart stops the node long enough for the client library to
// give up its connection for good, then brings it back: the store renews
// its client, and the append issued during the outage succeeds once.
func TestServerRestart(t *testing.T) {
	srv, s := ledgertest.Kurrent(t)
	ctx := context.Background()
	if _, err := s.Append(ctx, "st", ledger.NoStream(), consents(1)); err != nil {
		t.Fatal(err)
	}
	srv.Close()
	go func() {
		time.Sleep(1500 * time.Millisecond)
		if err := srv.Restart(); err != nil {
			t.Error(err)
		}
	}()
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	var out []ledger.Event
	var err error
	for {
		out, err = s.Append(ctx, "st", ledger.Exact(1), consents(1))
		if !errors.Is(err, kurrent.ErrUnavailable) || ctx.Err() != nil {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	if out[0].Position != 2 || srv.Events() != 2 {
		t.Fatalf("position %d, server holds %d events", out[0].Position, srv.Events())
	}
}

func TestIsURL(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{"kurrentdb://a:2113,b:2113?tls=false", true},
		{"esdb://localhost:2113", true},
		{"ESDB+discover://cluster.example:2113", true},
		{"kurrentdb+discover://cluster.example", true},
		{"heed-data/ledger.db", false},
		{"bolt://x", false},
		{"", false},
	} {
		if got := kurrent.IsURL(tc.in); got != tc.want {
			t.Errorf("IsURL(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestOpenURL(t *testing.T) {
	srv, _ := ledgertest.Kurrent(t)
	ctx := context.Background()
	if _, err := kurrent.Open(ctx, "postgres://"+srv.Addr(), kurrent.Options{}); !errors.Is(err, kurrent.ErrScheme) {
		t.Fatalf("postgres:// err = %v, want ErrScheme", err)
	}
	s, err := kurrent.Open(ctx, "esdb://"+srv.Addr()+"?tls=false", kurrent.Options{})
	if err != nil {
		t.Fatalf("esdb://: %v", err)
	}
	s.Close()
}

// TestRawDataWithHTMLCharacters appends data as a client may send it, with
// &, < and > unescaped: the leaf escapes them, and the append and its
// retry must still be recognised as the same event.
func TestRawDataWithHTMLCharacters(t *testing.T) {
	_, s := ledgertest.Kurrent(t)
	ctx := context.Background()
	e := consents(1)[0]
	e.Data = []byte(`{"purposes":["service"],"channels":["sms"],"source":"web_form","evidence":{"url":"https://example.com/?a=1&b=<2>"}}`)
	first, err := s.Append(ctx, "st", ledger.NoStream(), []ledger.Event{e})
	if err != nil {
		t.Fatalf("append: %v", err)
	}
	again, err := s.Append(ctx, "st", ledger.NoStream(), []ledger.Event{e})
	if err != nil || again[0].Position != first[0].Position {
		t.Fatalf("retry: %v, %v", again, err)
	}
	if n, _ := s.Head(ctx); n != 1 {
		t.Fatalf("head %d after an append and its retry", n)
	}
}

package projections

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/heed/heed/ledger"
	"github.com/heed/heed/ledger/mem"
)

// garbled is a store whose event at position bad reads with a payload the
// projection cannot decode, as one written by a later schema would.
type garbled struct {
	ledger.Store
	bad uint64
}

func (g garbled) fix(e *ledger.Event) {
	if e.Position == g.bad {
		e.Data = []byte(`{"purposes":"service","channels":7}`)
	}
}

func (g garbled) Follow(ctx context.Context, from uint64, fn func(ledger.Event) error) error {
	return g.Store.Follow(ctx, from, func(e ledger.Event) error { g.fix(&e); return fn(e) })
}

func (g garbled) ReadAll(ctx context.Context, from uint64, limit int) ([]ledger.Event, error) {
	evs, err := g.Store.ReadAll(ctx, from, limit)
	for i := range evs {
		g.fix(&evs[i])
	}
	return evs, err
}

// TestUndecodableEventStopsTheProjection: the projection does not skip an
// event it cannot read; it stops before it, says where, keeps the
// snapshot from before it, and refuses every later event.
func TestUndecodableEventStopsTheProjection(t *testing.T) {
	ctx := context.Background()
	st := mem.New()
	defer st.Close()
	appendOne := func(p any) {
		t.Helper()
		e, err := ledger.NewEvent(tenant, subject, time.Now(), p)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Append(ctx, ledger.ContactStream(tenant, subject), ledger.Any(), []ledger.Event{e}); err != nil {
			t.Fatal(err)
		}
	}
	appendOne(ledger.RelationshipStarted{ContractRef: "P", StartsAt: time.Now()})
	appendOne(ledger.ConsentGranted{Purposes: []string{"marketing"}, Channels: []string{"sms"}, Source: "web_form"})
	appendOne(ledger.ConsentWithdrawn{All: true, Via: "api"})

	for _, c := range []struct {
		name string
		run  func(r *Runner) error
	}{
		{"following", func(r *Runner) error { return r.Run(ctx) }},
		{"catching up", func(r *Runner) error { return r.CatchUp(ctx) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			r, err := NewRunner(garbled{st, 2}, Default(), Options{Dir: dir})
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- c.run(r) }()
			select {
			case err = <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("the projection kept running past an event it cannot read")
			}
			if !errors.Is(err, ErrUndecodable) || !strings.Contains(err.Error(), "position 2 (ConsentGranted") {
				t.Fatalf("stopped with %v, want ErrUndecodable naming position 2", err)
			}
			if r.Position() != 1 || !errors.Is(r.Err(), ErrUndecodable) {
				t.Errorf("position %d, Err %v; want stopped after 1", r.Position(), r.Err())
			}
			if err := r.CatchUp(ctx); !errors.Is(err, ErrUndecodable) || r.Position() != 1 {
				t.Errorf("caught up again past the event: %v at %d", err, r.Position())
			}
			if err := r.Snapshot(); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(filepath.Join(dir, snapshotFile)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a snapshot of the stopped projection was written: %v", err)
			}
		})
	}
}

package notify

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/heed/heed/ledger"
)

// countingStore counts reads of the whole log.
type countingStore struct {
	ledger.Store
	readAll atomic.Int64
}

func (c *countingStore) ReadAll(ctx context.Context, from uint64, limit int) ([]ledger.Event, error) {
	c.readAll.Add(1)
	return c.Store.ReadAll(ctx, from, limit)
}

// TestGetThroughLookup: with Config.Lookup, a restarted notifier answers
// for settled reminders, and refuses unknown ids and other tenants' ids,
// without reading the log; without it the same answers take a scan.
func TestGetThroughLookup(t *testing.T) {
	ctx := context.Background()
	r := newRig(t)
	r.sender.err = fmt.Errorf("%w: test", ErrPermanent)
	for i := range 3 {
		r.relate(t, num(i))
		if res, err := r.n.Remind(ctx, reqTo(i, fmt.Sprint("r", i))); err != nil || res.State != StateFailed {
			t.Fatalf("remind %d: %s, %v", i, res.State, err)
		}
	}
	for _, tc := range []struct {
		name   string
		lookup bool
		scans  bool
	}{{"with Lookup", true, false}, {"without", false, true}} {
		t.Run(tc.name, func(t *testing.T) {
			cs := &countingStore{Store: r.store}
			cfg := r.n.cfg
			cfg.Store, cfg.Lookup = cs, nil
			if tc.lookup {
				cfg.Lookup = r.store
			}
			n := New(cfg) // a restart: nothing held in memory
			for i := range 3 {
				got, err := n.Get(ctx, tenant, fmt.Sprint("r", i))
				if err != nil || got.State != StateFailed {
					t.Fatalf("Get(r%d) = %s, %v; want %s", i, got.State, err, StateFailed)
				}
			}
			for _, q := range []struct{ tenant, id string }{{tenant, "nope"}, {"other", "r1"}} {
				if _, err := n.Get(ctx, q.tenant, q.id); err != ErrNotFound {
					t.Fatalf("Get(%s, %s): %v, want ErrNotFound", q.tenant, q.id, err)
				}
			}
			if scanned := cs.readAll.Load() > 0; scanned != tc.scans {
				t.Fatalf("%d reads of the log, want scans %v", cs.readAll.Load(), tc.scans)
			}
		})
	}
}

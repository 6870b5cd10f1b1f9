package kurrent_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/heed/heed/ledger"
	"github.com/heed/heed/ledger/kurrent"
	"github.com/heed/heed/ledger/kurrent/fake"
	"github.com/heed/heed/ledger/ledgertest"
)

// TestChaos appends from two instances at once while the server loses
// acknowledgements, turns requests away and drops subscriptions at
// random. Afterwards: every acknowledged event is stored exactly once,
// nothing unacknowledged is stored twice, and both instances (and a
// follower on each) see the same gap-free log.
func TestChaos(t *testing.T) {
	for seed := range uint64(3) {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) { chaos(t, seed) })
	}
}

func chaos(t *testing.T, seed uint64) {
	srv, a := ledgertest.Kurrent(t)
	b, err := kurrent.Open(context.Background(), srv.URL(), kurrent.Options{Backoff: 2 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	const workers, each = 4, 15
	var (
		mu    sync.Mutex
		acked = map[string]bool{}
	)
	stop := make(chan struct{})
	var chaosDone sync.WaitGroup
	chaosDone.Go(func() {
		r := rand.New(rand.NewPCG(seed, 1))
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Duration(1+r.IntN(5)) * time.Millisecond):
			}
			if srv.PendingFaults() > 0 {
				continue // one at a time, or appends would fail for good
			}
			switch r.IntN(4) {
			case 0:
				srv.FailAppends(fake.LostAck)
			case 1:
				srv.FailAppends(fake.Unavailable)
			case 2:
				srv.FailReads(fake.Unavailable)
			case 3:
				srv.DropSubscriptions()
			}
		}
	})
	var wg sync.WaitGroup
	for w := range workers {
		st := []*kurrent.Store{a, b}[w%2]
		wg.Go(func() {
			r := rand.New(rand.NewPCG(seed, uint64(w)+10))
			for i := range each {
				stream := fmt.Sprintf("contact-acme-%d", r.IntN(3))
				evs := consents(1 + r.IntN(3))
				for {
					rev, err := st.StreamRevision(ctx, stream)
					if err == nil {
						_, err = st.Append(ctx, stream, ledger.Exact(rev), evs)
					}
					if err == nil {
						mu.Lock()
						for _, e := range evs {
							acked[e.ID] = true
						}
						mu.Unlock()
						break
					}
					if errors.Is(err, ledger.ErrWrongRevision) || errors.Is(err, kurrent.ErrUnavailable) {
						continue // decide again at the new revision, same ids
					}
					t.Errorf("worker %d append %d: %v", w, i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	chaosDone.Wait()
	if t.Failed() {
		return
	}

	logs := make([][]ledger.Event, 2)
	for i, st := range []*kurrent.Store{a, b} {
		var got []ledger.Event
		err := st.Follow(ctx, 1, func(e ledger.Event) error {
			got = append(got, e)
			if len(got) == len(acked) {
				return errStop
			}
			return nil
		})
		if !errors.Is(err, errStop) {
			t.Fatalf("instance %d followed %d of %d events: %v", i, len(got), len(acked), err)
		}
		logs[i] = got
	}
	if srv.Events() != len(acked) {
		t.Fatalf("server holds %d events for %d acknowledged", srv.Events(), len(acked))
	}
	seen := map[string]bool{}
	for i, e := range logs[0] {
		if e.Position != uint64(i+1) {
			t.Fatalf("gap: event %d at position %d", i, e.Position)
		}
		if seen[e.ID] || !acked[e.ID] {
			t.Fatalf("position %d: id %s duplicated or never acknowledged", e.Position, e.ID)
		}
		seen[e.ID] = true
		l0, _ := e.Leaf()
		l1, _ := logs[1][i].Leaf()
		if string(l0) != string(l1) {
			t.Fatalf("instances disagree at position %d", e.Position)
		}
	}
	t.Logf("%d events, %d+%d retries, %d+%d resubscriptions", len(acked),
		a.Stats().Retries, b.Stats().Retries, a.Stats().Resubscriptions, b.Stats().Resubscriptions)
}

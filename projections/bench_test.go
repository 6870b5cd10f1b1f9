package projections

import (
	"context"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/heed/heed/ledger"
	"github.com/heed/heed/ledger/bolt"
)

// BenchmarkDecide reports Decide latency with many tracked subjects
// (b.N decisions over 200k subjects; `heed bench decide` runs 1M).
func BenchmarkDecide(b *testing.B) {
	res, err := Bench(context.Background(), 200_000, max(b.N, 1000), "")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(res.P50us, "p50_us")
	b.ReportMetric(res.P99us, "p99_us")
	b.ReportMetric(res.BytesPerSubject, "bytes/subject")
	b.ReportMetric(res.ApplyPerS, "events/s")
	b.ReportMetric(res.DecodePerS, "peer_decode_events/s")
}

// BenchmarkRestore reports the time to load a snapshot of 200k subjects.
func BenchmarkRestore(b *testing.B) {
	res, err := Bench(context.Background(), 200_000, 0, b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(res.RestoreS, "restore_s")
	b.ReportMetric(float64(res.Events), "events")
	b.ReportMetric(float64(res.SnapshotBytes)/float64(res.Subjects), "snapshot_bytes/subject")
}

// BenchmarkRunnerDecide times the full path a caller of the API takes on
// the embedded store: read the head, wait for it, evaluate, resolve the
// cited events' ids. 20k subjects; the peer in the same run is the
// in-process State.Decide on the same state.
func BenchmarkRunnerDecide(b *testing.B) {
	ctx := context.Background()
	store, err := bolt.Open(filepath.Join(b.TempDir(), "ledger.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	const subjects = 20_000
	syn := newSynth(1, time.Now())
	work := make(chan int)
	errs := make(chan error, 64)
	var wg sync.WaitGroup
	for range 64 { // concurrent appenders share the store's group commits
		wg.Go(func() {
			for i := range work {
				evs := syn.subjectAlone(i)
				if _, err := store.Append(ctx, ledger.ContactStream(benchTenant(i), benchSubject(i)), ledger.Any(), evs); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	for i := range subjects {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
	r, err := NewRunner(store, Default(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	if err := r.CatchUp(ctx); err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(4, 5))
	query := func() Query {
		n := rng.IntN(subjects)
		return Query{Tenant: benchTenant(n), Subject: benchSubject(n), Number: "+8613800138000", Channel: "call", Purpose: ledger.Purposes[n%2], Line: "line-1"}
	}
	full, local := make([]time.Duration, 0, b.N), make([]time.Duration, 0, b.N)
	for b.Loop() {
		q := query()
		t0 := time.Now()
		if _, err := r.Decide(ctx, q); err != nil {
			b.Fatal(err)
		}
		full = append(full, time.Since(t0))
		t0 = time.Now()
		if _, err := r.st.Decide(q, time.Now()); err != nil {
			b.Fatal(err)
		}
		local = append(local, time.Since(t0))
	}
	pct := func(d []time.Duration, p int) float64 {
		slices.Sort(d)
		return float64(d[len(d)*p/100]) / 1e3
	}
	b.ReportMetric(pct(full, 50), "p50_us")
	b.ReportMetric(pct(full, 99), "p99_us")
	b.ReportMetric(pct(local, 50), "peer_state_p50_us")
	b.ReportMetric(pct(local, 99), "peer_state_p99_us")
}

// subjectAlone is synth.subject as proposals, for the store to give ids
// and positions; seeded per subject so goroutines can share s.
func (s *synth) subjectAlone(i int) []ledger.Event {
	own := &synth{rng: rand.New(rand.NewPCG(uint64(i), 1)), at: s.at, payloads: s.payloads}
	evs := own.subject(i, nil)
	for j := range evs {
		evs[j].ID, evs[j].Stream, evs[j].Revision, evs[j].Position = "", "", 0, 0
	}
	return evs
}

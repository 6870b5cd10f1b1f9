package storetest

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heed/heed/ledger"
)

// BenchAppend measures durable appends of one size-byte ConsentGranted
// event each, b.N in all, from appenders concurrent callers, each to its own
// subject's stream. Subjects look random, as keyed pseudonyms do, so a
// store's stream index sees new keys all over its key space rather than
// at one edge. It reports appends/s and the 99th percentile latency.
func BenchAppend(b *testing.B, s ledger.Store, appenders, size int) {
	BenchAppendIDs(b, s, appenders, size, func(int64) string { return ledger.NewID() })
}

// BenchAppendIDs is BenchAppend with the i-th event's id from id: ids
// derived from content (an imported contract, a timer, an INVITE) sort
// anywhere, where NewID's grow with time.
func BenchAppendIDs(b *testing.B, s ledger.Store, appenders, size int, id func(i int64) string) {
	ctx := context.Background()
	proto := Consent("bench", "", size)
	var next atomic.Int64
	lat := make([][]time.Duration, appenders)
	var failed atomic.Value
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for w := range appenders {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				e := proto
				e.ID = id(i)
				e.Subject = ledger.SyntheticSubject(uint64(i))
				t := time.Now()
				if _, err := s.Append(ctx, ledger.ContactStream("bench", e.Subject), ledger.NoStream(), []ledger.Event{e}); err != nil {
					failed.Store(err)
					return
				}
				lat[w] = append(lat[w], time.Since(t))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
	all := slices.Concat(lat...)
	slices.Sort(all)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "appends/s")
	if len(all) > 0 {
		b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99_ms")
	}
}

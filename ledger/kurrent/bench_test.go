package kurrent_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heed/heed/ledger"
	"github.com/heed/heed/ledger/kurrent"
	"github.com/heed/heed/ledger/kurrent/fake"
	"github.com/heed/heed/ledger/mem"
)

// BenchmarkAppend measures single-event appends through the KurrentDB
// store against the in-process fake, next to ledger/mem in the same run.
// The fake answers over loopback gRPC without fsync, so the ratio is the
// adapter's own cost (a gRPC append, a read-back, waiting for the index),
// not KurrentDB's: a real cluster adds its replication and flush time.
func BenchmarkAppend(b *testing.B) {
	stores := map[string]func(b *testing.B) ledger.Store{
		"kurrent-fake": func(b *testing.B) ledger.Store {
			srv, err := fake.Start()
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(srv.Close)
			s, err := kurrent.Open(context.Background(), srv.URL(), kurrent.Options{})
			if err != nil {
				b.Fatal(err)
			}
			return s
		},
		"mem": func(*testing.B) ledger.Store { return mem.New() },
	}
	for _, name := range []string{"kurrent-fake", "mem"} {
		for _, par := range []int{1, 16} {
			b.Run(fmt.Sprintf("%s/clients=%d", name, par), func(b *testing.B) {
				s := stores[name](b)
				defer s.Close()
				ev := consents(1)[0]
				var next atomic.Int64
				b.SetParallelism(par)
				start := time.Now()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						e := ev
						e.ID = ledger.NewID()
						i := next.Add(1)
						if _, err := s.Append(context.Background(), fmt.Sprintf("contact-acme-%d", i%256), ledger.Any(), []ledger.Event{e}); err != nil {
							b.Error(err)
							return
						}
					}
				})
				b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
			})
		}
	}
}

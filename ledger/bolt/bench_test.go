package bolt_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.etcd.io/bbolt"

	"github.com/heed/heed/ledger"
	"github.com/heed/heed/ledger/bolt"
	"github.com/heed/heed/ledger/storetest"
)

// BenchmarkAppend measures durable appends of ~350-byte events (the
// smallest a ConsentGranted with its envelope gets), tree included, at 1,
// 16 and 256 concurrent appenders. Run it with enough events for group
// commit to settle:
//
//	go test -run '^$' -bench 'Append/appenders=1$' -benchtime 3000x ./ledger/bolt
//	go test -run '^$' -bench 'Append/appenders=(16|256)$' -benchtime 200000x ./ledger/bolt
func BenchmarkAppend(b *testing.B) {
	for _, n := range []int{1, 16, 256} {
		b.Run(fmt.Sprintf("appenders=%d", n), func(b *testing.B) {
			s, err := bolt.Open(filepath.Join(b.TempDir(), "heed.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			storetest.BenchAppend(b, s, n, 300)
			st := s.Stats()
			if st.Commits > 0 {
				b.ReportMetric(float64(st.Events)/float64(st.Commits), "events/commit")
				b.ReportMetric(float64(st.Prepare.Microseconds())/float64(st.Commits), "prepare_us/commit")
				b.ReportMetric(float64(st.Commit.Microseconds())/float64(st.Commits), "commit_us/commit")
			}
		})
	}
}

// BenchmarkAppendContentIDs is BenchmarkAppend at 256 appenders with ids
// derived from content, as imports, timers and the call gate make them:
// they sort anywhere, so each lands in a random part of the id index.
//
//	go test -run '^$' -bench AppendContentIDs -benchtime 1000000x ./ledger/bolt
func BenchmarkAppendContentIDs(b *testing.B) {
	s, err := bolt.Open(filepath.Join(b.TempDir(), "heed.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	space := uuid.MustParse("0b1e8c52-7d3a-4f6e-9a21-5c8d4e7f3b19")
	storetest.BenchAppendIDs(b, s, 256, 300, func(i int64) string {
		return uuid.NewSHA1(space, binary.BigEndian.AppendUint64(nil, uint64(i))).String()
	})
}

// fill appends n ~300-byte events in batches, for the read benchmarks.
func fill(b *testing.B, s *bolt.Store, n int) {
	ctx := context.Background()
	for i := 0; i < n; i += 500 {
		evs := make([]ledger.Event, min(500, n-i))
		for j := range evs {
			evs[j] = storetest.Consent("bench", fmt.Sprintf("s%d", i+j), 300)
		}
		if _, err := s.Append(ctx, fmt.Sprintf("st%d", i), ledger.Any(), evs); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRead reads the global log from 1 to the head, as stored bytes
// (ReadLeaves) and as decoded events (ReadAll), in pages of 4096.
func BenchmarkRead(b *testing.B) {
	const n = 200_000
	s, err := bolt.Open(filepath.Join(b.TempDir(), "heed.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	fill(b, s, n)
	ctx := context.Background()
	read := map[string]func(from uint64) (int, error){
		"leaves": func(from uint64) (int, error) { l, err := s.ReadLeaves(ctx, from, 4096); return len(l), err },
		"events": func(from uint64) (int, error) { e, err := s.ReadAll(ctx, from, 4096); return len(e), err },
	}
	for _, name := range []string{"leaves", "events"} {
		b.Run(name, func(b *testing.B) {
			total := 0
			start := time.Now()
			for b.Loop() {
				for from := uint64(1); ; {
					got, err := read[name](from)
					if err != nil {
						b.Fatal(err)
					}
					if got == 0 {
						break
					}
					from += uint64(got)
					total += got
				}
			}
			b.ReportMetric(float64(total)/time.Since(start).Seconds(), "events/s")
		})
	}
}

// BenchmarkFloor measures bbolt alone under the same load as
// BenchmarkAppend: 300-byte values appended at the right edge of one
// bucket, group-committed by one goroutine that drains whatever is queued
// into a transaction, commits (two fsyncs) and releases the callers. No
// validation, no indexes, no tree: it bounds what any store that keeps
// bbolt's commit protocol can reach on the machine, to read
// BenchmarkAppend against.
//
//	go test -run '^$' -bench 'Floor/appenders=256$' -benchtime 200000x ./ledger/bolt
func BenchmarkFloor(b *testing.B) {
	for _, n := range []int{1, 16, 256} {
		b.Run(fmt.Sprintf("appenders=%d", n), func(b *testing.B) {
			db, err := bbolt.Open(filepath.Join(b.TempDir(), "floor.db"), 0o600, &bbolt.Options{FreelistType: bbolt.FreelistMapType})
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			type req struct {
				val  []byte
				done chan error
			}
			reqs := make(chan req, 4096)
			go func() {
				var pos uint64
				for r := range reqs {
					batch := []req{r}
				drain:
					for {
						select {
						case r, ok := <-reqs:
							if !ok {
								break drain
							}
							batch = append(batch, r)
						default:
							break drain
						}
					}
					err := db.Update(func(tx *bbolt.Tx) error {
						bk, err := tx.CreateBucketIfNotExists([]byte("events"))
						if err != nil {
							return err
						}
						bk.FillPercent = 1.0
						for _, r := range batch {
							pos++
							if err := bk.Put(binary.BigEndian.AppendUint64(nil, pos), r.val); err != nil {
								return err
							}
						}
						return nil
					})
					for _, r := range batch {
						r.done <- err
					}
				}
			}()
			defer close(reqs)
			val := bytes.Repeat([]byte("x"), 300)
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for range n {
				wg.Go(func() {
					done := make(chan error, 1)
					for next.Add(1) <= int64(b.N) {
						reqs <- req{val, done}
						if err := <-done; err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "appends/s")
		})
	}
}

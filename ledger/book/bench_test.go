package book_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heed/heed/ledger"
	"github.com/heed/heed/ledger/bolt"
	"github.com/heed/heed/ledger/book"
)

// benchRows is the size of the book each iteration imports.
const benchRows = 100_000

// BenchmarkImport imports a synthetic book of 100,000 rows into a fresh
// embedded store per iteration and reports rows recorded per second and
// the peak heap in use while it ran (sampled every millisecond). The
// subject is a keyed hash of the number, as heed's pseudonym is.
func BenchmarkImport(b *testing.B) {
	key := []byte("benchmark pseudonym key, 32 byte")
	subj := func(n string) (string, string, error) {
		e164, _, err := subject(n)
		if err != nil {
			return "", "", err
		}
		m := hmac.New(sha256.New, key)
		m.Write([]byte(e164))
		return e164, hex.EncodeToString(m.Sum(nil)), nil
	}
	var rows, peak int64
	var elapsed time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		st, err := bolt.Open(filepath.Join(b.TempDir(), "ledger.db"))
		if err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		base := int64(ms.HeapInuse)
		var top atomic.Int64
		stop := make(chan struct{})
		sampled := make(chan struct{})
		go func() {
			defer close(sampled)
			t := time.NewTicker(time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
					var ms runtime.MemStats
					runtime.ReadMemStats(&ms)
					if h := int64(ms.HeapInuse) - base; h > top.Load() {
						top.Store(h)
					}
				}
			}
		}()
		b.StartTimer()
		definePlan(b, st, "bench", "renewal")
		res, err := book.Bench(context.Background(), book.Config{Store: st, Keys: dataKeys(b), Tenant: "bench", Actor: "bench", Subject: subj},
			benchRows, uint64(i)*benchRows, os.Getenv("BOOK_BENCH_PLAN"))
		b.StopTimer()
		close(stop)
		<-sampled
		if err != nil || res.Recorded != benchRows {
			b.Fatalf("%v: %v", res, err)
		}
		rows += res.Recorded
		elapsed += res.Elapsed
		peak = max(peak, top.Load())
		s := st.Stats()
		b.Logf("commits=%d events/commit=%.1f prepare_ms/commit=%.2f commit_ms/commit=%.2f", s.Commits, float64(s.Events)/float64(s.Commits),
			float64(s.Prepare.Microseconds())/1000/float64(s.Commits), float64(s.Commit.Microseconds())/1000/float64(s.Commits))
		st.Close()
	}
	b.ReportMetric(float64(rows)/elapsed.Seconds(), "rows/s")
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
}

var _ ledger.Store = (*bolt.Store)(nil)

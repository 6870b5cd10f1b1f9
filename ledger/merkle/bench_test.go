package merkle

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkLogAppend appends leaves to a hash log in fsynced batches of
// 1,000, as a sealer following a remote log does; the peer, timed in the
// same iterations, is the in-memory Tree doing the same hashing without
// storage.
func BenchmarkLogAppend(b *testing.B) {
	const batch = 1000
	hl, err := OpenLog(filepath.Join(b.TempDir(), "tree.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer hl.Close()
	var tr Tree
	leaves := make([][]byte, batch)
	var tl, tp time.Duration
	next := int64(1)
	for b.Loop() {
		for i := range leaves {
			leaves[i] = fmt.Appendf(leaves[i][:0], `{"position":%d,"pad":"%0300d"}`, next+int64(i), 0)
		}
		start := time.Now()
		if _, err := hl.Append(next, leaves...); err != nil {
			b.Fatal(err)
		}
		tl += time.Since(start)
		start = time.Now()
		for _, l := range leaves {
			tr.Append(l)
		}
		tp += time.Since(start)
		next += batch
	}
	n := float64(b.N * batch)
	b.ReportMetric(n/tl.Seconds(), "leaves/s")
	b.ReportMetric(n/tp.Seconds(), "peer-leaves/s")
	b.ReportMetric(tl.Seconds()/tp.Seconds(), "x-peer")
}

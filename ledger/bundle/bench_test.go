package bundle

import (
	"bufio"
	"context"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/heed/heed/ledger/merkle"
)

var benchEvents = flag.Int("bundle.events", 1_000_000, "events in the bundle BenchmarkVerify checks")

// BenchmarkVerify verifies a bundle of -bundle.events events (1M by
// default, ten checkpoints) from a file. The peer, timed in the same
// iterations, is the least any RFC 6962 checker must do with it: read the
// lines and build the tree, single-threaded, without checking events or
// signatures. x-peer is verify's time over the peer's.
func BenchmarkVerify(b *testing.B) {
	n := *benchEvents
	log, tree := makeLog(b, n)
	var sizes []int64
	for s := int64(100_000); s < int64(n); s += 100_000 {
		sizes = append(sizes, s)
	}
	sizes = append(sizes, int64(n))
	path := filepath.Join(b.TempDir(), "bundle.ndjson")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	_, vkey := testKeys(b)
	if err := Export(context.Background(), f, log, origin, vkey, sign(b, tree, sizes...), ExportOptions{}); err != nil {
		b.Fatal(err)
	}
	f.Close()
	fi, _ := os.Stat(path)
	log, tree = nil, nil

	verify := func(f *os.File) error {
		_, err := Verify(context.Background(), f, Options{})
		return err
	}
	hashOnly := func(f *os.File) error {
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<24)
		var t merkle.Tree
		sc.Scan() // header
		for i := 0; i < n && sc.Scan(); i++ {
			t.Append(sc.Bytes())
		}
		_, err := t.Root(int64(n))
		return err
	}
	timed := func(check func(*os.File) error) time.Duration {
		f, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		start := time.Now()
		if err := check(f); err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}
	// Verify and the peer alternate within each iteration, so a burst of
	// load on the shared machine hits both alike.
	var tv, tp time.Duration
	for b.Loop() {
		tv += timed(verify)
		tp += timed(hashOnly)
	}
	v, p := tv.Seconds()/float64(b.N), tp.Seconds()/float64(b.N)
	b.ReportMetric(v, "s/bundle")
	b.ReportMetric(float64(n)/v, "events/s")
	b.ReportMetric(float64(fi.Size())/v/1e6, "MB/s")
	b.ReportMetric(p, "peer-s/bundle")
	b.ReportMetric(v/p, "x-peer")
}

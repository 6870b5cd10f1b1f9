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
// default) from a file, and, as the peer in the same run, the least any
// RFC 6962 checker must do with it: read the lines and build the tree,
// without parsing events or checking signatures.
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

	run := func(b *testing.B, check func(f *os.File) error) {
		var total time.Duration
		for b.Loop() {
			f, err := os.Open(path)
			if err != nil {
				b.Fatal(err)
			}
			start := time.Now()
			if err := check(f); err != nil {
				b.Fatal(err)
			}
			total += time.Since(start)
			f.Close()
		}
		per := total.Seconds() / float64(b.N)
		b.ReportMetric(float64(n)/per, "events/s")
		b.ReportMetric(per, "s/bundle")
		b.ReportMetric(float64(fi.Size())/per/1e6, "MB/s")
	}
	b.Run("verify", func(b *testing.B) {
		run(b, func(f *os.File) error {
			_, err := Verify(context.Background(), f, Options{})
			return err
		})
	})
	b.Run("peer=hash-only", func(b *testing.B) {
		run(b, func(f *os.File) error {
			sc := bufio.NewScanner(f)
			sc.Buffer(make([]byte, 1<<20), 1<<24)
			var t merkle.Tree
			sc.Scan() // header
			for i := 0; i < n && sc.Scan(); i++ {
				t.Append(sc.Bytes())
			}
			_, err := t.Root(int64(n))
			return err
		})
	})
}

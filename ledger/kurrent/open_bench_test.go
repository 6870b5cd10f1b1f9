package kurrent_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/heed/heed/ledger"
	"github.com/heed/heed/ledger/kurrent"
	"github.com/heed/heed/ledger/kurrent/fake"
)

// BenchmarkOpen measures a start on a log of 50,000 heed events: reading
// all of $all to build the index ("scan") next to loading it from an index
// file and checking its tail ("file"), in the same run. The fake serves
// $all from memory over loopback, so against a real cluster, which reads
// the events from disk and sends them over a network, the scan is slower.
func BenchmarkOpen(b *testing.B) {
	const n = 50_000
	ctx := context.Background()
	srv, err := fake.Start()
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	path := filepath.Join(b.TempDir(), "index.db")
	w, err := kurrent.Open(ctx, srv.URL(), kurrent.Options{IndexPath: path})
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < n; i += 500 {
		if _, err := w.Append(ctx, "contact-acme-bench", ledger.Any(), consents(500)); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	for _, mode := range []string{"scan", "file"} {
		b.Run(mode, func(b *testing.B) {
			opts := kurrent.Options{}
			if mode == "file" {
				opts.IndexPath = path
			}
			start := time.Now()
			for range b.N {
				s, err := kurrent.Open(ctx, srv.URL(), opts)
				if err != nil {
					b.Fatal(err)
				}
				if st := s.Stats(); st.Indexed != n {
					b.Fatalf("indexed %d, want %d", st.Indexed, n)
				}
				if err := s.Close(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(time.Since(start).Seconds()*1000/float64(b.N), "ms/open")
			if mode == "file" {
				fi, err := os.Stat(path)
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(fi.Size())/n, "file-bytes/event")
			}
		})
	}
}

package projections

import (
	"context"
	"testing"
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

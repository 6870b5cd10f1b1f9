package kurrent

import (
	"runtime"
	"testing"

	"github.com/google/uuid"
	"github.com/kurrent-io/KurrentDB-Client-Go/kurrentdb"
)

// BenchmarkIndexMemory measures what the position index costs per event,
// the figure docs/kurrent.md quotes for sizing an instance.
func BenchmarkIndexMemory(b *testing.B) {
	const n = 1_000_000
	for range b.N {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		s := &Store{ids: map[uuid.UUID]uint64{}, changed: make(chan struct{})}
		for i := range n {
			s.add(kurrentdb.Position{Commit: uint64(i+1) * 200, Prepare: uint64(i+1) * 200}, uuid.New(), true)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "bytes/event")
		runtime.KeepAlive(s)
	}
}

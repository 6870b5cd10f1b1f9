package main

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// hist counts latencies in log-linear buckets (16 per power of two of
// microseconds, so a quantile is read within about 6%) with atomic adds, so
// hundreds of appenders can record into one without a lock and a reporter
// can read a slice of the run as the difference of two snapshots.
type hist struct {
	n [64 * histSub]atomic.Uint64
}

const histSub = 16

func histBucket(d time.Duration) int {
	us := uint64(max(d.Microseconds(), 0))
	if us < histSub {
		return int(us)
	}
	exp := bits.Len64(us) - 1 // us in [2^exp, 2^(exp+1))
	sub := (us >> (exp - 4)) & (histSub - 1)
	return (exp-3)*histSub + int(sub)
}

// histUpper is the largest latency bucket b holds.
func histUpper(b int) time.Duration {
	if b < histSub {
		return time.Duration(b) * time.Microsecond
	}
	exp := b/histSub + 3
	sub := uint64(b % histSub)
	lo := uint64(1)<<exp | sub<<(exp-4)
	return time.Duration(lo+uint64(1)<<(exp-4)-1) * time.Microsecond
}

func (h *hist) add(d time.Duration) { h.n[histBucket(d)].Add(1) }

// snapshot copies the counts.
func (h *hist) snapshot() []uint64 {
	out := make([]uint64, len(h.n))
	for i := range h.n {
		out[i] = h.n[i].Load()
	}
	return out
}

// quantile reads q (0..1) of the latencies counted in now but not in
// before (before may be nil): the upper edge of the bucket holding it.
func quantile(now, before []uint64, q float64) time.Duration {
	var total uint64
	diff := make([]uint64, len(now))
	for i := range now {
		diff[i] = now[i]
		if before != nil {
			diff[i] -= before[i]
		}
		total += diff[i]
	}
	if total == 0 {
		return 0
	}
	rank := uint64(q*float64(total-1)) + 1
	var seen uint64
	for i, c := range diff {
		seen += c
		if seen >= rank {
			return histUpper(i)
		}
	}
	return histUpper(len(diff) - 1)
}

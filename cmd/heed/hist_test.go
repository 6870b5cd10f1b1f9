package main

import (
	"testing"
	"time"
)

func TestHistBucketsCoverTheirLatency(t *testing.T) {
	for _, d := range []time.Duration{0, time.Microsecond, 15 * time.Microsecond, 16 * time.Microsecond,
		999 * time.Microsecond, time.Millisecond, 57 * time.Millisecond, 3 * time.Second, time.Hour} {
		b := histBucket(d)
		if up := histUpper(b); up < d.Truncate(time.Microsecond) || float64(up) > float64(d)*1.07+float64(time.Microsecond) {
			t.Errorf("%v lands in bucket %d whose upper edge is %v", d, b, up)
		}
		if b > 0 && histUpper(b-1) >= d.Truncate(time.Microsecond) {
			t.Errorf("%v: the bucket below (%v) would hold it too", d, histUpper(b-1))
		}
	}
}

func TestQuantileOfASlice(t *testing.T) {
	var h hist
	for range 1000 {
		h.add(100 * time.Millisecond)
	}
	before := h.snapshot()
	for i := range 1000 {
		h.add(time.Duration(i+1) * time.Microsecond)
	}
	now := h.snapshot()
	if p := quantile(now, before, 0.99); p < 960*time.Microsecond || p > 1060*time.Microsecond {
		t.Errorf("p99 of the second slice %v, want about 990µs: the first slice's 100 ms must not count", p)
	}
	if p := quantile(now, nil, 0.99); p < 95*time.Millisecond {
		t.Errorf("p99 of the whole run %v, want about 100 ms", p)
	}
	if p := quantile(before, before, 0.5); p != 0 {
		t.Errorf("an empty slice reads %v", p)
	}
}

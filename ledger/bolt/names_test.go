package bolt

import (
	"fmt"
	"testing"
)

// TestNamesNoFalseNegative checks that every name added is found, across
// the filter's growth into several layers, and that names never added are
// mostly refused.
func TestNamesNoFalseNegative(t *testing.T) {
	f := newNames()
	const n = 6 * namesFirst
	for i := range n {
		f.add(fmt.Sprintf("contact-acme-%016x", i))
	}
	if len(f.layers) < 3 {
		t.Fatalf("%d names in %d layers; the test wants several", n, len(f.layers))
	}
	for i := range n {
		if name := fmt.Sprintf("contact-acme-%016x", i); !f.has(name) {
			t.Fatalf("%s was added but is not found", name)
		}
	}
	maybe := 0
	const absent = 100000
	for i := range absent {
		if f.has(fmt.Sprintf("contact-other-%016x", i)) {
			maybe++
		}
	}
	// About 1% a layer, and a name is looked for in each.
	t.Logf("%.2f%% of names never added reported present", 100*float64(maybe)/absent)
	if rate := float64(maybe) / absent; rate > 0.05 {
		t.Fatalf("%.1f%% of names never added are reported present", 100*rate)
	}
}

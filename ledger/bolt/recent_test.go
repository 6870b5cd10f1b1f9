package bolt

import (
	"bytes"
	"fmt"
	"slices"
	"testing"
)

// TestRecentPruneInSteps prunes a folded generation a few entries at a
// time, as the sequencer does, and checks after every step that each
// stream's unfolded tail is still a run of consecutive revisions ending at
// its last one, and at the end that exactly the entries after the fold are
// left, in key order.
func TestRecentPruneInSteps(t *testing.T) {
	r := newRecent()
	positions := map[string][]uint64{}
	for pos := uint64(1); pos <= 100; pos++ {
		// Ten streams; stream i gets its events at positions ≡ i (mod 10),
		// except s-9, which stops at 59 and so is fully folded below.
		st := fmt.Sprintf("s-%d", pos%10)
		if st == "s-9" && pos > 59 {
			st = "s-0"
		}
		r.add(st, uint64(len(positions[st])+1), pos)
		positions[st] = append(positions[st], pos)
	}
	const folded = 60
	steps := 0
	for done := false; !done; steps++ {
		done = r.prune(folded, 7)
		for st, all := range positions {
			first, tail := r.tail(st, 100)
			if len(tail) == 0 {
				continue
			}
			i := int(first) - 1
			if !slices.Equal(tail, all[i:]) {
				t.Fatalf("step %d: %s: tail from revision %d is %v, want %v", steps, st, first, tail, all[i:])
			}
		}
	}
	if steps != 9 {
		t.Errorf("pruned 60 entries 7 at a time in %d steps, want 9", steps)
	}
	for st, all := range positions {
		var want []uint64
		for _, p := range all {
			if p > folded {
				want = append(want, p)
			}
		}
		if _, tail := r.tail(st, 100); !slices.Equal(tail, want) {
			t.Errorf("%s: tail %v, want %v", st, tail, want)
		}
		if _, ok, _ := r.last(st); ok != (len(want) > 0) {
			t.Errorf("%s: in memory %v, want %v", st, ok, len(want) > 0)
		}
	}
	gen := r.between(0, 100)
	if len(gen) != 40 {
		t.Fatalf("%d entries left after the fold, want 40", len(gen))
	}
	for i := 1; i < len(gen); i++ {
		if gen[i-1].pos <= folded || bytes.Compare(streamKey(gen[i-1].stream, gen[i-1].rev), streamKey(gen[i].stream, gen[i].rev)) >= 0 {
			t.Fatalf("entry %d: %+v then %+v: folded, or not in key order", i, gen[i-1], gen[i])
		}
	}
	if got := r.between(80, 90); len(got) != 10 {
		t.Errorf("between(80, 90) has %d entries, want 10", len(got))
	}
}

// TestRecentDrop checks that dropping a failed batch's entries leaves
// recent as it was before the batch: streams the batch started are gone,
// streams it extended end where they did.
func TestRecentDrop(t *testing.T) {
	r := newRecent()
	r.add("old", 1, 1)
	r.add("old", 2, 2)
	r.add("other", 1, 3)
	// The failed batch, positions 4–6.
	r.add("old", 3, 4)
	r.add("new", 1, 5)
	r.add("new", 2, 6)
	if _, tail := r.tail("new", 6); len(tail) != 2 {
		t.Fatalf("before the drop, new holds %v", tail)
	}
	r.drop(3)
	tests := []struct {
		stream string
		last   uint64
		known  bool
		tail   []uint64
	}{
		{"old", 2, true, []uint64{1, 2}},
		{"other", 1, true, []uint64{3}},
		{"new", 0, false, nil},
	}
	for _, tt := range tests {
		last, known, _ := r.last(tt.stream)
		if last != tt.last || known != tt.known {
			t.Errorf("%s: last %d, %v; want %d, %v", tt.stream, last, known, tt.last, tt.known)
		}
		if _, tail := r.tail(tt.stream, 100); !slices.Equal(tail, tt.tail) {
			t.Errorf("%s: tail %v, want %v", tt.stream, tail, tt.tail)
		}
	}
	if got := r.between(0, 100); len(got) != 3 {
		t.Errorf("%d entries after the drop, want 3", len(got))
	}
	r.add("new", 1, 4)
	if last, _, _ := r.last("new"); last != 1 {
		t.Errorf("new started again at position 4: last %d, want 1", last)
	}
}

// TestRecentGenerations checks that a stream's entries read the same across
// a cut, and that pruning a fold that ends at the cut forgets the whole
// generation at once, however small the step.
func TestRecentGenerations(t *testing.T) {
	r := newRecent()
	revs := map[string]uint64{}
	add := func(from, to uint64) {
		r.mu.Lock()
		defer r.mu.Unlock()
		for pos := from; pos <= to; pos++ {
			st := []string{"a", "b"}[pos%2]
			revs[st]++
			r.add(st, revs[st], pos)
		}
	}
	add(1, 10)
	r.cut(16)
	add(11, 20)
	if got := r.between(0, 10); len(got) != 10 {
		t.Fatalf("first generation holds %d entries, want 10", len(got))
	}
	if got := r.between(5, 15); len(got) != 10 {
		t.Fatalf("between(5, 15) has %d entries across the cut, want 10", len(got))
	}
	first, tail := r.tail("a", 20)
	if first != 1 || !slices.Equal(tail, []uint64{2, 4, 6, 8, 10, 12, 14, 16, 18, 20}) {
		t.Fatalf("tail of a across the cut: %d %v", first, tail)
	}
	if last, ok, _ := r.last("a"); !ok || last != 10 {
		t.Fatalf("last of a: %d %v, want 10", last, ok)
	}
	if !r.prune(10, 1) {
		t.Fatal("the folded generation was not forgotten in one step")
	}
	first, tail = r.tail("a", 20)
	if first != 6 || !slices.Equal(tail, []uint64{12, 14, 16, 18, 20}) {
		t.Fatalf("tail of a after the prune: %d %v, want 6 [12 … 20]", first, tail)
	}
	if got := r.between(0, 20); len(got) != 10 {
		t.Fatalf("%d entries after the prune, want 10", len(got))
	}
	r.drop(15)
	if last, _, _ := r.last("b"); last != 8 {
		t.Fatalf("last of b after dropping 16–20: %d, want 8", last)
	}
}

package ledger_test

import (
	"testing"

	"github.com/heed/heed/ledger"
)

// TestSyntheticSubject checks that benchmark subjects look like real
// pseudonyms (16 lower-case hex digits), never repeat, and do not come in
// key order, which would make every new stream land at one edge of the
// stream index.
func TestSyntheticSubject(t *testing.T) {
	seen := map[string]bool{}
	ordered := 0
	prev := ""
	for n := range uint64(100000) {
		s := ledger.SyntheticSubject(n)
		if len(s) != 16 {
			t.Fatalf("subject %q has %d characters", s, len(s))
		}
		for _, c := range s {
			if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
				t.Fatalf("subject %q is not lower-case hex", s)
			}
		}
		if seen[s] {
			t.Fatalf("subject %q repeats at %d", s, n)
		}
		seen[s] = true
		if s > prev {
			ordered++
		}
		prev = s
	}
	if ordered < 45000 || ordered > 55000 {
		t.Fatalf("%d of 100000 subjects sort after the one before; want about half", ordered)
	}
}

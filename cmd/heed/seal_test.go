package main

import (
	"testing"
)

// TestUnsealedTail: a data directory whose last events no checkpoint
// covers (the server was killed before its sealer ran) is told apart from
// damage by verify's exit code, passes with --allow-unsealed-tail, and is
// sealed offline by heed seal.
func TestUnsealedTail(t *testing.T) {
	dir := newLedger(t, 40)
	steps := []struct {
		args []string
		code int
	}{
		{[]string{"verify", "--data", dir}, 3},
		{[]string{"verify", "--data", dir, "--allow-unsealed-tail"}, 0},
		{[]string{"seal", "--data", dir}, 0},
		{[]string{"verify", "--data", dir}, 0},
		{[]string{"seal", "--data", dir}, 0}, // nothing to seal
		{[]string{"seal", "--data", t.TempDir()}, 2},
	}
	for _, st := range steps {
		if code := run(st.args); code != st.code {
			t.Fatalf("heed %v: exit %d, want %d", st.args, code, st.code)
		}
	}
	// Damage is not an unsealed tail: exit 1 however verify is asked.
	dir = copyDir(t, realDir(t, 0))
	truncate(t, dir+"/"+storeFile, func(used int64) int64 { return used / 2 })
	for _, args := range [][]string{{"verify", "--data", dir}, {"verify", "--data", dir, "--allow-unsealed-tail"}} {
		if code := run(args); code != 1 {
			t.Errorf("heed %v on a damaged ledger: exit %d, want 1", args, code)
		}
	}
}

package merkle

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestAnchorFollowsAdd: once anchored, each checkpoint added is also in
// the anchor file, which outlives the checkpoint file, and no temporary
// file is left behind.
func TestAnchorFollowsAdd(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "anchor")
	if _, err := ReadAnchor(path); !errors.Is(err, ErrNotFound) {
		t.Fatalf("no anchor yet: %v", err)
	}
	cps, err := OpenCheckpoints(filepath.Join(dir, "checkpoints.db"), false)
	if err != nil {
		t.Fatal(err)
	}
	cps.Anchor(path)
	s := newSigner(t, "test.example/log")
	for _, size := range []int64{3, 9} {
		cp, err := s.Sign(Checkpoint{Origin: "test.example/log", Size: size})
		if err != nil {
			t.Fatal(err)
		}
		if err := cps.Add(cp); err != nil {
			t.Fatal(err)
		}
	}
	cps.Close()
	os.Remove(filepath.Join(dir, "checkpoints.db"))
	a, err := ReadAnchor(path)
	if err != nil || a.Size != 9 {
		t.Fatalf("anchor: size %d, %v", a.Size, err)
	}
	v, _ := NewVerifier(s.VerifierKey())
	if _, err := v.Open(a.Note); err != nil {
		t.Fatalf("anchor signature: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("files left: %v", entries)
	}
	if err := os.WriteFile(path, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadAnchor(path); !errors.Is(err, ErrMalformed) {
		t.Fatalf("garbage anchor: %v", err)
	}
}

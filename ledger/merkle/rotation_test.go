package merkle

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// TestSealerRotate: the rotation checkpoint is signed by both keys and
// announces the new one; later checkpoints are the new key's alone; a
// Chain from the old key follows; Spread keeps the announcement.
func TestSealerRotate(t *testing.T) {
	dir := t.TempDir()
	hl, err := OpenLog(filepath.Join(dir, "tree.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer hl.Close()
	cps, err := OpenCheckpoints(filepath.Join(dir, "checkpoints.db"), false)
	if err != nil {
		t.Fatal(err)
	}
	defer cps.Close()
	grow := func(to int64) {
		n, _ := hl.Size()
		for i := n + 1; i <= to; i++ {
			if _, err := hl.Append(i, fmt.Appendf(nil, "event %d", i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	old, next := newSigner(t, "o"), newSigner(t, "o")
	s := &Sealer{Source: hl, Signer: old, Origin: "o", Checkpoints: cps}
	ctx := context.Background()
	var notes [][]byte
	for _, n := range []int64{10, 20} {
		grow(n)
		c, err := s.Seal(ctx)
		if err != nil {
			t.Fatal(err)
		}
		notes = append(notes, c.Note)
	}
	if _, err := s.Rotate(ctx, next); !errors.Is(err, ErrNothingToSeal) {
		t.Fatalf("Rotate with nothing new: %v, want ErrNothingToSeal", err)
	}
	grow(21)
	rc, err := s.Rotate(ctx, next)
	if err != nil {
		t.Fatal(err)
	}
	if rc.Size != 21 || rc.Rotation == nil || rc.Rotation.Old != old.VerifierKey() || rc.Rotation.New != next.VerifierKey() {
		t.Fatalf("rotation checkpoint %+v", rc)
	}
	if !strings.Contains(string(rc.Note), "heed-key-rotation ") || strings.Count(string(rc.Note), "\n— ") != 2 {
		t.Fatalf("rotation note:\n%s", rc.Note)
	}
	for n := int64(22); n <= 40; n++ {
		grow(n)
		c, err := s.Seal(ctx)
		if err != nil {
			t.Fatal(err)
		}
		notes = append(notes, c.Note)
	}
	oldV, _ := NewVerifier(old.VerifierKey())
	if _, err := oldV.Open(notes[len(notes)-1]); !errors.Is(err, ErrSignature) {
		t.Fatalf("a checkpoint after the rotation opens with the old key: %v", err)
	}

	chain, err := NewChain(old.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	err = cps.List(1, 40, func(c Checkpoint) error {
		_, err := chain.Open(c.Note)
		return err
	})
	if err != nil {
		t.Fatalf("the chain from the old key: %v", err)
	}
	if got := chain.Keys(); len(got) != 2 || got[1] != next.VerifierKey() {
		t.Fatalf("chain keys %v", got)
	}
	// The retired key can no longer extend the chain.
	late, _ := old.Sign(Checkpoint{Origin: "o", Size: 41, Root: rc.Root})
	if _, err := chain.Open(late.Note); !errors.Is(err, ErrSignature) {
		t.Fatalf("old-key checkpoint after the rotation: %v", err)
	}

	rots, err := cps.Rotations()
	if err != nil || len(rots) != 1 || rots[0].Size != 21 {
		t.Fatalf("Rotations = %v, %v", rots, err)
	}
	spread, err := cps.Spread(40, 2)
	if err != nil {
		t.Fatal(err)
	}
	var sizes []int64
	for _, c := range spread {
		sizes = append(sizes, c.Size)
	}
	if fmt.Sprint(sizes) != "[20 21 40]" {
		t.Fatalf("Spread(40, 2) sizes %v, want [20 21 40] (the rotation kept)", sizes)
	}
	if spread, _ := cps.Spread(20, 2); len(spread) != 2 || spread[1].Size != 20 {
		t.Fatalf("Spread below the rotation includes it: %v", spread)
	}
}

func TestParseRotationLine(t *testing.T) {
	const root = "o\n5\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"
	for _, tc := range []struct {
		ext string
		ok  bool
		rot bool
	}{
		{"", true, false},
		{"other extension\n", true, false},
		{"heed-key-rotation a+1+x b+2+y\n", true, true},
		{"heed-key-rotation a+1+x\n", false, false},
		{"heed-key-rotation a+1+x a+1+x\n", false, false},
		{"heed-key-rotation a+1+x b+2+y c\n", false, false},
		{"heed-key-rotation a b\nheed-key-rotation b c\n", false, false},
	} {
		c, err := ParseBody(root + tc.ext)
		if (err == nil) != tc.ok || (c.Rotation != nil) != tc.rot {
			t.Errorf("ParseBody(%q) = %+v, %v", tc.ext, c.Rotation, err)
		}
		if tc.rot && c.Body() != root+tc.ext {
			t.Errorf("Body() = %q, want it back", c.Body())
		}
	}
}

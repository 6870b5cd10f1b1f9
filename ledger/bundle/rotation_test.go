package bundle

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/heed/heed/ledger/merkle"
)

// rotated signs tree at sizes with the test key up to and including
// rotateAt, where it announces a second key that signs the rest. It
// returns the checkpoints and both signers.
func rotated(t *testing.T, tree *merkle.Tree, rotateAt int64, sizes ...int64) ([]merkle.Checkpoint, *merkle.Signer, *merkle.Signer) {
	t.Helper()
	skey, vkey := testKeys(t)
	old, err := merkle.NewSigner(skey, vkey)
	if err != nil {
		t.Fatal(err)
	}
	next := newSigner(t)
	var out []merkle.Checkpoint
	for _, n := range sizes {
		root, err := tree.Root(n)
		if err != nil {
			t.Fatal(err)
		}
		c := merkle.Checkpoint{Origin: origin, Size: n, Root: root}
		switch {
		case n < rotateAt:
			c, err = old.Sign(c)
		case n == rotateAt:
			c, err = old.SignRotation(c, next)
		default:
			c, err = next.Sign(c)
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
	return out, old, next
}

func newSigner(t *testing.T) *merkle.Signer {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, origin)
	if err != nil {
		t.Fatal(err)
	}
	s, err := merkle.NewSigner(skey, vkey)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func exportAll(t *testing.T, log fixedLog, cps []merkle.Checkpoint, opt ExportOptions) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Export(context.Background(), &buf, log, origin, "", cps, opt); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestRotationKeepsTheChainOfTrust: a bundle whose later checkpoints are
// signed by a new key verifies with only the original key, and with the
// new one; the header carries both.
func TestRotationKeepsTheChainOfTrust(t *testing.T) {
	log, tree := makeLog(t, 30)
	cps, old, next := rotated(t, tree, 20, 10, 20, 25, 30)
	var buf bytes.Buffer
	if err := Export(context.Background(), &buf, log, origin, next.VerifierKey(), cps, ExportOptions{}); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	var h Header
	if err := json.Unmarshal(b[:bytes.IndexByte(b, '\n')], &h); err != nil {
		t.Fatal(err)
	}
	if h.Key != old.VerifierKey() || len(h.Keys) != 2 || h.Keys[1] != next.VerifierKey() {
		t.Fatalf("header key %s, keys %v; want the old key first, then the new", h.Key, h.Keys)
	}
	for _, trusted := range []string{old.VerifierKey(), next.VerifierKey(), ""} {
		rep, err := Verify(context.Background(), bytes.NewReader(b), Options{TrustedKey: trusted})
		if err != nil {
			t.Fatalf("trusting %q: %v", KeyID(trusted), err)
		}
		if rep.Key != next.VerifierKey() || len(rep.Keys) != 2 {
			t.Fatalf("report key %s, keys %v", KeyID(rep.Key), rep.Keys)
		}
	}
	if _, err := Verify(context.Background(), bytes.NewReader(b), Options{TrustedKey: newSigner(t).VerifierKey()}); !errors.Is(err, ErrKey) {
		t.Fatalf("a stranger's key: %v, want ErrKey", err)
	}
	// A checkpoint seen before, signed by the old key, still anchors.
	if _, err := Verify(context.Background(), bytes.NewReader(b), Options{TrustedKey: old.VerifierKey(), Since: cps[0].Note}); err != nil {
		t.Fatalf("since an old-key checkpoint: %v", err)
	}
}

// TestRotationForgeries: announcements not signed by the old key, old-key
// checkpoints after the rotation, and headers that lie about the keys all
// fail.
func TestRotationForgeries(t *testing.T) {
	log, tree := makeLog(t, 30)
	skey, vkey := testKeys(t)
	old, _ := merkle.NewSigner(skey, vkey)
	mskey, mvkey, err := note.GenerateKey(rand.Reader, origin)
	if err != nil {
		t.Fatal(err)
	}
	mallory, _ := merkle.NewSigner(mskey, mvkey)
	root := func(n int64) merkle.Checkpoint {
		r, err := tree.Root(n)
		if err != nil {
			t.Fatal(err)
		}
		return merkle.Checkpoint{Origin: origin, Size: n, Root: r}
	}
	sign := func(s *merkle.Signer, c merkle.Checkpoint) merkle.Checkpoint {
		c, err := s.Sign(c)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	// Mallory announces her own key, signing the announcement herself.
	forged := root(20)
	forged.Rotation = &merkle.Rotation{Old: old.VerifierKey(), New: mallory.VerifierKey()}
	forged = sign(mallory, forged)
	// Mallory adds her signature to an honest checkpoint: no announcement.
	honest := root(20)
	var signers []note.Signer
	for _, k := range []string{skey, mskey} {
		ns, err := note.NewSigner(k)
		if err != nil {
			t.Fatal(err)
		}
		signers = append(signers, ns)
	}
	if honest.Note, err = note.Sign(&note.Note{Text: honest.Body()}, signers...); err != nil {
		t.Fatal(err)
	}
	// The old key announces a rotation the new key never signed.
	oneSided := root(20)
	oneSided.Rotation = &merkle.Rotation{Old: old.VerifierKey(), New: mallory.VerifierKey()}
	oneSided = sign(old, oneSided)

	good, _, _ := rotated(t, tree, 20, 10, 20, 30)
	stale := sign(old, root(30)) // the retired key signs on

	for _, tc := range []struct {
		name string
		cps  []merkle.Checkpoint
		keys []string
		want error
	}{
		{"announcement signed only by the new key", []merkle.Checkpoint{sign(old, root(10)), forged, sign(mallory, root(30))}, nil, ErrSignature},
		{"announcement not signed by the new key", []merkle.Checkpoint{sign(old, root(10)), oneSided, sign(mallory, root(30))}, nil, ErrSignature},
		{"new key without announcement", []merkle.Checkpoint{sign(old, root(10)), honest, sign(mallory, root(30))}, []string{old.VerifierKey(), mallory.VerifierKey()}, ErrSignature},
		{"old key after the rotation", []merkle.Checkpoint{good[0], good[1], stale}, nil, ErrSignature},
		{"header keys not those announced", good, []string{old.VerifierKey(), mallory.VerifierKey()}, ErrKey},
		{"header keys hide the rotation", good, []string{old.VerifierKey()}, ErrKey},
		{"the real rotation", good, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := Export(context.Background(), &buf, log, origin, old.VerifierKey(), tc.cps, ExportOptions{}); err != nil {
				t.Fatal(err)
			}
			b := buf.Bytes()
			if tc.keys != nil {
				b = tamper(b, func(lines []string) []string {
					var h Header
					if err := json.Unmarshal([]byte(lines[0]), &h); err != nil {
						t.Fatal(err)
					}
					h.Key, h.Keys = tc.keys[0], tc.keys
					if len(tc.keys) == 1 {
						h.Keys = nil
					}
					hb, _ := json.Marshal(h)
					lines[0] = string(hb)
					return lines
				})
			}
			_, err := Verify(context.Background(), bytes.NewReader(b), Options{TrustedKey: old.VerifierKey()})
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("Verify = %v, want %v", err, tc.want)
			}
		})
	}
}

// TestThinKeepsRotations: however few checkpoints an export keeps, the
// announcement stays, so the bundle still verifies.
func TestThinKeepsRotations(t *testing.T) {
	log, tree := makeLog(t, 100)
	var sizes []int64
	for n := int64(1); n <= 100; n++ {
		sizes = append(sizes, n)
	}
	cps, old, _ := rotated(t, tree, 37, sizes...)
	b := exportAll(t, log, cps, ExportOptions{MaxCheckpoints: 3})
	rep, err := Verify(context.Background(), bytes.NewReader(b), Options{TrustedKey: old.VerifierKey()})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Checkpoints != 4 || !strings.Contains(string(b), "heed-key-rotation") {
		t.Fatalf("kept %d checkpoints, want 3 and the rotation", rep.Checkpoints)
	}
}

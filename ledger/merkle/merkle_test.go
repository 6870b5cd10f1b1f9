package merkle

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// rfc6962Root is RFC 6962 section 2.1 written out directly, independent of
// tlog, so the tree is checked against the specification, not itself.
func rfc6962Root(leaves [][]byte) [32]byte {
	switch len(leaves) {
	case 0:
		return sha256.Sum256(nil)
	case 1:
		return sha256.Sum256(append([]byte{0}, leaves[0]...))
	}
	k := 1
	for k*2 < len(leaves) {
		k *= 2
	}
	l, r := rfc6962Root(leaves[:k]), rfc6962Root(leaves[k:])
	return sha256.Sum256(append(append([]byte{1}, l[:]...), r[:]...))
}

func TestTreeMatchesRFC6962(t *testing.T) {
	// The test vector of the Certificate Transparency reference code.
	ct := [][]byte{{}, {0x00}, {0x10}, {0x20, 0x21}, {0x30, 0x31}, {0x40, 0x41, 0x42, 0x43},
		{0x50, 0x51, 0x52, 0x53, 0x54, 0x55, 0x56, 0x57},
		{0x60, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x6b, 0x6c, 0x6d, 0x6e, 0x6f}}
	var tr Tree
	for _, l := range ct {
		tr.Append(l)
	}
	root, err := tr.Root(8)
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(root[:]); got != "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328" {
		t.Fatalf("root of the CT vector = %s", got)
	}
	var leaves [][]byte
	tr = Tree{}
	for i := range 70 {
		leaf := fmt.Appendf(nil, `{"position":%d}`, i+1)
		leaves = append(leaves, leaf)
		tr.Append(leaf)
		for _, n := range []int{1, i / 2, i + 1} {
			if n == 0 {
				continue
			}
			got, err := tr.Root(int64(n))
			if err != nil {
				t.Fatal(err)
			}
			if want := rfc6962Root(leaves[:n]); got != tlog.Hash(want) {
				t.Fatalf("root at %d after %d leaves differs from RFC 6962", n, i+1)
			}
		}
	}
	if _, err := tr.Root(71); !errors.Is(err, ErrRange) {
		t.Fatalf("Root beyond size: %v", err)
	}
}

func newSigner(t testing.TB, name string) *Signer {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSigner(skey, vkey)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestCheckpointSignOpen(t *testing.T) {
	s := newSigner(t, "heed.example/l-test")
	var tr Tree
	for i := range 10 {
		tr.Append([]byte{byte(i)})
	}
	root, _ := tr.Root(10)
	cp, err := s.Sign(Checkpoint{Origin: "heed.example/l-test", Size: 10, Root: root})
	if err != nil {
		t.Fatal(err)
	}
	body, _, _ := strings.Cut(string(cp.Note), "\n\n")
	want := "heed.example/l-test\n10\n" + tlogB64(root)
	if body+"\n" != want+"\n" {
		t.Fatalf("checkpoint body\n%q\nwant\n%q", body, want)
	}
	if !strings.Contains(string(cp.Note), "\n\n\u2014 heed.example/l-test ") {
		t.Fatalf("no note signature line in %q", cp.Note)
	}
	v, err := NewVerifier(s.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	got, err := v.Open(cp.Note)
	if err != nil {
		t.Fatal(err)
	}
	if got.Size != 10 || got.Root != root || got.Origin != "heed.example/l-test" {
		t.Fatalf("opened %+v", got)
	}

	other, err := NewVerifier(newSigner(t, "heed.example/l-test").VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Open(cp.Note); !errors.Is(err, ErrSignature) {
		t.Fatalf("other key: %v", err)
	}
	forged := []byte(strings.Replace(string(cp.Note), "\n10\n", "\n11\n", 1))
	if _, err := v.Open(forged); !errors.Is(err, ErrSignature) {
		t.Fatalf("changed size: %v", err)
	}
	if _, err := NewSigner(newSignerKey(t), s.VerifierKey()); err == nil {
		t.Fatal("NewSigner accepted a verifier key of another signer")
	}
}

func tlogB64(h tlog.Hash) string {
	cp := Checkpoint{Origin: "x", Size: 1, Root: h}
	return strings.Split(cp.Body(), "\n")[2]
}

func newSignerKey(t *testing.T) string {
	skey, _, err := note.GenerateKey(rand.Reader, "heed.example/l-test")
	if err != nil {
		t.Fatal(err)
	}
	return skey
}

func TestParseBody(t *testing.T) {
	good := Checkpoint{Origin: "o", Size: 3, Root: tlog.RecordHash([]byte("x"))}.Body()
	tests := []struct {
		name, text string
		ok         bool
	}{
		{"good", good, true},
		{"extension line", good + "ext\n", true},
		{"no final newline", strings.TrimSuffix(good, "\n"), false},
		{"leading zero size", strings.Replace(good, "\n3\n", "\n03\n", 1), false},
		{"negative size", strings.Replace(good, "\n3\n", "\n-3\n", 1), false},
		{"short root", "o\n3\nAAAA\n", false},
		{"empty origin", "\n3\n" + strings.Split(good, "\n")[2] + "\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseBody(tt.text)
			if tt.ok != (err == nil) {
				t.Fatalf("ParseBody = %+v, %v", c, err)
			}
			if err != nil && !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v is not ErrMalformed", err)
			}
		})
	}
}

func TestProofs(t *testing.T) {
	s := newSigner(t, "o")
	var tr Tree
	var leaves [][]byte
	for i := range 37 {
		leaf := fmt.Appendf(nil, "leaf %d", i+1)
		leaves = append(leaves, leaf)
		tr.Append(leaf)
	}
	cp := func(n int64) Checkpoint {
		root, err := tr.Root(n)
		if err != nil {
			t.Fatal(err)
		}
		c, err := s.Sign(Checkpoint{Origin: "o", Size: n, Root: root})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	for _, size := range []int64{1, 2, 13, 32, 37} {
		c := cp(size)
		for pos := int64(1); pos <= size; pos++ {
			p, err := Inclusion(&tr, pos, size)
			if err != nil {
				t.Fatal(err)
			}
			if err := CheckInclusion(p, c, pos, leaves[pos-1]); err != nil {
				t.Fatalf("inclusion of %d in %d: %v", pos, size, err)
			}
			if size > 1 {
				other := pos%size + 1
				if err := CheckInclusion(p, c, pos, leaves[other-1]); err == nil {
					t.Fatalf("leaf %d accepted at position %d", other, pos)
				}
			}
		}
		for old := int64(1); old <= size; old++ {
			p, err := Consistency(&tr, old, size)
			if err != nil {
				t.Fatal(err)
			}
			if err := CheckConsistency(p, cp(old), c); err != nil {
				t.Fatalf("consistency %d→%d: %v", old, size, err)
			}
		}
	}
	// A fork: same size, different last leaf.
	var fork Tree
	for i, l := range leaves[:20] {
		if i == 19 {
			l = []byte("forged")
		}
		fork.Append(l)
	}
	froot, _ := fork.Root(20)
	p, err := Consistency(&tr, 20, 37)
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckConsistency(p, Checkpoint{Size: 20, Root: froot}, cp(37)); !errors.Is(err, ErrInconsistent) {
		t.Fatalf("fork accepted: %v", err)
	}
	if _, err := Inclusion(&tr, 0, 5); !errors.Is(err, ErrRange) {
		t.Fatalf("position 0: %v", err)
	}
	if _, err := Inclusion(&tr, 6, 5); !errors.Is(err, ErrRange) {
		t.Fatalf("position beyond size: %v", err)
	}
}

func TestCheckpointsStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "checkpoints.db")
	cps, err := OpenCheckpoints(path, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cps.Latest(); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Latest of empty: %v", err)
	}
	s := newSigner(t, "o")
	for _, n := range []int64{1, 5, 9} {
		c, err := s.Sign(Checkpoint{Origin: "o", Size: n, Root: tlog.RecordHash([]byte{byte(n)})})
		if err != nil {
			t.Fatal(err)
		}
		if err := cps.Add(c); err != nil {
			t.Fatal(err)
		}
	}
	c, _ := s.Sign(Checkpoint{Origin: "o", Size: 5, Root: tlog.Hash{}})
	if err := cps.Add(c); err == nil {
		t.Fatal("Add accepted a checkpoint not after the latest")
	}
	if err := cps.Close(); err != nil {
		t.Fatal(err)
	}

	ro, err := OpenCheckpoints(path, true)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	latest, err := ro.Latest()
	if err != nil || latest.Size != 9 || latest.Root != tlog.RecordHash([]byte{9}) {
		t.Fatalf("Latest = %+v, %v", latest, err)
	}
	v, _ := NewVerifier(s.VerifierKey())
	if _, err := v.Open(latest.Note); err != nil {
		t.Fatalf("stored note no longer verifies: %v", err)
	}
	if c, err := ro.At(5); err != nil || c.Size != 5 {
		t.Fatalf("At(5) = %+v, %v", c, err)
	}
	if _, err := ro.At(4); !errors.Is(err, ErrNotFound) {
		t.Fatalf("At(4): %v", err)
	}
	var sizes []int64
	if err := ro.List(2, 9, func(c Checkpoint) error { sizes = append(sizes, c.Size); return nil }); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(sizes) != "[5 9]" {
		t.Fatalf("List(2, 9) = %v", sizes)
	}
	stop := errors.New("stop")
	if err := ro.List(0, 100, func(Checkpoint) error { return stop }); err != stop {
		t.Fatalf("List did not return fn's error: %v", err)
	}
}

func TestLogAppendResumeAndSeal(t *testing.T) {
	dir := t.TempDir()
	hl, err := OpenLog(filepath.Join(dir, "tree.db"))
	if err != nil {
		t.Fatal(err)
	}
	var mem Tree
	leaf := func(i int) []byte { return fmt.Appendf(nil, "event %d", i) }
	for i := 1; i <= 10; i++ {
		if _, err := hl.Append(int64(i), leaf(i)); err != nil {
			t.Fatal(err)
		}
		mem.Append(leaf(i))
	}
	if _, err := hl.Append(10, leaf(10)); err == nil {
		t.Fatal("Append accepted a duplicate position")
	}
	if _, err := hl.Append(12, leaf(12)); err == nil {
		t.Fatal("Append accepted a gap")
	}
	batch := [][]byte{}
	for i := 11; i <= 40; i++ {
		batch = append(batch, leaf(i))
		mem.Append(leaf(i))
	}
	if n, err := hl.Append(11, batch...); err != nil || n != 40 {
		t.Fatalf("batch Append = %d, %v", n, err)
	}
	hl.Close()
	hl, err = OpenLog(filepath.Join(dir, "tree.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer hl.Close()
	if n, _ := hl.Size(); n != 40 {
		t.Fatalf("size after reopen = %d", n)
	}
	for _, n := range []int64{1, 17, 40} {
		a, err := tlog.TreeHash(n, hl)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := mem.Root(n)
		if a != b {
			t.Fatalf("hash log root at %d differs from in-memory tree", n)
		}
	}

	cps, err := OpenCheckpoints(filepath.Join(dir, "checkpoints.db"), false)
	if err != nil {
		t.Fatal(err)
	}
	defer cps.Close()
	s := &Sealer{Source: hl, Signer: newSigner(t, "o"), Origin: "o", Checkpoints: cps}
	ctx := context.Background()
	c, err := s.Seal(ctx)
	if err != nil || c.Size != 40 {
		t.Fatalf("Seal = %+v, %v", c, err)
	}
	if again, err := s.Seal(ctx); err != nil || string(again.Note) != string(c.Note) {
		t.Fatalf("Seal without growth cut a new checkpoint: %+v, %v", again, err)
	}
	if _, err := hl.Append(41, leaf(41)); err != nil {
		t.Fatal(err)
	}
	if c, err := s.Seal(ctx); err != nil || c.Size != 41 {
		t.Fatalf("Seal after growth = %+v, %v", c, err)
	}
}

// rewritten is a source whose history differs from what was signed.
type rewritten struct{ *Tree }

func TestSealerRefusesRewrittenHistory(t *testing.T) {
	cps, err := OpenCheckpoints(filepath.Join(t.TempDir(), "checkpoints.db"), false)
	if err != nil {
		t.Fatal(err)
	}
	defer cps.Close()
	var a, b Tree
	for i := range 5 {
		a.Append([]byte{byte(i)})
		b.Append([]byte{byte(i + 100)})
	}
	signer := newSigner(t, "o")
	if _, err := (&Sealer{Source: &a, Signer: signer, Origin: "o", Checkpoints: cps}).Seal(context.Background()); err != nil {
		t.Fatal(err)
	}
	b.Append([]byte{6})
	_, err = (&Sealer{Source: rewritten{&b}, Signer: signer, Origin: "o", Checkpoints: cps}).Seal(context.Background())
	if !errors.Is(err, ErrInconsistent) {
		t.Fatalf("sealing a rewritten history: %v", err)
	}
	if l, _ := cps.Latest(); l.Size != 5 {
		t.Fatalf("a checkpoint of the rewritten history was stored: %d", l.Size)
	}
}

func TestSealerRunSealsOnShutdown(t *testing.T) {
	cps, err := OpenCheckpoints(filepath.Join(t.TempDir(), "checkpoints.db"), false)
	if err != nil {
		t.Fatal(err)
	}
	defer cps.Close()
	var tr Tree
	tr.Append([]byte("a"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// Interval is long: only the final seal can produce a checkpoint.
	s := &Sealer{Source: &tr, Signer: newSigner(t, "o"), Origin: "o", Checkpoints: cps, Interval: 1 << 40}
	if err := s.Run(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v", err)
	}
	if l, err := cps.Latest(); err != nil || l.Size != 1 {
		t.Fatalf("no final checkpoint: %+v, %v", l, err)
	}
}

func TestSealersRacingShareOneFile(t *testing.T) {
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
	signer := newSigner(t, "o")
	ctx, cancel := context.WithCancel(context.Background())
	// A background sealer with a short interval while leaves arrive, and
	// explicit seals racing it, as an export does.
	bg := &Sealer{Source: hl, Signer: signer, Origin: "o", Checkpoints: cps, Interval: time.Millisecond}
	done := make(chan error)
	go func() { done <- bg.Run(ctx) }()
	for i := int64(1); i <= 200; i++ {
		if _, err := hl.Append(i, []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
		if i%20 == 0 {
			c, err := (&Sealer{Source: hl, Signer: signer, Origin: "o", Checkpoints: cps}).Seal(ctx)
			if err != nil || c.Size < i {
				t.Fatalf("explicit seal at %d = %d, %v", i, c.Size, err)
			}
		}
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v", err)
	}
	v, _ := NewVerifier(signer.VerifierKey())
	var prev Checkpoint
	n := 0
	err = cps.List(0, 1<<62, func(c Checkpoint) error {
		if _, err := v.Open(c.Note); err != nil {
			return err
		}
		if prev.Size > 0 {
			p, err := Consistency(hl, prev.Size, c.Size)
			if err != nil {
				return err
			}
			if err := CheckConsistency(p, prev, c); err != nil {
				return err
			}
		}
		prev = c
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if prev.Size != 200 || n < 10 {
		t.Fatalf("%d checkpoints, last of size %d; want >= 10 ending at 200", n, prev.Size)
	}
}

func TestCheckpointsSpread(t *testing.T) {
	cps, err := OpenCheckpoints(filepath.Join(t.TempDir(), "checkpoints.db"), false)
	if err != nil {
		t.Fatal(err)
	}
	defer cps.Close()
	s := newSigner(t, "o")
	for n := int64(3); n <= 3000; n += 3 {
		c, _ := s.Sign(Checkpoint{Origin: "o", Size: n, Root: tlog.RecordHash([]byte{byte(n)})})
		if err := cps.Add(c); err != nil {
			t.Fatal(err)
		}
	}
	sizes := func(cs []Checkpoint) []int64 {
		var out []int64
		for _, c := range cs {
			out = append(out, c.Size)
		}
		return out
	}
	tests := []struct {
		upTo int64
		n    int
		want string
	}{
		{3000, 4, "[750 1500 2250 3000]"},
		{3000, 1, "[3000]"},
		{1000, 2, "[501 999]"},
		{2, 5, "[]"},
		{10, 100, "[3 6 9]"},
	}
	for _, tt := range tests {
		got, err := cps.Spread(tt.upTo, tt.n)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(sizes(got)) != tt.want {
			t.Errorf("Spread(%d, %d) = %v, want %s", tt.upTo, tt.n, sizes(got), tt.want)
		}
	}
}

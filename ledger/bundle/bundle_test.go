package bundle

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/heed/heed/ledger"
	"github.com/heed/heed/ledger/merkle"
)

var update = flag.Bool("update", false, "rewrite golden files")

// fixedLog is a deterministic global log for golden output.
type fixedLog []ledger.Event

func (f fixedLog) ReadAll(_ context.Context, from uint64, limit int) ([]ledger.Event, error) {
	if from > uint64(len(f)) {
		return nil, nil
	}
	end := min(uint64(len(f)), from-1+uint64(limit))
	return f[from-1 : end], nil
}

func testKeys(t testing.TB) (skey, vkey string) {
	t.Helper()
	s, err := os.ReadFile("testdata/test.skey")
	if err != nil {
		t.Fatal(err)
	}
	v, err := os.ReadFile("testdata/test.vkey")
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(s)), strings.TrimSpace(string(v))
}

const origin = "heed.example/l-golden"

// makeLog returns n deterministic events and a tree over their leaves.
func makeLog(t testing.TB, n int) (fixedLog, *merkle.Tree) {
	t.Helper()
	t0 := time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC)
	log := make(fixedLog, n)
	var tree merkle.Tree
	for i := range n {
		e, err := ledger.NewEvent("acme", fmt.Sprintf("%064x", i%7), t0.Add(time.Duration(i)*time.Second),
			ledger.ContactMade{Line: "L1", Channel: "call", Purpose: "service", Outcome: "answered", DurationS: i % 90})
		if err != nil {
			t.Fatal(err)
		}
		e.ID = fmt.Sprintf("0193a1b2-0000-7000-8000-%012d", i+1)
		e.Stream = ledger.ContactStream("acme", e.Subject)
		e.Revision = uint64(i/7 + 1)
		e.Position = uint64(i + 1)
		e.RecordedAt = e.OccurredAt.Add(time.Millisecond)
		e.Actor = "key-1"
		log[i] = e
		leaf, err := e.Leaf()
		if err != nil {
			t.Fatal(err)
		}
		tree.Append(leaf)
	}
	return log, &tree
}

// sign returns signed checkpoints of tree at sizes.
func sign(t testing.TB, tree *merkle.Tree, sizes ...int64) []merkle.Checkpoint {
	t.Helper()
	skey, vkey := testKeys(t)
	s, err := merkle.NewSigner(skey, vkey)
	if err != nil {
		t.Fatal(err)
	}
	var out []merkle.Checkpoint
	for _, n := range sizes {
		root, err := tree.Root(n)
		if err != nil {
			t.Fatal(err)
		}
		cp, err := s.Sign(merkle.Checkpoint{Origin: origin, Size: n, Root: root})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, cp)
	}
	return out
}

func export(t testing.TB, log fixedLog, cps []merkle.Checkpoint, size int64) []byte {
	t.Helper()
	_, vkey := testKeys(t)
	var buf bytes.Buffer
	if err := Export(context.Background(), &buf, log, origin, vkey, cps, ExportOptions{Size: size}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestExportGolden(t *testing.T) {
	log, tree := makeLog(t, 5)
	got := export(t, log, sign(t, tree, 2, 5), 0)
	golden := filepath.Join("testdata", "five.ndjson")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("export differs from %s (run with -update if intended):\n%s", golden, got)
	}
	// Each event line is exactly the leaf the tree hashed.
	lines := strings.Split(strings.TrimSuffix(string(got), "\n"), "\n")
	if len(lines) != 1+5+2 {
		t.Fatalf("%d lines, want 8", len(lines))
	}
	var again merkle.Tree
	for i, l := range lines[1:6] {
		leaf, _ := log[i].Leaf()
		if l != string(leaf) {
			t.Fatalf("line %d is not the leaf of position %d", i+2, i+1)
		}
		again.Append([]byte(l))
	}
	r1, _ := again.Root(5)
	r2, _ := tree.Root(5)
	if r1 != r2 {
		t.Fatal("bundle lines do not hash to the tree")
	}
	rep, err := Verify(context.Background(), bytes.NewReader(want), Options{})
	if err != nil {
		t.Fatalf("golden bundle does not verify: %v", err)
	}
	if rep.Events != 5 || rep.Checkpoints != 2 || rep.Origin != origin || rep.Root != r2 {
		t.Fatalf("report %+v", rep)
	}
}

func TestExportLeavesOutCheckpointsBeyondSize(t *testing.T) {
	log, tree := makeLog(t, 30)
	b := export(t, log, sign(t, tree, 10, 20, 30), 20)
	if got := strings.Count(string(b), `{"checkpoint":`); got != 2 {
		t.Fatalf("%d checkpoint lines, want 2", got)
	}
	if _, err := Verify(context.Background(), bytes.NewReader(b), Options{}); err != nil {
		t.Fatal(err)
	}
}

// tamper applies f to the lines of b (header at index 0).
func tamper(b []byte, f func(lines []string) []string) []byte {
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	return []byte(strings.Join(f(lines), "\n") + "\n")
}

func TestVerifyCatchesTampering(t *testing.T) {
	log, tree := makeLog(t, 1000)
	sizes := []int64{}
	for n := int64(100); n <= 1000; n += 100 {
		sizes = append(sizes, n)
	}
	good := export(t, log, sign(t, tree, sizes...), 0)
	if _, err := Verify(context.Background(), bytes.NewReader(good), Options{}); err != nil {
		t.Fatalf("untampered bundle: %v", err)
	}
	_, vkey := testKeys(t)
	other, _ := makeLog(t, 1)
	otherLeaf, _ := other[0].Leaf()

	tests := []struct {
		name   string
		bundle []byte
		kind   error
		// Either the exact position, or a range that must contain at.
		pos      int64
		from, to int64
	}{
		{"one byte of a payload changed", tamper(good, func(l []string) []string {
			l[250] = strings.Replace(l[250], `"answered"`, `"answerEd"`, 1)
			return l
		}), ErrTampered, 0, 201, 300},
		{"one byte of a time changed", tamper(good, func(l []string) []string {
			l[1] = strings.Replace(l[1], `T03:00:00Z`, `T03:00:01Z`, 1)
			return l
		}), ErrTampered, 0, 1, 100},
		{"one byte breaks the JSON", tamper(good, func(l []string) []string {
			l[777] = strings.Replace(l[777], `"type":`, `"type";`, 1)
			return l
		}), ErrFormat, 777, 0, 0},
		{"position renumbered", tamper(good, func(l []string) []string {
			l[400] = strings.Replace(l[400], `"position":400,`, `"position":401,`, 1)
			return l
		}), ErrSequence, 400, 0, 0},
		{"one event dropped", tamper(good, func(l []string) []string {
			return append(l[:500:500], l[501:]...)
		}), ErrSequence, 500, 0, 0},
		{"last event dropped", tamper(good, func(l []string) []string {
			return append(l[:1000:1000], l[1001:]...)
		}), ErrSequence, 0, 1000, 1000},
		{"two events swapped", tamper(good, func(l []string) []string {
			l[10], l[11] = l[11], l[10]
			return l
		}), ErrSequence, 10, 0, 0},
		{"one event inserted", tamper(good, func(l []string) []string {
			return append(l[:600:600], append([]string{string(otherLeaf)}, l[600:]...)...)
		}), ErrSequence, 600, 0, 0},
		{"one event inserted at the end", tamper(good, func(l []string) []string {
			return append(l[:1001:1001], append([]string{strings.Replace(l[1000], `"position":1000,`, `"position":1001,`, 1)}, l[1001:]...)...)
		}), ErrSequence, 1001, 0, 0},
		{"event replaced by a renumbered other", tamper(good, func(l []string) []string {
			l[333] = strings.Replace(string(otherLeaf), `"position":1,`, `"position":333,`, 1)
			return l
		}), ErrTampered, 0, 301, 400},
		{"last checkpoint dropped, header fixed", tamper(good, func(l []string) []string {
			l[0] = strings.Replace(l[0], `"checkpoints":10`, `"checkpoints":9`, 1)
			return l[:len(l)-1]
		}), ErrUncovered, 0, 901, 1000},
		{"checkpoint signature altered", tamper(good, func(l []string) []string {
			l[1003] = strings.Replace(l[1003], `\n300\n`, `\n301\n`, 1)
			return l
		}), ErrSignature, 0, 0, 0},
		{"checkpoint dropped", tamper(good, func(l []string) []string {
			return l[:len(l)-1]
		}), ErrTruncated, 0, 0, 0},
		{"header key replaced", tamper(good, func(l []string) []string {
			other := newKey(t)
			l[0] = strings.Replace(l[0], vkey, other, 1)
			return l
		}), ErrSignature, 0, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Verify(context.Background(), bytes.NewReader(tt.bundle), Options{Workers: 2})
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Verify = %v, want *Error", err)
			}
			if !errors.Is(err, tt.kind) {
				t.Fatalf("Verify = %v, want %v", err, tt.kind)
			}
			if tt.pos != 0 && e.Position != tt.pos {
				t.Fatalf("Verify = %v, want position %d", err, tt.pos)
			}
			if tt.from != 0 && (e.From != tt.from || e.To != tt.to) {
				t.Fatalf("Verify = %v, want positions %d..%d", err, tt.from, tt.to)
			}
			where := fmt.Sprintf("position %d", tt.pos)
			if tt.from != 0 && tt.from != tt.to {
				where = fmt.Sprintf("positions %d..%d", tt.from, tt.to)
			} else if tt.from != 0 {
				where = fmt.Sprintf("position %d", tt.from)
			}
			if (tt.pos != 0 || tt.from != 0) && !strings.Contains(err.Error(), where) {
				t.Fatalf("message %q does not say %q", err, where)
			}
		})
	}
}

func newKey(t *testing.T) string {
	t.Helper()
	_, vkey, err := noteKey()
	if err != nil {
		t.Fatal(err)
	}
	return vkey
}

func TestVerifyTruncated(t *testing.T) {
	log, tree := makeLog(t, 50)
	good := export(t, log, sign(t, tree, 50), 0)
	lines := bytes.SplitAfter(good, []byte("\n"))
	mid := 0
	for _, l := range lines[:20] {
		mid += len(l)
	}
	tests := []struct {
		name string
		b    []byte
		pos  int64
	}{
		{"cut mid event line", good[:mid+30], 20},
		{"cut after an event line", good[:mid], 0},
		{"cut mid checkpoint", good[:len(good)-40], 0},
		{"cut mid header", good[:10], 0},
		{"empty", nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Verify(context.Background(), bytes.NewReader(tt.b), Options{})
			if !errors.Is(err, ErrTruncated) {
				t.Fatalf("Verify = %v, want ErrTruncated", err)
			}
			var e *Error
			if errors.As(err, &e) && tt.pos != 0 && e.Position != tt.pos {
				t.Fatalf("Verify = %v, want position %d", err, tt.pos)
			}
		})
	}
}

func TestVerifyTrustedKey(t *testing.T) {
	log, tree := makeLog(t, 10)
	good := export(t, log, sign(t, tree, 10), 0)
	_, vkey := testKeys(t)
	if _, err := Verify(context.Background(), bytes.NewReader(good), Options{TrustedKey: vkey}); err != nil {
		t.Fatalf("right key: %v", err)
	}
	wrong := newKey(t)
	_, err := Verify(context.Background(), bytes.NewReader(good), Options{TrustedKey: wrong})
	if !errors.Is(err, ErrKey) || !strings.Contains(err.Error(), "not by the trusted key") {
		t.Fatalf("wrong trusted key: %v", err)
	}
	if _, err := Verify(context.Background(), bytes.NewReader(good), Options{TrustedKey: "garbage"}); !errors.Is(err, ErrKey) {
		t.Fatalf("garbage trusted key: %v", err)
	}
}

func TestVerifyEmptyLedger(t *testing.T) {
	b := export(t, nil, nil, 0)
	rep, err := Verify(context.Background(), bytes.NewReader(b), Options{})
	if err != nil || rep.Events != 0 {
		t.Fatalf("empty bundle: %+v, %v", rep, err)
	}
}

func TestVerifyUncoveredTail(t *testing.T) {
	log, tree := makeLog(t, 30)
	b := export(t, log, sign(t, tree, 25), 30)
	_, err := Verify(context.Background(), bytes.NewReader(b), Options{})
	var e *Error
	if !errors.As(err, &e) || !errors.Is(err, ErrUncovered) || e.From != 26 || e.To != 30 {
		t.Fatalf("Verify = %v, want positions 26..30 uncovered", err)
	}
}

func TestKeyID(t *testing.T) {
	// The base64 part of this key contains '+'.
	if got := KeyID("heed.example/l-x+3579bc0f+AU31tpGu0Dew47Oj6nk/E+2abc="); got != "heed.example/l-x+3579bc0f" {
		t.Fatalf("KeyID = %q", got)
	}
}

func TestVerifyRefusesHugeLine(t *testing.T) {
	_, vkey := testKeys(t)
	b := []byte(`{"format":"heed-bundle/1","origin":"o","key":"` + vkey + `","events":1,"checkpoints":0}` + "\n")
	b = append(b, bytes.Repeat([]byte("x"), maxLine+(2<<20))...)
	_, err := Verify(context.Background(), bytes.NewReader(b), Options{})
	if !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("Verify = %v", err)
	}
}

func TestExportThinsCheckpoints(t *testing.T) {
	log, tree := makeLog(t, 100)
	var sizes []int64
	for n := int64(1); n <= 100; n++ {
		sizes = append(sizes, n)
	}
	cps := sign(t, tree, sizes...)
	_, vkey := testKeys(t)
	for _, tt := range []struct{ max, want int }{{10, 10}, {-1, 100}, {0, 100}, {1, 1}} {
		var buf bytes.Buffer
		if err := Export(context.Background(), &buf, log, origin, vkey, cps, ExportOptions{MaxCheckpoints: tt.max}); err != nil {
			t.Fatal(err)
		}
		rep, err := Verify(context.Background(), &buf, Options{})
		if err != nil {
			t.Fatalf("max %d: %v", tt.max, err)
		}
		if rep.Checkpoints != int64(tt.want) {
			t.Fatalf("max %d: %d checkpoints, want %d", tt.max, rep.Checkpoints, tt.want)
		}
	}
	if got := thin(cps, 10); got[0].Size != 10 || got[9].Size != 100 {
		t.Fatalf("thin kept sizes %d..%d, want 10..100", got[0].Size, got[9].Size)
	}
}

func TestVerifySinceCatchesRollback(t *testing.T) {
	log, tree := makeLog(t, 60)
	cps := sign(t, tree, 20, 40, 60)
	full := export(t, log, cps, 0)
	// The auditor saw the checkpoint of size 60 last time.
	seen := cps[2].Note
	if _, err := Verify(context.Background(), bytes.NewReader(full), Options{Since: seen}); err != nil {
		t.Fatalf("full bundle: %v", err)
	}
	if _, err := Verify(context.Background(), bytes.NewReader(full), Options{Since: cps[0].Note}); err != nil {
		t.Fatalf("full bundle, older checkpoint seen: %v", err)
	}
	// A bundle cut back to 40 events, with its own checkpoints, verifies on
	// its own but not against what the auditor saw.
	short := export(t, log, cps[:2], 0)
	if _, err := Verify(context.Background(), bytes.NewReader(short), Options{}); err != nil {
		t.Fatalf("short bundle alone: %v", err)
	}
	_, err := Verify(context.Background(), bytes.NewReader(short), Options{Since: seen})
	var e *Error
	if !errors.As(err, &e) || !errors.Is(err, ErrRollback) || e.From != 41 || e.To != 60 {
		t.Fatalf("short bundle since 60: %v", err)
	}
	// A checkpoint of a different history of the same size.
	other := makeOther(t, 60)
	_, err = Verify(context.Background(), bytes.NewReader(full), Options{Since: other.Note})
	if !errors.Is(err, ErrRollback) || !strings.Contains(err.Error(), "rewritten") {
		t.Fatalf("forked history: %v", err)
	}
	forged := []byte(strings.Replace(string(seen), "\n60\n", "\n61\n", 1))
	if _, err := Verify(context.Background(), bytes.NewReader(full), Options{Since: forged}); !errors.Is(err, ErrSignature) {
		t.Fatalf("forged seen checkpoint: %v", err)
	}
}

// makeOther signs a checkpoint over n leaves unlike makeLog's.
func makeOther(t *testing.T, n int64) merkle.Checkpoint {
	var tr merkle.Tree
	for i := range n {
		tr.Append([]byte(fmt.Sprint("other", i)))
	}
	return sign(t, &tr, n)[0]
}

package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/heed/heed/ledger"
	"github.com/heed/heed/ledger/bundle"
	"github.com/heed/heed/ledger/pii"
)

// newLedger makes a data directory holding n events, the last of them
// after an erasure, and returns it.
func newLedger(t *testing.T, n int) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	d, err := openData(dir, "", "", false)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ctx := context.Background()
	subject := pii.Pseudonym(d.Secrets.PseudonymKey, "+8613800138000")
	for i := range n - 1 {
		e, err := ledger.NewEvent("acme", subject, time.Now(), ledger.ContactMade{Line: "L1", Channel: "call", Purpose: "service", DurationS: i})
		if err != nil {
			t.Fatal(err)
		}
		if e.PII, err = d.Keys.Seal(subject, map[string]string{"number": "+8613800138000"}); err != nil {
			t.Fatal(err)
		}
		if _, err := d.Store.Append(ctx, ledger.ContactStream("acme", subject), ledger.Any(), []ledger.Event{e}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := pii.EraseSubject(ctx, d.Store, d.Keys, subject, "", "test", "asked"); err != nil {
		t.Fatal(err)
	}
	return dir
}

func listDir(t *testing.T, dir string) string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		fi, _ := e.Info()
		names = append(names, e.Name()+"@"+fi.ModTime().String())
	}
	return strings.Join(names, ",")
}

func TestExportVerifyRoundTrip(t *testing.T) {
	ctx := context.Background()
	dir := newLedger(t, 40)
	out := filepath.Join(t.TempDir(), "audit.ndjson")

	// The live store verifies only once sealed: nothing covers it yet.
	err := verify(ctx, []string{"--data", dir})
	if !errors.Is(err, bundle.ErrUncovered) || !strings.Contains(err.Error(), "events 1..40 are not yet sealed") {
		t.Fatalf("verify --data before any checkpoint: %v", err)
	}
	if code := run([]string{"export", "--data", dir, "--out", out}); code != 0 {
		t.Fatalf("export exit %d", code)
	}
	if err := verify(ctx, []string{out}); err != nil {
		t.Fatalf("verify bundle: %v", err)
	}
	before := listDir(t, dir)
	if err := verify(ctx, []string{"--data", dir}); err != nil {
		t.Fatalf("verify --data: %v", err)
	}
	if listDir(t, dir) != before {
		t.Fatal("verify --data wrote to the data directory")
	}
	vkey, err := os.ReadFile(filepath.Join(dir, "signing.key"))
	if err != nil {
		t.Fatal(err)
	}
	d, err := openData(dir, "", "", true)
	if err != nil {
		t.Fatal(err)
	}
	pub := d.Secrets.VerifierKey
	d.Close()
	keyFile := filepath.Join(t.TempDir(), "heed.pub")
	os.WriteFile(keyFile, []byte(pub+"\n"), 0o644)
	if err := verify(ctx, []string{"--key", keyFile, out}); err != nil {
		t.Fatalf("verify with the right key: %v", err)
	}
	if err := verify(ctx, []string{out, "--key", pub}); err != nil {
		t.Fatalf("verify with the right key after FILE: %v", err)
	}
	// The auditor kept the checkpoint from last time: the ledger extends it.
	d, err = openData(dir, "", "", true)
	if err != nil {
		t.Fatal(err)
	}
	latest, err := d.Checkpoints.Latest()
	d.Close()
	if err != nil {
		t.Fatal(err)
	}
	seen := filepath.Join(t.TempDir(), "seen.note")
	os.WriteFile(seen, latest.Note, 0o644)
	if err := verify(ctx, []string{"--since", seen, out}); err != nil {
		t.Fatalf("verify --since the latest checkpoint: %v", err)
	}
	if err := verify(ctx, []string{"--since", seen, "--data", dir}); err != nil {
		t.Fatalf("verify --data --since the latest checkpoint: %v", err)
	}
	forged := bytes.Replace(latest.Note, []byte("\n40\n"), []byte("\n41\n"), 1)
	os.WriteFile(seen, forged, 0o644)
	if err := verify(ctx, []string{"--since", seen, out}); !errors.Is(err, bundle.ErrSignature) {
		t.Fatalf("verify --since a forged checkpoint: %v", err)
	}
	if bytes.Contains(mustRead(t, out), vkey[:20]) {
		t.Fatal("the bundle contains the private signing key")
	}
	if bytes.Contains(mustRead(t, out), []byte("8613800138000")) {
		t.Fatal("the bundle contains a phone number")
	}
	// An auditor's copy of the data directory holds no secrets; verify
	// --data needs only the public verifier.key.
	for _, f := range []string{"signing.key", "pseudonym.key", "kek.key"} {
		if err := os.Remove(filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	if err := verify(ctx, []string{"--data", dir}); err != nil {
		t.Fatalf("verify --data without secrets: %v", err)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestVerifyBadInputWritesNothing(t *testing.T) {
	dir := newLedger(t, 30)
	work := t.TempDir()
	out := filepath.Join(work, "audit.ndjson")
	if code := run([]string{"export", "--data", dir, "--out", out}); code != 0 {
		t.Fatalf("export exit %d", code)
	}
	good := mustRead(t, out)
	other := newLedger(t, 2)
	od, err := openData(other, "", "", true)
	if err != nil {
		t.Fatal(err)
	}
	wrongKey := od.Secrets.VerifierKey
	od.Close()

	lines := bytes.SplitAfter(good, []byte("\n"))
	tests := []struct {
		name string
		b    []byte
		args []string
		want error
		says string
	}{
		{"truncated mid-line", good[:len(good)/2], nil, bundle.ErrTruncated, "cut off"},
		{"wrong trusted key", good, []string{"--key", wrongKey}, bundle.ErrKey, "not by the trusted key"},
		{"byte changed", bytes.Replace(good, []byte(`"duration_s":7}`), []byte(`"duration_s":8}`), 1), nil, bundle.ErrTampered, "positions 1..30"},
		{"event dropped", bytes.Join(append(lines[:5:5], lines[6:]...), nil), nil, bundle.ErrSequence, "at position 5"},
		{"two swapped", bytes.Join(append(append(lines[:5:5], lines[6], lines[5]), lines[7:]...), nil), nil, bundle.ErrSequence, "at position 5"},
		{"one inserted", bytes.Join(append(append(lines[:5:5], lines[9]), lines[5:]...), nil), nil, bundle.ErrSequence, "at position 5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(work, "bad.ndjson")
			if err := os.WriteFile(path, tt.b, 0o644); err != nil {
				t.Fatal(err)
			}
			before, beforeData := listDir(t, work), listDir(t, dir)
			err := verify(context.Background(), append(tt.args, path))
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.says) {
				t.Fatalf("verify = %v, want %v saying %q", err, tt.want, tt.says)
			}
			if code := run(append([]string{"verify"}, append(tt.args, path)...)); code != 1 {
				t.Fatalf("exit %d, want 1", code)
			}
			if listDir(t, work) != before || listDir(t, dir) != beforeData {
				t.Fatal("verify wrote something")
			}
		})
	}
}

func TestExportFailureLeavesNoFile(t *testing.T) {
	dir := newLedger(t, 3)
	out := filepath.Join(t.TempDir(), "missing", "audit.ndjson")
	if code := run([]string{"export", "--data", dir, "--out", out}); code == 0 {
		t.Fatal("export into a missing directory succeeded")
	}
	if code := run([]string{"export", "--data", dir}); code != 2 {
		t.Fatalf("export without --out: exit %d, want 2", code)
	}
	if code := run([]string{"verify"}); code != 2 {
		t.Fatalf("verify without input: exit %d, want 2", code)
	}
}

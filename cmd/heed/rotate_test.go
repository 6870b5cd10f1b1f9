package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/heed/heed/ledger"
	"github.com/heed/heed/ledger/bundle"
	"github.com/heed/heed/ledger/secrets"
)

func readLine(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func appendEvents(t *testing.T, dir string, n int) {
	t.Helper()
	d, err := openData(dir, "", "", false)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for i := range n {
		e, err := ledger.NewEvent("acme", "s", time.Now(), ledger.ContactMade{Line: "L1", Channel: "call", Purpose: "service", DurationS: i})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := d.Store.Append(context.Background(), ledger.ContactStream("acme", "s"), ledger.Any(), []ledger.Event{e}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRotateSigningKey: after `heed keys rotate-signing`, bundles signed
// by the new key verify with only the original key, and a data directory
// whose signing key is the retired one refuses to open.
func TestRotateSigningKey(t *testing.T) {
	ctx := context.Background()
	dir := newLedger(t, 20)
	if code := run([]string{"export", "--data", dir, "--out", filepath.Join(t.TempDir(), "b0.ndjson")}); code != 0 {
		t.Fatalf("export exit %d", code)
	}
	oldV := readLine(t, filepath.Join(dir, secrets.VerifierFile))
	oldS := readLine(t, filepath.Join(dir, secrets.SigningFile))
	oldKeyFile := filepath.Join(t.TempDir(), "old.vkey")
	if err := os.WriteFile(oldKeyFile, []byte(oldV+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := stdout(t, func() {
		if code := run([]string{"keys", "rotate-signing", "--data", dir, "--reason", "yearly"}); code != 0 {
			t.Fatalf("rotate-signing exit %d", code)
		}
	})
	newV := strings.TrimSpace(out)
	if newV == oldV || readLine(t, filepath.Join(dir, secrets.VerifierFile)) != newV {
		t.Fatalf("verifier.key after rotation = %q; printed %q; old %q", readLine(t, filepath.Join(dir, secrets.VerifierFile)), newV, oldV)
	}
	if _, err := os.Stat(filepath.Join(dir, secrets.NextSigningFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s left behind: %v", secrets.NextSigningFile, err)
	}
	appendEvents(t, dir, 5)
	b1 := filepath.Join(t.TempDir(), "b1.ndjson")
	if code := run([]string{"export", "--data", dir, "--out", b1}); code != 0 {
		t.Fatalf("export exit %d", code)
	}
	for _, key := range []string{oldKeyFile, newV} {
		if err := verify(ctx, []string{"--key", key, b1}); err != nil {
			t.Fatalf("verify the new bundle with --key %s: %v", bundle.KeyID(key), err)
		}
	}
	if err := verify(ctx, []string{"--key", oldKeyFile, "--data", dir}); err != nil {
		t.Fatalf("verify --data with the original key: %v", err)
	}
	// The rotation is an event, by the command line, covered by the
	// checkpoint that announces it.
	d, err := openData(dir, "", "", true)
	if err != nil {
		t.Fatal(err)
	}
	evs, err := d.Store.ReadStream(ctx, ledger.KeysStream, 1, 0)
	d.Close()
	if err != nil || len(evs) != 1 || evs[0].Type != ledger.TypeSigningKeyRotated || !strings.HasPrefix(evs[0].Actor, "cli") ||
		!strings.Contains(string(evs[0].Data), `"reason":"yearly"`) {
		t.Fatalf("keys stream = %+v, %v", evs, err)
	}

	// The retired key put back (a restore from an old backup) is refused,
	// naming both keys, before it signs anything.
	signing := filepath.Join(dir, secrets.SigningFile)
	if err := os.WriteFile(signing, []byte(oldS+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(dir, secrets.VerifierFile))
	_, err = openData(dir, "", "", false)
	if err == nil || !strings.Contains(err.Error(), bundle.KeyID(newV)) || !strings.Contains(err.Error(), "install the new signing key") {
		t.Fatalf("open with the retired key: %v", err)
	}
}

// TestInterruptedRotationIsFinished: a crash after the announcement was
// stored but before the new key replaced the old one is finished at the
// next open, so the retired key never signs again.
func TestInterruptedRotationIsFinished(t *testing.T) {
	dir := newLedger(t, 10)
	oldS := readLine(t, filepath.Join(dir, secrets.SigningFile))
	oldV := readLine(t, filepath.Join(dir, secrets.VerifierFile))
	out := stdout(t, func() {
		if code := run([]string{"keys", "rotate-signing", "--data", dir}); code != 0 {
			t.Fatalf("rotate-signing exit %d", code)
		}
	})
	newV := strings.TrimSpace(out)
	newS := readLine(t, filepath.Join(dir, secrets.SigningFile))
	// Undo the last step, as a crash before it would have left things.
	for file, v := range map[string]string{secrets.SigningFile: oldS, secrets.VerifierFile: oldV, secrets.NextSigningFile: newS} {
		if err := os.WriteFile(filepath.Join(dir, file), []byte(v+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	appendEvents(t, dir, 3) // opens the directory: finishes the rotation
	if got := readLine(t, filepath.Join(dir, secrets.VerifierFile)); got != newV {
		t.Fatalf("verifier.key = %s, want the new key", bundle.KeyID(got))
	}
	b := filepath.Join(t.TempDir(), "b.ndjson")
	if code := run([]string{"export", "--data", dir, "--out", b}); code != 0 {
		t.Fatalf("export exit %d", code)
	}
	if err := verify(context.Background(), []string{"--key", oldV, b}); err != nil {
		t.Fatalf("verify with the original key: %v", err)
	}
}

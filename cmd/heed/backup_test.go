package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/heed/heed/backup"
	"github.com/heed/heed/ledger/bolt"
)

// TestOfflineBackupRestore backs up a stopped data directory for a
// recipient, restores it with the identity, and checks the copy holds
// the same files, verifies and opens; and that restore refuses what it
// must: a wrong key, a damaged file, a directory that is not empty.
func TestOfflineBackupRestore(t *testing.T) {
	src := copyDir(t, realDir(t, 0))
	work := t.TempDir()
	idFile := filepath.Join(work, "id")
	if code := run([]string{"backup", "keygen", "--out", idFile}); code != 0 {
		t.Fatalf("keygen exit %d", code)
	}
	b, _ := os.ReadFile(idFile)
	rcpt := strings.TrimPrefix(strings.SplitN(string(b), "\n", 2)[0], "# recipient: ")
	out := filepath.Join(work, "b")
	if code := run([]string{"backup", "--data", src, "--out", out, "--recipient", rcpt}); code != 0 {
		t.Fatalf("backup exit %d", code)
	}
	dst := filepath.Join(work, "restored")
	if code := run([]string{"restore", "--in", out, "--data", dst, "--identity", idFile}); code != 0 {
		t.Fatalf("restore exit %d", code)
	}
	for _, f := range []string{storeFile, checkpointsFile, keysFile, apiKeysFile, anchorFile, "ledger.id", "signing.key", "verifier.key", "pseudonym.key", "kek.key"} {
		fi, err := os.Stat(filepath.Join(dst, f))
		if err != nil {
			t.Errorf("%s not restored: %v", f, err)
			continue
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s restored with mode %v", f, fi.Mode())
		}
	}
	for _, f := range []string{"signing.key", "pseudonym.key", "kek.key", "ledger.id"} {
		a, _ := os.ReadFile(filepath.Join(src, f))
		b, _ := os.ReadFile(filepath.Join(dst, f))
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs after restore", f)
		}
	}
	if err := verify(context.Background(), []string{"--data", dst}); err != nil {
		t.Fatalf("verify restored: %v", err)
	}
	d, err := openData(dst, "", "", false)
	if err != nil {
		t.Fatalf("open restored: %v", err)
	}
	head, _ := d.Store.Head(context.Background())
	d.Close()
	if head != sealedEvents {
		t.Fatalf("restored head %d", head)
	}

	// Refusals: a restore into a non-empty directory, with another
	// identity, of a damaged file; and no backup of a running dir but
	// through --server.
	if code := run([]string{"restore", "--in", out, "--data", dst, "--identity", idFile}); code != 2 {
		t.Errorf("restore over a directory: exit %d, want 2", code)
	}
	other := filepath.Join(work, "other")
	run([]string{"backup", "keygen", "--out", other})
	otherID, _ := os.ReadFile(other)
	id, _ := backup.ParseIdentity(strings.SplitN(string(otherID), "\n", 2)[1])
	if _, err := restoreInto(out, filepath.Join(work, "x"), id); !errors.Is(err, backup.ErrKey) {
		t.Errorf("restore with another identity: %v", err)
	}
	raw, _ := os.ReadFile(out)
	raw[len(raw)/2] ^= 1
	bad := filepath.Join(work, "bad")
	os.WriteFile(bad, raw, 0o600)
	myID, _ := backup.ParseIdentity(strings.SplitN(string(b), "\n", 2)[1])
	if _, err := restoreInto(bad, filepath.Join(work, "y"), myID); !errors.Is(err, backup.ErrDamaged) {
		t.Errorf("restore of a damaged backup: %v", err)
	}
	live, err := bolt.Open(filepath.Join(src, storeFile))
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	if code := run([]string{"backup", "--data", src, "--out", filepath.Join(work, "c"), "--recipient", rcpt}); code != 1 {
		t.Errorf("offline backup of a directory in use: exit %d, want 1", code)
	}
	if _, err := os.Stat(filepath.Join(work, "c")); err == nil {
		t.Error("a failed backup left a file")
	}
}

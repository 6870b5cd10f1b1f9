package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heed/heed/api/auth"
	"github.com/heed/heed/ledger"
	"github.com/heed/heed/ledger/bolt"
	"github.com/heed/heed/ledger/pii"
	"github.com/heed/heed/ledger/secrets"
)

// sealedEvents is how many events realDir appends, one commit each, and
// seals.
const sealedEvents = 300

var (
	realOnce sync.Once
	realBase string
	realDirs [2]string
	realIDs  [2]string // the id of each directory's event 11
	realErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if realBase != "" {
		os.RemoveAll(realBase)
	}
	os.Exit(code)
}

// realDir returns a data directory made by the real code, as serve makes
// it: keys created at first start, sealedEvents events with sealed
// personal fields appended one commit at a time, a signed checkpoint over
// all of them, an admin API key. i picks one of two such directories
// (the second stands for another installation). Copy it before use.
func realDir(t *testing.T, i int) string {
	t.Helper()
	realOnce.Do(func() {
		realBase, realErr = os.MkdirTemp("", "heed-real")
		if realErr != nil {
			return
		}
		for j := range realDirs {
			realDirs[j] = filepath.Join(realBase, fmt.Sprintf("data%d", j))
			if realIDs[j], realErr = makeReal(realDirs[j]); realErr != nil {
				return
			}
		}
	})
	if realErr != nil {
		t.Fatal(realErr)
	}
	return realDirs[i]
}

func makeReal(dir string) (id11 string, err error) {
	ctx := context.Background()
	d, err := openData(dir, "", "", false)
	if err != nil {
		return "", err
	}
	defer d.Close()
	subject := pii.Pseudonym(d.Secrets.PseudonymKey, "+8613800138000")
	for i := range sealedEvents {
		e, err := ledger.NewEvent("acme", subject, time.Now(), ledger.ContactMade{Line: "L1", Channel: "call", Purpose: "service", DurationS: i})
		if err != nil {
			return "", err
		}
		if e.PII, err = d.Keys.Seal(subject, map[string]string{"number": "+8613800138000"}); err != nil {
			return "", err
		}
		if _, err := d.Store.Append(ctx, ledger.ContactStream("acme", subject), ledger.Any(), []ledger.Event{e}); err != nil {
			return "", err
		}
		if i == 10 {
			id11 = e.ID
		}
		if i == sealedEvents/2-1 {
			// An older checkpoints.db, for the rollback case.
			if _, err := d.Sealer().Seal(ctx); err != nil {
				return "", err
			}
			b, err := d.Checkpoints.Latest()
			if err != nil || b.Size != sealedEvents/2 {
				return "", fmt.Errorf("half-way seal: %v %v", b.Size, err)
			}
			f, err := os.Create(dir + ".checkpoints-half")
			if err != nil {
				return "", err
			}
			if _, err := d.Checkpoints.Backup(f); err != nil {
				return "", err
			}
			if err := f.Close(); err != nil {
				return "", err
			}
		}
	}
	if _, err := d.Sealer().Seal(ctx); err != nil {
		return "", err
	}
	keys, err := auth.Open(filepath.Join(dir, apiKeysFile))
	if err != nil {
		return "", err
	}
	defer keys.Close()
	_, _, err = keys.Create(auth.RoleAdmin, "")
	return id11, err
}

// copyDir copies the regular files of src into a new directory, modes kept.
func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "data")
	err := filepath.WalkDir(src, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		fi, err := e.Info()
		if err != nil {
			return err
		}
		if e.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), fi.Mode().Perm())
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, fi.Mode().Perm())
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// hashDir describes every file under dir: name, mode, size and SHA-256.
func hashDir(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := e.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if e.IsDir() {
			fmt.Fprintf(&b, "%s/ %v\n", rel, fi.Mode())
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		h := sha256.New()
		if _, err := io.Copy(h, f); err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s %v %d %x\n", rel, fi.Mode(), fi.Size(), h.Sum(nil))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// metaPages returns the offsets of ledger.db's two meta pages, newest
// (highest txid) first, and the size its pages take.
func metaPages(t *testing.T, path string) (newest, older int64, used int64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	le := binary.LittleEndian
	ps := int64(le.Uint32(b[16+8:]))
	tx0, tx1 := le.Uint64(b[16+48:]), le.Uint64(b[ps+16+48:])
	used = int64(max(le.Uint64(b[16+40:]), le.Uint64(b[ps+16+40:]))) * ps
	if tx0 > tx1 {
		return 0, ps, used
	}
	return ps, 0, used
}

// flipMeta flips one bit in the txid of the meta page at off; its
// checksum then fails and bbolt falls back to the other page.
func flipMeta(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var b [1]byte
	if _, err := f.ReadAt(b[:], off+16+48); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 1
	if _, err := f.WriteAt(b[:], off+16+48); err != nil {
		t.Fatal(err)
	}
}

func truncate(t *testing.T, path string, size func(used int64) int64) {
	t.Helper()
	_, _, used := metaPages(t, path)
	if err := os.Truncate(path, size(used)); err != nil {
		t.Fatal(err)
	}
}

// flipPayload changes one byte of the payload of the event with id in
// every copy bbolt left of its page, so that the live one is changed too.
func flipPayload(t *testing.T, path, id string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	head := []byte(`{"id":"` + id + `"`)
	n := 0
	for i := 0; ; {
		j := bytes.Index(b[i:], head)
		if j < 0 {
			break
		}
		k := i + j + bytes.Index(b[i+j:], []byte(`"line":"L1"`))
		b[k+len(`"line":"L`)] = '2' // L1 -> L2: still valid JSON
		n++
		i = k + 1
	}
	if n == 0 {
		t.Fatal("event not found in the file")
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func copyFrom(t *testing.T, dir, other string, files ...string) {
	t.Helper()
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(other, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// TestDamagedDataDirRefused damages copies of a real data directory the
// ways disks, backups and tired operators do, and checks that serve (and
// the store under it) refuses each with the error that names the damage,
// that verify --data fails where the ledger itself is damaged, and that
// no file was created or changed by trying.
func TestDamagedDataDirRefused(t *testing.T) {
	ledgerDB := func(dir string) string { return filepath.Join(dir, storeFile) }
	other := realDir(t, 1)
	tests := []struct {
		name   string
		damage func(t *testing.T, dir string)
		want   error
		says   string
		// verifyFails: verify --data must fail too: the ledger itself is
		// damaged, or a key it reads is exposed or foreign (a lost
		// secret leaves the ledger verifiable).
		verifyFails bool
	}{
		{"both meta pages", func(t *testing.T, dir string) {
			a, b, _ := metaPages(t, ledgerDB(dir))
			flipMeta(t, ledgerDB(dir), a)
			flipMeta(t, ledgerDB(dir), b)
		}, bolt.ErrCorrupt, "no valid bbolt meta page", true},
		{"newest meta page: rollback of the last commit", func(t *testing.T, dir string) {
			a, _, _ := metaPages(t, ledgerDB(dir))
			flipMeta(t, ledgerDB(dir), a)
		}, ledger.ErrBehind, fmt.Sprintf("holds %d events, but a checkpoint signed over it covers %d", sealedEvents-1, sealedEvents), true},
		{"truncated to zero", func(t *testing.T, dir string) {
			truncate(t, ledgerDB(dir), func(int64) int64 { return 0 })
		}, ledger.ErrBehind, fmt.Sprintf("is empty, but a checkpoint signed over it covers %d events", sealedEvents), true},
		{"truncated to one page", func(t *testing.T, dir string) {
			truncate(t, ledgerDB(dir), func(int64) int64 { return 4096 })
		}, bolt.ErrCorrupt, "truncated", true},
		{"truncated to the meta pages", func(t *testing.T, dir string) {
			truncate(t, ledgerDB(dir), func(int64) int64 { return 8192 })
		}, bolt.ErrCorrupt, "truncated", true},
		{"truncated to half", func(t *testing.T, dir string) {
			truncate(t, ledgerDB(dir), func(used int64) int64 { return used / 2 })
		}, bolt.ErrCorrupt, "truncated", true},
		{"truncated by its last page", func(t *testing.T, dir string) {
			truncate(t, ledgerDB(dir), func(used int64) int64 { return used - 4096 })
		}, bolt.ErrCorrupt, "truncated", true},
		{"truncated by one byte", func(t *testing.T, dir string) {
			truncate(t, ledgerDB(dir), func(used int64) int64 { return used - 1 })
		}, bolt.ErrCorrupt, "truncated", true},
		{"ledger.db deleted", func(t *testing.T, dir string) {
			os.Remove(ledgerDB(dir))
		}, errMissing, "ledger.db is missing: it is the ledger itself", true},
		{"a flipped payload byte", func(t *testing.T, dir string) {
			flipPayload(t, ledgerDB(dir), realIDs[0])
		}, bolt.ErrCorrupt, "event 11 does not match its tree hash", true},
		{"checkpoints.db deleted", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, checkpointsFile))
		}, errMissing, "checkpoints.db is missing", true},
		{"checkpoints.db rolled back", func(t *testing.T, dir string) {
			b, err := os.ReadFile(realDir(t, 0) + ".checkpoints-half")
			if err != nil {
				t.Fatal(err)
			}
			os.WriteFile(filepath.Join(dir, checkpointsFile), b, 0o600)
		}, ledger.ErrBehind, fmt.Sprintf("newest checkpoint covers %d events, but the anchor holds one signed over %d", sealedEvents/2, sealedEvents), true},
		{"keys.db deleted", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, keysFile))
		}, errMissing, "keys.db is missing: it holds the per-subject data keys", false},
		{"apikeys.db deleted", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, apiKeysFile))
		}, errMissing, "apikeys.db is missing: it holds the API keys; restore it from the newest backup, or create a new admin key with `heed keys create", false},
		{"signing.key deleted", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, secrets.SigningFile))
		}, errMissing, "signing.key is missing", false},
		{"pseudonym.key deleted", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, secrets.PseudonymFile))
		}, errMissing, "pseudonym.key is missing: every subject's history, opt-outs included", false},
		{"kek.key deleted", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, secrets.KEKFile))
		}, errMissing, "kek.key is missing", false},
		{"ledger.id deleted", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, secrets.LedgerIDFile))
		}, errMissing, "ledger.id is missing", true},
		{"signing.key readable by others", func(t *testing.T, dir string) {
			os.Chmod(filepath.Join(dir, secrets.SigningFile), 0o644)
		}, secrets.ErrExposed, "signing.key has mode 0644", true},
		{"pseudonym.key readable by the group", func(t *testing.T, dir string) {
			os.Chmod(filepath.Join(dir, secrets.PseudonymFile), 0o640)
		}, secrets.ErrExposed, "pseudonym.key has mode 0640", true},
		{"kek.key readable by others", func(t *testing.T, dir string) {
			os.Chmod(filepath.Join(dir, secrets.KEKFile), 0o604)
		}, secrets.ErrExposed, "kek.key has mode 0604", true},
		{"another data dir's pseudonym.key", func(t *testing.T, dir string) {
			copyFrom(t, dir, other, secrets.PseudonymFile)
		}, bolt.ErrForeign, "was made with another pseudonym.key", true},
		{"another data dir's kek.key", func(t *testing.T, dir string) {
			copyFrom(t, dir, other, secrets.KEKFile)
		}, bolt.ErrForeign, "was made with another kek.key", true},
		{"another data dir's ledger.id", func(t *testing.T, dir string) {
			copyFrom(t, dir, other, secrets.LedgerIDFile)
		}, bolt.ErrForeign, "was made with another ledger.id", true},
		{"another data dir's signing key", func(t *testing.T, dir string) {
			copyFrom(t, dir, other, secrets.SigningFile, secrets.VerifierFile)
		}, errForeign, "did not sign this directory's newest checkpoint (size 300)", true},
		{"another data dir's secrets, all of them", func(t *testing.T, dir string) {
			copyFrom(t, dir, other, secrets.SigningFile, secrets.VerifierFile, secrets.PseudonymFile, secrets.KEKFile, secrets.LedgerIDFile)
		}, errForeign, "did not sign this directory's newest checkpoint", true},
		{"another data dir's checkpoints", func(t *testing.T, dir string) {
			copyFrom(t, dir, other, checkpointsFile, anchorFile)
		}, errForeign, "did not sign this directory's newest checkpoint", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := copyDir(t, realDir(t, 0))
			tt.damage(t, dir)
			before := hashDir(t, dir)

			d, err := openData(dir, "", "", false)
			if err == nil {
				d.Close()
				t.Fatal("opened")
			}
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.says) {
				t.Fatalf("got  %v\nwant %v saying %q", err, tt.want, tt.says)
			}
			if code := run([]string{"serve", "--data", dir, "--listen", "127.0.0.1:0"}); code != 1 {
				t.Errorf("serve exit %d, want 1", code)
			}
			verr := verify(context.Background(), []string{"--data", dir})
			if tt.verifyFails && verr == nil {
				t.Error("verify --data passed")
			}
			if !tt.verifyFails && verr != nil {
				t.Errorf("verify --data: %v (the ledger is intact)", verr)
			}
			if after := hashDir(t, dir); after != before {
				t.Errorf("files changed:\nbefore\n%s\nafter\n%s", before, after)
			}
		})
	}
}

// TestRealDirServes checks the undamaged copy opens, verifies and keeps
// its promise, so that the refusals above come from the damage alone.
func TestRealDirServes(t *testing.T) {
	dir := copyDir(t, realDir(t, 0))
	if err := verify(context.Background(), []string{"--data", dir}); err != nil {
		t.Fatal(err)
	}
	d, err := openData(dir, "", "", false)
	if err != nil {
		t.Fatal(err)
	}
	head, _ := d.Store.Head(context.Background())
	d.Close()
	if head != sealedEvents {
		t.Fatalf("head %d", head)
	}
}

package secrets

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/mod/sumdb/note"

	"github.com/heed/heed/ledger/atomicfile"
)

// NextSigningFile holds the new signing key while a rotation is under
// way: from its creation until the checkpoint announcing it is stored and
// it replaces signing.key.
const NextSigningFile = "signing.key.next"

// NextSigningKey returns the signing key a rotation moves to, creating
// signing.key.next in dir if it does not exist yet, so a rotation
// interrupted and run again moves to the same key.
func NextSigningKey(dir, ledgerID string) (string, error) {
	skey, err := loadOrCreate(dir, NextSigningFile, true, func() (string, error) {
		sk, _, err := note.GenerateKey(rand.Reader, Origin(ledgerID))
		return sk, err
	})
	if err != nil {
		return "", err
	}
	if _, err := VerifierKey(skey); err != nil {
		return "", fmt.Errorf("%w: %s: %v", ErrMalformed, filepath.Join(dir, NextSigningFile), err)
	}
	return skey, nil
}

// PendingSigningKey returns the key in signing.key.next, or "" if there is
// no rotation under way.
func PendingSigningKey(dir string) (string, error) {
	skey, err := loadOrCreate(dir, NextSigningFile, true, nil)
	if errors.Is(err, ErrMissing) {
		return "", nil
	}
	return skey, err
}

// CommitSigningKey ends a rotation: signing.key.next replaces signing.key
// and verifier.key gets its public key. Each file is replaced atomically;
// signing.key.next goes last, so a crash leaves a rotation that a second
// commit finishes.
func CommitSigningKey(dir string) error {
	skey, err := loadOrCreate(dir, NextSigningFile, true, nil)
	if err != nil {
		return err
	}
	vkey, err := VerifierKey(skey)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrMalformed, filepath.Join(dir, NextSigningFile), err)
	}
	if err := replaceFile(dir, SigningFile, skey); err != nil {
		return err
	}
	if err := replaceFile(dir, VerifierFile, vkey); err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(dir, NextSigningFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("secrets: %w", err)
	}
	return syncDir(dir)
}

// replaceFile writes dir/file atomically (mode 0600), replacing it.
func replaceFile(dir, file, line string) error {
	err := atomicfile.Write(filepath.Join(dir, file), 0o600, func(w io.Writer) error {
		_, err := io.WriteString(w, strings.TrimSpace(line)+"\n")
		return err
	})
	if err != nil {
		return fmt.Errorf("secrets: replacing %s: %w", filepath.Join(dir, file), err)
	}
	return nil
}

func syncDir(dir string) error {
	if err := atomicfile.SyncDir(dir); err != nil {
		return fmt.Errorf("secrets: %w", err)
	}
	return nil
}

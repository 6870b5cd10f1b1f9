package secrets

import (
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Files returns the key files of dir that Load reads given o: ledger.id,
// and each of signing.key, pseudonym.key and kek.key not overridden.
// verifier.key is left out: it is public and derived from signing.key.
func Files(o Overrides) []string {
	out := []string{LedgerIDFile}
	if o.SigningKey == "" {
		out = append(out, SigningFile)
	}
	if o.PseudonymKey == "" {
		out = append(out, PseudonymFile)
	}
	if o.KEK == "" {
		out = append(out, KEKFile)
	}
	return out
}

// IsSecret reports whether file is one of the secret key files, which must
// not be readable by group or others.
func IsSecret(file string) bool {
	return file == SigningFile || file == PseudonymFile || file == KEKFile
}

// CheckExposed returns ErrExposed, naming the file, if a secret key file in
// dir is readable by group or others. Absent files pass. It only reads.
func CheckExposed(dir string, o Overrides) error {
	for _, f := range Files(o) {
		if !IsSecret(f) {
			continue
		}
		path := filepath.Join(dir, f)
		fi, err := os.Stat(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("secrets: %w", err)
		}
		if fi.Mode().Perm()&0o077 != 0 {
			return fmt.Errorf("%w: %s has mode %#o, want 0600 (anyone who read it may hold the key: chmod 600 it, and rotate the key if it left the machine)", ErrExposed, path, fi.Mode().Perm())
		}
	}
	return nil
}

// CheckValue is a keyed check value of a 32-byte key: stored beside data
// the key protects, it tells the right key from another one without
// revealing anything about either.
func CheckValue(key []byte, label string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("heed key check\x00" + label))
	return m.Sum(nil)[:16]
}

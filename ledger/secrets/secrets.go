// Package secrets loads the three keys a heed data directory needs: the
// checkpoint signing key, the pseudonym key and the key-encryption key.
//
// On first start [Load] creates each missing key as a file of its own in the
// data directory with mode 0600 (temp file, write, fsync, rename, fsync dir).
// For production the keys can instead be given through [FromEnv]
// (HEED_SIGNING_KEY, HEED_PSEUDONYM_KEY, HEED_KEK), so that they never touch
// the data disk. An existing key file that others can read, or whose content
// is malformed, stops the start with an error naming the file, never its
// contents.
//
// File formats: signing.key holds a golang.org/x/mod/sumdb/note signer key
// ("PRIVATE+KEY+name+hash+data") on one line; pseudonym.key and kek.key hold
// 32 random bytes as 64 hex digits on one line. ledger.id holds the ledger's
// random identifier (not a secret), from which the default checkpoint origin
// and signer name derive, and verifier.key the public key ("name+hash+
// base64") to hand to auditors.
package secrets

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"golang.org/x/mod/sumdb/note"

	"github.com/heed/heed/ledger/atomicfile"
)

// File names inside the data directory.
const (
	SigningFile   = "signing.key"
	PseudonymFile = "pseudonym.key"
	KEKFile       = "kek.key"
	LedgerIDFile  = "ledger.id"
	// VerifierFile holds the public key that checks checkpoints; it is not
	// secret.
	VerifierFile = "verifier.key"
)

// Environment variables that override the key files.
const (
	EnvSigningKey   = "HEED_SIGNING_KEY"
	EnvPseudonymKey = "HEED_PSEUDONYM_KEY"
	EnvKEK          = "HEED_KEK"
)

// Sentinel errors.
var (
	// ErrExposed means a key file is readable by group or others.
	ErrExposed = errors.New("secrets: key file is readable by group or others")
	// ErrMalformed means a key file or override does not hold a valid key.
	ErrMalformed = errors.New("secrets: malformed key")
)

// Secrets are the keys of one ledger.
type Secrets struct {
	// LedgerID is the ledger's random identifier, e.g. "l-3f9a0c1d2e4b".
	LedgerID string
	// SigningKey is the note signer key that signs checkpoints.
	SigningKey string
	// VerifierKey is the public note verifier key matching SigningKey.
	VerifierKey string
	// PseudonymKey keys the HMAC that turns a phone number into a subject.
	PseudonymKey []byte
	// KEK wraps the per-subject data keys.
	KEK []byte
}

// Overrides are keys given from outside the data directory. Empty fields
// fall back to the files.
type Overrides struct {
	SigningKey   string // note signer key text
	PseudonymKey string // 64 hex digits
	KEK          string // 64 hex digits
}

// FromEnv reads overrides from HEED_SIGNING_KEY, HEED_PSEUDONYM_KEY and
// HEED_KEK.
func FromEnv() Overrides {
	return Overrides{
		SigningKey:   os.Getenv(EnvSigningKey),
		PseudonymKey: os.Getenv(EnvPseudonymKey),
		KEK:          os.Getenv(EnvKEK),
	}
}

// Origin returns the default checkpoint origin and signer name of a ledger.
func Origin(ledgerID string) string { return "heed.example/" + ledgerID }

var ledgerIDPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// ErrMissing means a file [Open] needs does not exist.
var ErrMissing = errors.New("secrets: key file missing")

// Load returns the keys of the ledger in dir, creating the directory and any
// key file that is missing and not overridden. It also writes the public
// verifier key to verifier.key, for auditors and read-only tools.
func Load(dir string, o Overrides) (*Secrets, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("secrets: %w", err)
	}
	var s Secrets
	id, err := loadOrCreate(dir, LedgerIDFile, false, newLedgerID)
	if err != nil {
		return nil, err
	}
	if s.LedgerID, err = checkLedgerID(dir, id); err != nil {
		return nil, err
	}
	skey, where := o.SigningKey, EnvSigningKey
	if skey == "" {
		where = filepath.Join(dir, SigningFile)
		skey, err = loadOrCreate(dir, SigningFile, true, func() (string, error) {
			sk, _, err := note.GenerateKey(rand.Reader, Origin(id))
			return sk, err
		})
		if err != nil {
			return nil, err
		}
	}
	s.SigningKey = strings.TrimSpace(skey)
	if s.VerifierKey, err = VerifierKey(s.SigningKey); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrMalformed, where, err)
	}
	if o.SigningKey == "" {
		pub, err := loadOrCreate(dir, VerifierFile, false, func() (string, error) { return s.VerifierKey, nil })
		if err != nil {
			return nil, err
		}
		if pub != s.VerifierKey {
			return nil, fmt.Errorf("%w: %s does not match %s", ErrMalformed, filepath.Join(dir, VerifierFile), SigningFile)
		}
	}
	if s.PseudonymKey, err = key32(dir, PseudonymFile, EnvPseudonymKey, o.PseudonymKey, true); err != nil {
		return nil, err
	}
	if s.KEK, err = key32(dir, KEKFile, EnvKEK, o.KEK, true); err != nil {
		return nil, err
	}
	return &s, nil
}

// Open is Load for read-only tools such as heed verify: it creates
// nothing and needs only ledger.id and a verifier key (from the signing
// key, or from verifier.key when the signing key is kept elsewhere).
// SigningKey, PseudonymKey and KEK are left empty when absent; files that
// are present are checked as Load checks them.
func Open(dir string, o Overrides) (*Secrets, error) {
	var s Secrets
	id, err := loadOrCreate(dir, LedgerIDFile, false, nil)
	if err != nil {
		return nil, err
	}
	if s.LedgerID, err = checkLedgerID(dir, id); err != nil {
		return nil, err
	}
	skey, where := o.SigningKey, EnvSigningKey
	if skey == "" {
		where = filepath.Join(dir, SigningFile)
		if skey, err = loadOrCreate(dir, SigningFile, true, nil); err != nil && !errors.Is(err, ErrMissing) {
			return nil, err
		}
	}
	if skey != "" {
		s.SigningKey = strings.TrimSpace(skey)
		if s.VerifierKey, err = VerifierKey(s.SigningKey); err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrMalformed, where, err)
		}
	} else {
		pub, err := loadOrCreate(dir, VerifierFile, false, nil)
		if err != nil {
			return nil, err
		}
		if _, err := note.NewVerifier(pub); err != nil {
			return nil, fmt.Errorf("%w: %s", ErrMalformed, filepath.Join(dir, VerifierFile))
		}
		s.VerifierKey = pub
	}
	if s.PseudonymKey, err = key32(dir, PseudonymFile, EnvPseudonymKey, o.PseudonymKey, false); err != nil {
		return nil, err
	}
	if s.KEK, err = key32(dir, KEKFile, EnvKEK, o.KEK, false); err != nil {
		return nil, err
	}
	return &s, nil
}

func newLedgerID() (string, error) {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return "l-" + hex.EncodeToString(b), nil
}

func checkLedgerID(dir, id string) (string, error) {
	if !ledgerIDPattern.MatchString(id) {
		return "", fmt.Errorf("%w: %s", ErrMalformed, filepath.Join(dir, LedgerIDFile))
	}
	return id, nil
}

// key32 reads a 32-byte key from override or dir/file, creating the file
// if create is set; without create an absent file yields nil.
func key32(dir, file, env, override string, create bool) ([]byte, error) {
	text, where := override, env
	if text == "" {
		where = filepath.Join(dir, file)
		mk := func() (string, error) {
			b := make([]byte, 32)
			if _, err := rand.Read(b); err != nil {
				return "", err
			}
			return hex.EncodeToString(b), nil
		}
		if !create {
			mk = nil
		}
		var err error
		text, err = loadOrCreate(dir, file, true, mk)
		if !create && errors.Is(err, ErrMissing) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
	}
	b, err := hex.DecodeString(strings.TrimSpace(text))
	if err != nil || len(b) != 32 {
		return nil, fmt.Errorf("%w: %s: want 64 hex digits", ErrMalformed, where)
	}
	return b, nil
}

// VerifierKey derives the public verifier key from a note signer key.
func VerifierKey(skey string) (string, error) {
	if _, err := note.NewSigner(skey); err != nil {
		return "", errors.New("not a note signer key")
	}
	// Layout checked by NewSigner: PRIVATE+KEY+name+hash+base64(alg||seed).
	// The base64 part may itself contain '+', so cut only four times.
	parts := strings.SplitN(skey, "+", 5)
	name, data := parts[2], parts[4]
	raw, err := base64.StdEncoding.DecodeString(data)
	if err != nil || len(raw) != 1+ed25519.SeedSize || raw[0] != 1 {
		return "", errors.New("not an Ed25519 note signer key")
	}
	pub := ed25519.NewKeyFromSeed(raw[1:]).Public().(ed25519.PublicKey)
	return note.NewEd25519VerifierKey(name, pub)
}

// loadOrCreate returns the trimmed content of dir/file, creating it with
// mk when absent (ErrMissing when mk is nil). A secret file must not be readable by group or others.
func loadOrCreate(dir, file string, secret bool, mk func() (string, error)) (string, error) {
	path := filepath.Join(dir, file)
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist) && mk == nil:
		return "", fmt.Errorf("%w: %s", ErrMissing, path)
	case errors.Is(err, fs.ErrNotExist):
		v, err := mk()
		if err != nil {
			return "", fmt.Errorf("secrets: creating %s: %w", path, err)
		}
		err = writeFile(dir, file, []byte(v+"\n"))
		if errors.Is(err, fs.ErrExist) {
			// Another process created it first: use theirs.
			return loadOrCreate(dir, file, secret, mk)
		}
		if err != nil {
			return "", fmt.Errorf("secrets: creating %s: %w", path, err)
		}
		return v, nil
	case err != nil:
		return "", fmt.Errorf("secrets: %w", err)
	}
	if secret && fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("%w: %s has mode %#o, want 0600 (chmod 600 it)", ErrExposed, path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("secrets: %w", err)
	}
	v := strings.TrimSpace(string(b))
	if v == "" || strings.ContainsAny(v, "\n\r") {
		return "", fmt.Errorf("%w: %s: want one line", ErrMalformed, path)
	}
	return v, nil
}

// writeFile creates dir/file atomically with mode 0600: a crash leaves
// either no file or the whole key, never a torn one, and of two processes
// starting at once the loser gets fs.ErrExist and reads the winner's key.
func writeFile(dir, file string, data []byte) error {
	return atomicfile.Create(filepath.Join(dir, file), 0o600, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

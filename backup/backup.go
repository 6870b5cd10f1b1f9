// Package backup encrypts and decrypts heed's backup archives: a stream of
// named files, encrypted for an X25519 recipient (an identity file the
// operator keeps offline) or with a passphrase.
//
// Format: a text header, then the body. The header is the line
// "heed-backup/1", one stanza line that wraps a random 32-byte file key,
// and "---". A stanza is "x25519 EPHEMERAL WRAPPED" (the file key sealed
// with AES-256-GCM under HKDF-SHA256 of the X25519 shared secret of an
// ephemeral key and the recipient) or "pbkdf2-sha256 ITERATIONS SALT
// WRAPPED" (sealed under PBKDF2-HMAC-SHA256 of the passphrase; 600,000
// iterations, as OWASP advises for that function). The body is the archive
// in chunks of 64 KiB, each sealed with AES-256-GCM under a key derived
// from the file key, its nonce a chunk counter and a last-chunk flag, so
// that a reordered, dropped or truncated chunk fails to decrypt (the
// STREAM construction age uses).
//
// The archive inside is a sequence of files, each a name and its content
// in length-prefixed pieces, so a file can be streamed from a database
// snapshot whose size is not known in advance.
package backup

import (
	"bufio"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Errors.
var (
	// ErrFormat means the input is not a heed backup.
	ErrFormat = errors.New("backup: not a heed backup")
	// ErrKey means the identity or passphrase does not open the backup.
	ErrKey = errors.New("backup: wrong identity or passphrase")
	// ErrDamaged means the body failed authentication: altered or cut short.
	ErrDamaged = errors.New("backup: damaged or truncated")
)

const (
	magic     = "heed-backup/1"
	chunkSize = 64 << 10
	// Identity and recipient texts.
	identityPrefix  = "HEED-BACKUP-KEY-1:"
	recipientPrefix = "heed-backup-1:"
)

var b64 = base64.RawStdEncoding

// iterations of PBKDF2 for a new passphrase backup; the header records
// them, so a reader follows whatever the writer used.
var iterations = 600_000

// Identity is an X25519 private key that opens backups made for its
// Recipient.
type Identity struct{ k *ecdh.PrivateKey }

// NewIdentity makes a new random identity.
func NewIdentity() (*Identity, error) {
	k, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	return &Identity{k}, nil
}

// ParseIdentity parses the text String returns.
func ParseIdentity(s string) (*Identity, error) {
	s = strings.TrimSpace(s)
	raw, err := b64.DecodeString(strings.TrimPrefix(s, identityPrefix))
	if !strings.HasPrefix(s, identityPrefix) || err != nil {
		return nil, fmt.Errorf("%w: not a backup identity", ErrKey)
	}
	k, err := ecdh.X25519().NewPrivateKey(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKey, err)
	}
	return &Identity{k}, nil
}

// String is the identity's secret text, for its file.
func (i *Identity) String() string { return identityPrefix + b64.EncodeToString(i.k.Bytes()) }

// Recipient is the public text that Encrypt takes.
func (i *Identity) Recipient() string {
	return recipientPrefix + b64.EncodeToString(i.k.PublicKey().Bytes())
}

// ParseRecipient checks a recipient text.
func ParseRecipient(s string) (*ecdh.PublicKey, error) {
	s = strings.TrimSpace(s)
	raw, err := b64.DecodeString(strings.TrimPrefix(s, recipientPrefix))
	if !strings.HasPrefix(s, recipientPrefix) || err != nil {
		return nil, fmt.Errorf("backup: %q is not a backup recipient", s)
	}
	return ecdh.X25519().NewPublicKey(raw)
}

// Key opens a backup: an *Identity or a Passphrase.
type Key interface {
	unwrap(stanza []string) ([]byte, error)
}

// Passphrase opens backups encrypted with it.
type Passphrase []byte

func seal(key, plain []byte) []byte {
	a := aead(key)
	return a.Seal(nil, make([]byte, a.NonceSize()), plain, nil)
}

func open(key, sealed []byte) ([]byte, error) {
	a := aead(key)
	return a.Open(nil, make([]byte, a.NonceSize()), sealed, nil)
}

func aead(key []byte) cipher.AEAD {
	b, err := aes.NewCipher(key)
	if err != nil {
		panic(err) // keys here are always 32 bytes
	}
	a, err := cipher.NewGCM(b)
	if err != nil {
		panic(err)
	}
	return a
}

func x25519Key(shared, eph, rcpt []byte) []byte {
	k, err := hkdf.Key(sha256.New, shared, append(append([]byte{}, eph...), rcpt...), "heed-backup x25519", 32)
	if err != nil {
		panic(err)
	}
	return k
}

func (i *Identity) unwrap(st []string) ([]byte, error) {
	if len(st) != 3 || st[0] != "x25519" {
		return nil, fmt.Errorf("%w: this backup was made with a passphrase", ErrKey)
	}
	eph, err1 := b64.DecodeString(st[1])
	wrapped, err2 := b64.DecodeString(st[2])
	if err1 != nil || err2 != nil {
		return nil, ErrFormat
	}
	pub, err := ecdh.X25519().NewPublicKey(eph)
	if err != nil {
		return nil, ErrFormat
	}
	shared, err := i.k.ECDH(pub)
	if err != nil {
		return nil, ErrKey
	}
	fk, err := open(x25519Key(shared, eph, i.k.PublicKey().Bytes()), wrapped)
	if err != nil {
		return nil, ErrKey
	}
	return fk, nil
}

func passKey(p Passphrase, salt []byte, iter int) []byte {
	k, err := pbkdf2.Key(sha256.New, string(p), salt, iter, 32)
	if err != nil {
		panic(err)
	}
	return k
}

func (p Passphrase) unwrap(st []string) ([]byte, error) {
	if len(st) != 4 || st[0] != "pbkdf2-sha256" {
		return nil, fmt.Errorf("%w: this backup was made for an identity, not a passphrase", ErrKey)
	}
	iter, err := strconv.Atoi(st[1])
	salt, err1 := b64.DecodeString(st[2])
	wrapped, err2 := b64.DecodeString(st[3])
	if err != nil || err1 != nil || err2 != nil || iter < 1 || iter > 100_000_000 {
		return nil, ErrFormat
	}
	fk, err := open(passKey(p, salt, iter), wrapped)
	if err != nil {
		return nil, ErrKey
	}
	return fk, nil
}

// recipientStanza wraps the file key for a recipient text.
func recipientStanza(recipient string, fk []byte) (string, error) {
	pub, err := ParseRecipient(recipient)
	if err != nil {
		return "", err
	}
	eph, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return "", err
	}
	shared, err := eph.ECDH(pub)
	if err != nil {
		return "", err
	}
	e := eph.PublicKey().Bytes()
	return "x25519 " + b64.EncodeToString(e) + " " + b64.EncodeToString(seal(x25519Key(shared, e, pub.Bytes()), fk)), nil
}

// passphraseStanza wraps the file key under a passphrase.
func passphraseStanza(p Passphrase, fk []byte) (string, error) {
	if len(p) == 0 {
		return "", errors.New("backup: empty passphrase")
	}
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	return fmt.Sprintf("pbkdf2-sha256 %d %s %s", iterations, b64.EncodeToString(salt), b64.EncodeToString(seal(passKey(p, salt, iterations), fk))), nil
}

// Encrypt returns a writer that encrypts what is written to it onto w for
// recipient (a Recipient text). Close finishes the stream; without it the
// backup does not decrypt.
func Encrypt(w io.Writer, recipient string) (io.WriteCloser, error) {
	return encrypt(w, func(fk []byte) (string, error) { return recipientStanza(recipient, fk) })
}

// EncryptPassphrase is Encrypt with a passphrase.
func EncryptPassphrase(w io.Writer, p Passphrase) (io.WriteCloser, error) {
	return encrypt(w, func(fk []byte) (string, error) { return passphraseStanza(p, fk) })
}

func encrypt(w io.Writer, stanza func([]byte) (string, error)) (io.WriteCloser, error) {
	fk := make([]byte, 32)
	if _, err := rand.Read(fk); err != nil {
		return nil, err
	}
	st, err := stanza(fk)
	if err != nil {
		return nil, err
	}
	if _, err := io.WriteString(w, magic+"\n"+st+"\n---\n"); err != nil {
		return nil, err
	}
	return &writer{w: w, a: aead(payloadKey(fk)), buf: make([]byte, 0, chunkSize)}, nil
}

func payloadKey(fk []byte) []byte {
	k, err := hkdf.Key(sha256.New, fk, nil, "heed-backup payload", 32)
	if err != nil {
		panic(err)
	}
	return k
}

func nonce(n uint64, last bool) []byte {
	b := make([]byte, 12)
	binary.BigEndian.PutUint64(b[3:11], n)
	if last {
		b[11] = 1
	}
	return b
}

type writer struct {
	w   io.Writer
	a   cipher.AEAD
	buf []byte
	n   uint64
	err error
}

func (w *writer) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 && w.err == nil {
		if len(w.buf) == chunkSize {
			// More follows, so this chunk is not the last.
			w.flush(false)
			continue
		}
		k := copy(w.buf[len(w.buf):chunkSize], p)
		w.buf = w.buf[:len(w.buf)+k]
		p, written = p[k:], written+k
	}
	return written, w.err
}

func (w *writer) flush(last bool) {
	if w.err != nil {
		return
	}
	_, w.err = w.w.Write(w.a.Seal(nil, nonce(w.n, last), w.buf, nil))
	w.n++
	w.buf = w.buf[:0]
}

// Close seals the last chunk.
func (w *writer) Close() error {
	w.flush(true)
	if w.err == nil {
		w.err = errors.New("backup: writer closed")
		return nil
	}
	return w.err
}

// header reads the header and returns the stanza's fields.
func header(br *bufio.Reader) ([]string, error) {
	var lines []string
	for len(lines) < 3 {
		l, err := br.ReadString('\n')
		if err != nil || len(l) > 4096 {
			return nil, ErrFormat
		}
		lines = append(lines, strings.TrimSuffix(l, "\n"))
	}
	if lines[0] != magic || lines[2] != "---" {
		return nil, ErrFormat
	}
	return strings.Fields(lines[1]), nil
}

// Decrypt returns the plaintext of the backup r with key. Reads fail with
// ErrDamaged where the body was altered or cut short.
func Decrypt(r io.Reader, key Key) (io.Reader, error) {
	br := bufio.NewReaderSize(r, chunkSize+64)
	st, err := header(br)
	if err != nil {
		return nil, err
	}
	fk, err := key.unwrap(st)
	if err != nil {
		return nil, err
	}
	return &reader{r: br, a: aead(payloadKey(fk)), in: make([]byte, chunkSize+16)}, nil
}

type reader struct {
	r    *bufio.Reader
	a    cipher.AEAD
	in   []byte
	out  []byte
	n    uint64
	done bool
}

func (r *reader) Read(p []byte) (int, error) {
	for len(r.out) == 0 {
		if r.done {
			return 0, io.EOF
		}
		k, err := io.ReadFull(r.r, r.in)
		last := false
		switch {
		case errors.Is(err, io.ErrUnexpectedEOF):
			last = true
		case errors.Is(err, io.EOF):
			return 0, fmt.Errorf("%w: it ends before its last chunk", ErrDamaged)
		case err != nil:
			return 0, err
		default:
			if _, err := r.r.Peek(1); errors.Is(err, io.EOF) {
				last = true
			}
		}
		out, err := r.a.Open(r.out[:0], nonce(r.n, last), r.in[:k], nil)
		if err != nil {
			return 0, fmt.Errorf("%w: chunk %d", ErrDamaged, r.n)
		}
		r.n++
		r.out, r.done = out, last
	}
	k := copy(p, r.out)
	r.out = r.out[k:]
	return k, nil
}

// Rewrap copies the backup r, made for id, to w re-encrypted for the
// passphrase p: only the header changes, the body is copied as it is.
func Rewrap(w io.Writer, r io.Reader, id *Identity, p Passphrase) error {
	br := bufio.NewReaderSize(r, chunkSize+64)
	st, err := header(br)
	if err != nil {
		return err
	}
	fk, err := id.unwrap(st)
	if err != nil {
		return err
	}
	ps, err := passphraseStanza(p, fk)
	if err != nil {
		return err
	}
	if _, err := io.WriteString(w, magic+"\n"+ps+"\n---\n"); err != nil {
		return err
	}
	_, err = io.Copy(w, br)
	return err
}

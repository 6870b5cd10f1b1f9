package pii

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Sentinel errors.
var (
	// ErrErased means the subject's data key was destroyed.
	ErrErased = errors.New("pii: subject's key was destroyed")
	// ErrNoKey means the subject has no data key and was never erased.
	ErrNoKey = errors.New("pii: no key for subject")
	// ErrCorrupt means sealed data or a stored key fails to decrypt.
	ErrCorrupt = errors.New("pii: sealed data does not open")
)

// KeyStore holds one wrapped data key per subject, and the erasures. The
// keys it is given are already encrypted under the key-encryption key, so
// a store never sees a usable key. Implementations must be safe for
// concurrent use, and, when several heed instances share one store, agree
// between them: two PutIfAbsent racing for one subject leave one key, and
// after Delete no instance's Get returns the destroyed key.
type KeyStore interface {
	// Get returns the subject's current wrapped key, or nil if it has none.
	Get(ctx context.Context, subject string) ([]byte, error)
	// PutIfAbsent stores wrapped as the subject's key unless it has one,
	// and returns the key the subject has afterwards: wrapped, or the one
	// a concurrent writer stored first.
	PutIfAbsent(ctx context.Context, subject string, wrapped []byte) ([]byte, error)
	// Delete destroys the subject's current key so it cannot be read back,
	// records when, and returns that time. If the subject has no key and
	// was erased before, it changes nothing and returns the recorded time,
	// so a retried erasure is recognisably the same one.
	Delete(ctx context.Context, subject string) (time.Time, error)
	// Erased reports whether and when the subject's key was last destroyed.
	Erased(ctx context.Context, subject string) (time.Time, bool, error)
	// Close releases the store.
	Close() error
}

const (
	version  = 1
	keyIDLen = 8
	// sealed and stored keys: version ‖ key id ‖ nonce ‖ ciphertext.
	headerLen = 1 + keyIDLen
)

// Keys seals and opens subjects' personal fields with their data keys,
// which a KeyStore holds wrapped. Safe for concurrent use.
type Keys struct {
	kek   cipher.AEAD
	store KeyStore
}

// OpenKeys opens or creates the local key file at path (a BoltStore); kek
// (32 bytes) wraps the data keys.
func OpenKeys(path string, kek []byte) (*Keys, error) {
	aead, err := newAEAD(kek)
	if err != nil {
		return nil, fmt.Errorf("pii: key-encryption key: %w", err)
	}
	b, err := OpenBolt(path)
	if err != nil {
		return nil, err
	}
	return &Keys{kek: aead, store: b}, nil
}

// New returns Keys on store; kek (32 bytes) wraps the data keys. Every
// instance sharing a store must use the same kek. Keys.Close closes store.
func New(store KeyStore, kek []byte) (*Keys, error) {
	aead, err := newAEAD(kek)
	if err != nil {
		return nil, fmt.Errorf("pii: key-encryption key: %w", err)
	}
	return &Keys{kek: aead, store: store}, nil
}

// Close closes the key store.
func (k *Keys) Close() error { return k.store.Close() }

func newAEAD(key []byte) (cipher.AEAD, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("want 32 bytes, have %d", len(key))
	}
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

// aad binds a ciphertext to its subject and key, so sealed data or a
// wrapped key copied to another subject does not open.
func aad(kind, subject string, keyID []byte) []byte {
	return append([]byte("heed-pii/1\x00"+kind+"\x00"+subject+"\x00"), keyID...)
}

func seal(a cipher.AEAD, keyID, plain, ad []byte) ([]byte, error) {
	nonce := make([]byte, a.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return sealWith(a, keyID, nonce, plain, ad), nil
}

func sealWith(a cipher.AEAD, keyID, nonce, plain, ad []byte) []byte {
	out := make([]byte, headerLen, headerLen+len(nonce)+len(plain)+a.Overhead())
	out[0] = version
	copy(out[1:], keyID)
	out = append(out, nonce...)
	return a.Seal(out, nonce, plain, ad)
}

func open(a cipher.AEAD, sealed []byte, ad func(keyID []byte) []byte) ([]byte, error) {
	if len(sealed) < headerLen+a.NonceSize()+a.Overhead() || sealed[0] != version {
		return nil, ErrCorrupt
	}
	keyID := sealed[1:headerLen]
	nonce := sealed[headerLen : headerLen+a.NonceSize()]
	plain, err := a.Open(nil, nonce, sealed[headerLen+a.NonceSize():], ad(keyID))
	if err != nil {
		return nil, ErrCorrupt
	}
	return plain, nil
}

func keyIDOf(sealed []byte) ([]byte, bool) {
	if len(sealed) < headerLen || sealed[0] != version {
		return nil, false
	}
	return sealed[1:headerLen], true
}

// newWrapped makes a new data key for subject, wrapped under the kek.
func (k *Keys) newWrapped(subject string) ([]byte, error) {
	keyID := make([]byte, keyIDLen)
	key := make([]byte, 32)
	if _, err := rand.Read(keyID); err != nil {
		return nil, err
	}
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	return seal(k.kek, keyID, key, aad("key", subject, keyID))
}

// dataKey is an unwrapped data key.
type dataKey struct {
	aead cipher.AEAD
	id   []byte
	// nonces derives SealEvent's nonces: a key of its own, made from the
	// data key, so the nonce function and the cipher stay independent.
	nonces []byte
}

// unwrap returns the data key in wrapped.
func (k *Keys) unwrap(subject string, wrapped []byte) (dataKey, error) {
	keyID, ok := keyIDOf(wrapped)
	if !ok {
		return dataKey{}, fmt.Errorf("%w: the stored key is malformed", ErrCorrupt)
	}
	key, err := open(k.kek, wrapped, func(id []byte) []byte { return aad("key", subject, id) })
	if err != nil {
		return dataKey{}, fmt.Errorf("%w: the stored key does not unwrap (wrong key-encryption key?)", ErrCorrupt)
	}
	return dataKeyOf(key, keyID)
}

// current returns the subject's data key, creating it on first use.
func (k *Keys) current(ctx context.Context, subject string) (dataKey, error) {
	wrapped, err := k.store.Get(ctx, subject)
	if err == nil && wrapped == nil {
		var fresh []byte
		if fresh, err = k.newWrapped(subject); err == nil {
			wrapped, err = k.store.PutIfAbsent(ctx, subject, fresh)
		}
	}
	if err != nil {
		return dataKey{}, err
	}
	return k.unwrap(subject, wrapped)
}

// Seal encrypts a subject's personal fields with the subject's data key,
// creating the key on first use. subject names the key: for an event's
// fields, Owner(tenant, subject). Each call draws a fresh nonce; SealEvent
// is the deterministic form that retried appends need.
func (k *Keys) Seal(subject string, fields map[string]string) ([]byte, error) {
	return k.SealContext(context.Background(), subject, fields)
}

// SealContext is Seal with a context for a key store on the network.
func (k *Keys) SealContext(ctx context.Context, subject string, fields map[string]string) ([]byte, error) {
	plain, err := json.Marshal(fields)
	if err != nil {
		return nil, err
	}
	dk, err := k.current(ctx, subject)
	if err != nil {
		return nil, fmt.Errorf("pii: seal: %w", err)
	}
	return seal(dk.aead, dk.id, plain, aad("data", subject, dk.id))
}

// SealEvent seals the personal fields of the event with id, like Seal, but
// deterministically: the nonce is an HMAC, under a key derived from the
// data key, of the event id and the sealed bytes. A retried append of the
// same event therefore carries the same ciphertext, which the stores'
// content comparison recognises as the same write, while two different
// events never share a nonce (ids are unique in the log, and equal
// plaintexts under different ids get different nonces). After an erasure
// the subject has a new key, so a retry then no longer matches.
func (k *Keys) SealEvent(ctx context.Context, subject, id string, fields map[string]string) ([]byte, error) {
	plain, err := json.Marshal(fields)
	if err != nil {
		return nil, err
	}
	dk, err := k.current(ctx, subject)
	if err != nil {
		return nil, fmt.Errorf("pii: seal: %w", err)
	}
	return sealEvent(dk, subject, id, plain), nil
}

// sealEvent seals plain for the event with id under dk, its nonce derived
// as SealEvent says.
func sealEvent(dk dataKey, subject, id string, plain []byte) []byte {
	ad := aad("data", subject, dk.id)
	m := hmac.New(sha256.New, dk.nonces)
	m.Write(ad)
	m.Write([]byte{0})
	m.Write([]byte(id))
	m.Write([]byte{0})
	m.Write(plain)
	nonce := m.Sum(nil)[:dk.aead.NonceSize()]
	return sealWith(dk.aead, dk.id, nonce, plain, ad)
}

// Open decrypts fields sealed for subject. It fails with ErrErased once
// the key that sealed them has been destroyed.
func (k *Keys) Open(subject string, sealed []byte) (map[string]string, error) {
	return k.OpenContext(context.Background(), subject, sealed)
}

// OpenContext is Open with a context for a key store on the network.
func (k *Keys) OpenContext(ctx context.Context, subject string, sealed []byte) (map[string]string, error) {
	id, ok := keyIDOf(sealed)
	if !ok {
		return nil, ErrCorrupt
	}
	wrapped, err := k.store.Get(ctx, subject)
	if err != nil {
		return nil, fmt.Errorf("pii: open: %w", err)
	}
	var a cipher.AEAD
	var keyID []byte
	if wrapped != nil {
		dk, err := k.unwrap(subject, wrapped)
		if err != nil {
			return nil, fmt.Errorf("pii: open: %w", err)
		}
		a, keyID = dk.aead, dk.id
	}
	if a == nil || string(keyID) != string(id) {
		_, erased, err := k.store.Erased(ctx, subject)
		switch {
		case err != nil:
			return nil, fmt.Errorf("pii: open: %w", err)
		case erased:
			return nil, ErrErased
		case a == nil:
			return nil, ErrNoKey
		}
		return nil, ErrCorrupt
	}
	plain, err := open(a, sealed, func(id []byte) []byte { return aad("data", subject, id) })
	if err != nil {
		return nil, err
	}
	var fields map[string]string
	if err := json.Unmarshal(plain, &fields); err != nil {
		return nil, ErrCorrupt
	}
	return fields, nil
}

// Erase destroys the subject's data key and records when. It returns the
// time of the erasure; erasing a subject that has no key again returns the
// recorded time, so a retried erasure is recognisably the same one.
func (k *Keys) Erase(subject string) (time.Time, error) {
	return k.EraseContext(context.Background(), subject)
}

// EraseContext is Erase with a context for a key store on the network.
func (k *Keys) EraseContext(ctx context.Context, subject string) (time.Time, error) {
	at, err := k.store.Delete(ctx, subject)
	if err != nil {
		return time.Time{}, fmt.Errorf("pii: erase: %w", err)
	}
	return at, nil
}

// Erased reports whether and when the subject's key was last destroyed.
func (k *Keys) Erased(subject string) (time.Time, bool, error) {
	return k.store.Erased(context.Background(), subject)
}

// CompactIfErased compacts a local key file (see BoltStore.CompactIfErased)
// and reports whether it did; other stores have no file and it does
// nothing.
func (k *Keys) CompactIfErased() (bool, error) {
	if b, ok := k.store.(*BoltStore); ok {
		return b.CompactIfErased()
	}
	return false, nil
}

// Compact rewrites a local key file (see BoltStore.Compact); other stores
// have no file and it does nothing.
func (k *Keys) Compact() error {
	if b, ok := k.store.(*BoltStore); ok {
		return b.Compact()
	}
	return nil
}

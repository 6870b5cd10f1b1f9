package pii

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
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

var (
	// bucketSubject holds the data keys that seal a subject's personal
	// fields; other purposes would get buckets of their own.
	bucketSubject = []byte("subject")
	bucketErased  = []byte("erased")
	bucketMeta    = []byte("meta")
	// keyUncompacted counts erasures since the last compaction.
	keyUncompacted = []byte("erased_since_compact")
)

const (
	version  = 1
	keyIDLen = 8
	// sealed and stored keys: version ‖ key id ‖ nonce ‖ ciphertext.
	headerLen = 1 + keyIDLen
)

// Keys holds the per-subject data keys. Safe for concurrent use.
type Keys struct {
	path string
	kek  cipher.AEAD
	mu   sync.RWMutex // exclusive only while Compact swaps the file
	db   *bolt.DB
}

// OpenKeys opens or creates the key file at path; kek (32 bytes) wraps the
// data keys.
func OpenKeys(path string, kek []byte) (*Keys, error) {
	aead, err := newAEAD(kek)
	if err != nil {
		return nil, fmt.Errorf("pii: key-encryption key: %w", err)
	}
	db, err := openDB(path)
	if err != nil {
		return nil, err
	}
	return &Keys{path: path, kek: aead, db: db}, nil
}

func openDB(path string) (*bolt.DB, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("pii: opening %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketSubject, bucketErased, bucketMeta} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("pii: %s: %w", path, err)
	}
	return db, nil
}

// Close closes the key file.
func (k *Keys) Close() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.db.Close()
}

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
	out := make([]byte, headerLen, headerLen+a.NonceSize()+len(plain)+a.Overhead())
	out[0] = version
	copy(out[1:], keyID)
	nonce := make([]byte, a.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	out = append(out, nonce...)
	return a.Seal(out, nonce, plain, ad), nil
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

// dataKey returns the subject's data key and its id, creating one if
// create is set and none exists.
func (k *Keys) dataKey(tx *bolt.Tx, subject string, create bool) (cipher.AEAD, []byte, error) {
	b := tx.Bucket(bucketSubject)
	wrapped := b.Get([]byte(subject))
	if wrapped == nil {
		if !create {
			return nil, nil, nil
		}
		keyID := make([]byte, keyIDLen)
		key := make([]byte, 32)
		if _, err := rand.Read(keyID); err != nil {
			return nil, nil, err
		}
		if _, err := rand.Read(key); err != nil {
			return nil, nil, err
		}
		w, err := seal(k.kek, keyID, key, aad("key", subject, keyID))
		if err != nil {
			return nil, nil, err
		}
		if err := b.Put([]byte(subject), w); err != nil {
			return nil, nil, err
		}
		wrapped = w
	}
	keyID, _ := keyIDOf(wrapped)
	key, err := open(k.kek, wrapped, func(id []byte) []byte { return aad("key", subject, id) })
	if err != nil {
		return nil, nil, fmt.Errorf("%w: the stored key does not unwrap (wrong key-encryption key?)", ErrCorrupt)
	}
	a, err := newAEAD(key)
	if err != nil {
		return nil, nil, err
	}
	return a, append([]byte(nil), keyID...), nil
}

// Seal encrypts a subject's personal fields with the subject's data key,
// creating the key on first use.
func (k *Keys) Seal(subject string, fields map[string]string) ([]byte, error) {
	plain, err := json.Marshal(fields)
	if err != nil {
		return nil, err
	}
	k.mu.RLock()
	defer k.mu.RUnlock()
	var a cipher.AEAD
	var keyID []byte
	// Fast path without the write lock once the key exists.
	err = k.db.View(func(tx *bolt.Tx) error {
		a, keyID, err = k.dataKey(tx, subject, false)
		return err
	})
	if err == nil && a == nil {
		err = k.db.Update(func(tx *bolt.Tx) error {
			a, keyID, err = k.dataKey(tx, subject, true)
			return err
		})
	}
	if err != nil {
		return nil, fmt.Errorf("pii: seal: %w", err)
	}
	return seal(a, keyID, plain, aad("data", subject, keyID))
}

// Open decrypts fields sealed for subject. It fails with ErrErased once
// the key that sealed them has been destroyed.
func (k *Keys) Open(subject string, sealed []byte) (map[string]string, error) {
	id, ok := keyIDOf(sealed)
	if !ok {
		return nil, ErrCorrupt
	}
	k.mu.RLock()
	defer k.mu.RUnlock()
	var a cipher.AEAD
	var keyID []byte
	var erased bool
	err := k.db.View(func(tx *bolt.Tx) error {
		var err error
		a, keyID, err = k.dataKey(tx, subject, false)
		erased = tx.Bucket(bucketErased).Get([]byte(subject)) != nil
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("pii: open: %w", err)
	}
	if a == nil || string(keyID) != string(id) {
		if erased {
			return nil, ErrErased
		}
		if a == nil {
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
	k.mu.RLock()
	defer k.mu.RUnlock()
	var at time.Time
	err := k.db.Update(func(tx *bolt.Tx) error {
		keys, erased := tx.Bucket(bucketSubject), tx.Bucket(bucketErased)
		if keys.Get([]byte(subject)) == nil {
			if v := erased.Get([]byte(subject)); v != nil {
				return at.UnmarshalText(v)
			}
		}
		at = time.Now().UTC()
		if err := keys.Delete([]byte(subject)); err != nil {
			return err
		}
		v, _ := at.MarshalText()
		if err := erased.Put([]byte(subject), v); err != nil {
			return err
		}
		meta := tx.Bucket(bucketMeta)
		return meta.Put(keyUncompacted, binary.BigEndian.AppendUint64(nil, uncompacted(meta)+1))
	})
	if err != nil {
		return time.Time{}, fmt.Errorf("pii: erase: %w", err)
	}
	return at, nil
}

// Erased reports whether and when the subject's key was last destroyed.
func (k *Keys) Erased(subject string) (time.Time, bool, error) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	var at time.Time
	var ok bool
	err := k.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketErased).Get([]byte(subject))
		if v == nil {
			return nil
		}
		ok = true
		return at.UnmarshalText(v)
	})
	return at, ok, err
}

func uncompacted(meta *bolt.Bucket) uint64 {
	if v := meta.Get(keyUncompacted); len(v) == 8 {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

// CompactIfErased compacts the key file if any key was destroyed since the
// last compaction, and reports whether it did. heed calls it when it opens
// a data directory: rewriting the whole file on every erasure would stall
// sealing for seconds on a large file, and a restart is a natural point.
func (k *Keys) CompactIfErased() (bool, error) {
	var n uint64
	k.mu.RLock()
	err := k.db.View(func(tx *bolt.Tx) error {
		n = uncompacted(tx.Bucket(bucketMeta))
		return nil
	})
	k.mu.RUnlock()
	if err != nil || n == 0 {
		return false, err
	}
	return true, k.Compact()
}

// Compact rewrites the key file so destroyed keys no longer linger in
// freed pages, then swaps it in (temp file, fsync, rename, fsync dir).
// Other calls wait meanwhile.
func (k *Keys) Compact() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	tmp := k.path + ".compact"
	os.Remove(tmp)
	dst, err := bolt.Open(tmp, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return fmt.Errorf("pii: compact: %w", err)
	}
	if err := bolt.Compact(dst, k.db, 0); err != nil {
		dst.Close()
		os.Remove(tmp)
		return fmt.Errorf("pii: compact: %w", err)
	}
	// Compact commits (and so fsyncs) what it copied; Close releases it.
	if err := dst.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("pii: compact: %w", err)
	}
	if err := k.db.Close(); err != nil {
		return fmt.Errorf("pii: compact: %w", err)
	}
	renameErr := os.Rename(tmp, k.path)
	if renameErr == nil {
		renameErr = syncDir(filepath.Dir(k.path))
	}
	db, err := openDB(k.path)
	if err != nil {
		return err
	}
	k.db = db
	if renameErr == nil {
		err = db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Delete(keyUncompacted) })
		if err != nil {
			return fmt.Errorf("pii: compact: %w", err)
		}
	}
	if renameErr != nil {
		return fmt.Errorf("pii: compact: %w", renameErr)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

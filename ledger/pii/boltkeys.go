package pii

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/heed/heed/ledger/atomicfile"
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

// BoltStore is the KeyStore of a single instance: the wrapped keys in a
// local bbolt file (keys.db).
type BoltStore struct {
	path string
	mu   sync.RWMutex // exclusive only while Compact swaps the file
	db   *bolt.DB

	// New keys are written in groups (see PutIfAbsent): puts is the
	// group waiting for the transaction in flight, if putting.
	putMu   sync.Mutex
	puts    []*put
	putting bool
}

// put is one PutIfAbsent waiting for its group's transaction.
type put struct {
	subject string
	wrapped []byte
	out     []byte
	err     error
	done    chan struct{}
}

var _ ManyKeyStore = (*BoltStore)(nil)

// OpenBolt opens or creates the key file at path.
func OpenBolt(path string) (*BoltStore, error) {
	db, err := openDB(path)
	if err != nil {
		return nil, err
	}
	return &BoltStore{path: path, db: db}, nil
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
func (b *BoltStore) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.db.Close()
}

// Get implements KeyStore.
func (b *BoltStore) Get(_ context.Context, subject string) ([]byte, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	var w []byte
	err := b.db.View(func(tx *bolt.Tx) error {
		w = append([]byte(nil), tx.Bucket(bucketSubject).Get([]byte(subject))...)
		return nil
	})
	if len(w) == 0 {
		w = nil
	}
	return w, err
}

// PutIfAbsent implements KeyStore. Each transaction commits with an
// fsync, so the calls that arrive while one is in flight wait and go in
// the next one together: a bulk import creating a key for every new
// subject pays one fsync per group, not per subject, and a lone call
// waits for nothing.
func (b *BoltStore) PutIfAbsent(_ context.Context, subject string, wrapped []byte) ([]byte, error) {
	p := &put{subject: subject, wrapped: wrapped, done: make(chan struct{})}
	b.putMu.Lock()
	b.puts = append(b.puts, p)
	if b.putting {
		b.putMu.Unlock()
		<-p.done
		return p.out, p.err
	}
	b.putting = true
	for len(b.puts) > 0 {
		group := b.puts
		b.puts = nil
		b.putMu.Unlock()
		b.putGroup(group)
		b.putMu.Lock()
	}
	b.putting = false
	b.putMu.Unlock()
	return p.out, p.err
}

// putGroup writes a group of puts in one transaction and releases them.
func (b *BoltStore) putGroup(group []*put) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	err := b.db.Update(func(tx *bolt.Tx) error {
		keys := tx.Bucket(bucketSubject)
		for _, p := range group {
			if v := keys.Get([]byte(p.subject)); v != nil {
				p.out = append([]byte(nil), v...)
				continue
			}
			p.out = p.wrapped
			if err := keys.Put([]byte(p.subject), p.wrapped); err != nil {
				return err
			}
		}
		return nil
	})
	for _, p := range group {
		if err != nil {
			p.out, p.err = nil, err
		}
		close(p.done)
	}
}

// GetMany implements ManyKeyStore, in one read transaction.
func (b *BoltStore) GetMany(_ context.Context, subjects []string) ([][]byte, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	out := make([][]byte, len(subjects))
	err := b.db.View(func(tx *bolt.Tx) error {
		keys := tx.Bucket(bucketSubject)
		for i, s := range subjects {
			if v := keys.Get([]byte(s)); len(v) > 0 {
				out[i] = append([]byte(nil), v...)
			}
		}
		return nil
	})
	return out, err
}

// PutManyIfAbsent implements ManyKeyStore: one transaction, so one
// commit and its fsync for them all, with the puts in key order so that
// each page of the file is visited once.
func (b *BoltStore) PutManyIfAbsent(_ context.Context, subjects []string, wrapped [][]byte) ([][]byte, error) {
	order := make([]int, len(subjects))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(x, y int) int { return strings.Compare(subjects[x], subjects[y]) })
	out := make([][]byte, len(subjects))
	b.mu.RLock()
	defer b.mu.RUnlock()
	err := b.db.Update(func(tx *bolt.Tx) error {
		keys := tx.Bucket(bucketSubject)
		for _, i := range order {
			if v := keys.Get([]byte(subjects[i])); v != nil {
				out[i] = append([]byte(nil), v...)
				continue
			}
			out[i] = wrapped[i]
			if err := keys.Put([]byte(subjects[i]), wrapped[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Delete implements KeyStore.
func (b *BoltStore) Delete(_ context.Context, subject string) (time.Time, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	var at time.Time
	err := b.db.Update(func(tx *bolt.Tx) error {
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
	return at, err
}

// Erased implements KeyStore.
func (b *BoltStore) Erased(_ context.Context, subject string) (time.Time, bool, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	var at time.Time
	var ok bool
	err := b.db.View(func(tx *bolt.Tx) error {
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
func (b *BoltStore) CompactIfErased() (bool, error) {
	var n uint64
	b.mu.RLock()
	err := b.db.View(func(tx *bolt.Tx) error {
		n = uncompacted(tx.Bucket(bucketMeta))
		return nil
	})
	b.mu.RUnlock()
	if err != nil || n == 0 {
		return false, err
	}
	return true, b.Compact()
}

// Compact rewrites the key file so destroyed keys no longer linger in
// freed pages, then swaps it in (temp file, fsync, rename, fsync dir).
// Other calls wait meanwhile.
func (b *BoltStore) Compact() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	tmp := b.path + ".compact"
	os.Remove(tmp)
	dst, err := bolt.Open(tmp, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return fmt.Errorf("pii: compact: %w", err)
	}
	if err := bolt.Compact(dst, b.db, 0); err != nil {
		dst.Close()
		os.Remove(tmp)
		return fmt.Errorf("pii: compact: %w", err)
	}
	// Compact commits (and so fsyncs) what it copied; Close releases it.
	if err := dst.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("pii: compact: %w", err)
	}
	if err := b.db.Close(); err != nil {
		return fmt.Errorf("pii: compact: %w", err)
	}
	renameErr := atomicfile.Rename(tmp, b.path)
	db, err := openDB(b.path)
	if err != nil {
		return err
	}
	b.db = db
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

package merkle

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/mod/sumdb/tlog"
)

var (
	bucketHashes = []byte("hashes")
	bucketMeta   = []byte("meta")
	keySize      = []byte("size")
)

// Log is a standalone tree-hash log: a bbolt file of the stored hashes of
// a Merkle tree, appended leaf by leaf, for a backend that does not keep
// tree hashes itself (a sealer following a remote log). Each Append is one
// fsynced transaction. A Log is a [Source], so a [Sealer] can seal it and
// [Inclusion] and [Consistency] can prove from it. Safe for concurrent use;
// appends are serialised.
type Log struct {
	db *bolt.DB
}

// OpenLog opens or creates the hash log at path.
func OpenLog(path string) (*Log, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("merkle: opening %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		if _, err := tx.CreateBucketIfNotExists(bucketHashes); err != nil {
			return err
		}
		_, err := tx.CreateBucketIfNotExists(bucketMeta)
		return err
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("merkle: %s: %w", path, err)
	}
	return &Log{db: db}, nil
}

// Close closes the file.
func (l *Log) Close() error { return l.db.Close() }

// Size returns the number of leaves appended: the position the next leaf
// will take is Size()+1.
func (l *Log) Size() (int64, error) {
	var n int64
	err := l.db.View(func(tx *bolt.Tx) error {
		n = readSize(tx)
		return nil
	})
	return n, err
}

// Head returns Size as a position.
func (l *Log) Head(context.Context) (uint64, error) {
	n, err := l.Size()
	return uint64(n), err
}

func readSize(tx *bolt.Tx) int64 {
	v := tx.Bucket(bucketMeta).Get(keySize)
	if v == nil {
		return 0
	}
	return int64(binary.BigEndian.Uint64(v))
}

// Append adds leaves (the exact leaf bytes of consecutive events) in one
// durable transaction and returns the new size. If from is not Size()+1
// nothing is written and an error says where the log stands, so a follower
// that resumes from the wrong place cannot create a gap or a duplicate.
func (l *Log) Append(from int64, leaves ...[]byte) (int64, error) {
	var n int64
	err := l.db.Update(func(tx *bolt.Tx) error {
		n = readSize(tx)
		if from != n+1 {
			return fmt.Errorf("merkle: hash log holds %d leaves, cannot append at position %d", n, from)
		}
		b := tx.Bucket(bucketHashes)
		b.FillPercent = 1 // keys only ever grow
		r := txHashes{b}
		for _, leaf := range leaves {
			hs, err := tlog.StoredHashes(n, leaf, r)
			if err != nil {
				return err
			}
			base := tlog.StoredHashIndex(0, n)
			for i, h := range hs {
				if err := b.Put(sizeKey(base+int64(i)), h[:]); err != nil {
					return err
				}
			}
			n++
		}
		return tx.Bucket(bucketMeta).Put(keySize, sizeKey(n))
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// ReadHashes implements tlog.HashReader.
func (l *Log) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	var out []tlog.Hash
	err := l.db.View(func(tx *bolt.Tx) error {
		var err error
		out, err = txHashes{tx.Bucket(bucketHashes)}.ReadHashes(indexes)
		return err
	})
	return out, err
}

type txHashes struct{ b *bolt.Bucket }

func (t txHashes) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		v := t.b.Get(sizeKey(x))
		if len(v) != tlog.HashSize {
			return nil, fmt.Errorf("%w: stored hash %d not in hash log", ErrRange, x)
		}
		copy(out[i][:], v)
	}
	return out, nil
}

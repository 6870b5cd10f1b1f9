package merkle

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

var (
	bucketCheckpoints = []byte("checkpoints")
	// bucketRotations indexes, by size, the checkpoints that announce a
	// key rotation: every export keeps them, however thinned.
	bucketRotations = []byte("rotations")
)

// Checkpoints is the durable list of signed checkpoints of one log, kept in
// a bbolt file (checkpoints.db) keyed by tree size. Every Add is fsynced
// before it returns. Safe for concurrent use.
type Checkpoints struct {
	db *bolt.DB
	// anchor, when set, is the anchor file each Add rewrites; anchorMu
	// keeps concurrent Adds from writing an older checkpoint last.
	anchor   string
	anchorMu sync.Mutex
}

// OpenCheckpoints opens or creates the checkpoint file at path. A read-only
// open writes nothing and fails if the file does not exist.
func OpenCheckpoints(path string, readOnly bool) (*Checkpoints, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second, ReadOnly: readOnly})
	if err != nil {
		return nil, fmt.Errorf("merkle: opening %s: %w", path, err)
	}
	exists := false
	_ = db.View(func(tx *bolt.Tx) error { exists = tx.Bucket(bucketCheckpoints) != nil; return nil })
	// An existing file is not written at open: a data directory refused
	// after this open must be left as it was.
	if !readOnly && !exists {
		err = db.Update(func(tx *bolt.Tx) error {
			_, err := tx.CreateBucketIfNotExists(bucketCheckpoints)
			return err
		})
		if err != nil {
			db.Close()
			return nil, fmt.Errorf("merkle: %s: %w", path, err)
		}
	}
	return &Checkpoints{db: db}, nil
}

// Close closes the file.
func (c *Checkpoints) Close() error { return c.db.Close() }

func sizeKey(n int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(n)) }

// Add stores a signed checkpoint. Sizes must grow: a checkpoint no larger
// than the latest is refused, so the list stays ordered and append-only.
func (c *Checkpoints) Add(cp Checkpoint) error {
	if len(cp.Note) == 0 {
		return fmt.Errorf("%w: unsigned", ErrMalformed)
	}
	parsed, err := parseSigned(cp.Note)
	if err != nil {
		return err
	}
	c.anchorMu.Lock()
	defer c.anchorMu.Unlock()
	err = c.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketCheckpoints)
		if k, _ := b.Cursor().Last(); k != nil && int64(binary.BigEndian.Uint64(k)) >= cp.Size {
			return fmt.Errorf("%w: size %d, latest %d", ErrStale, cp.Size, binary.BigEndian.Uint64(k))
		}
		b.FillPercent = 1 // append-only keys
		if parsed.Rotation != nil {
			r, err := tx.CreateBucketIfNotExists(bucketRotations)
			if err != nil {
				return err
			}
			if err := r.Put(sizeKey(cp.Size), nil); err != nil {
				return err
			}
		}
		return b.Put(sizeKey(cp.Size), cp.Note)
	})
	if err != nil || c.anchor == "" {
		return err
	}
	return WriteAnchor(c.anchor, cp)
}

// Rotations returns the checkpoints that announce a key rotation, in size
// order.
func (c *Checkpoints) Rotations() ([]Checkpoint, error) {
	var out []Checkpoint
	err := c.db.View(func(tx *bolt.Tx) error {
		r, b := tx.Bucket(bucketRotations), tx.Bucket(bucketCheckpoints)
		if r == nil || b == nil {
			return nil
		}
		return r.ForEach(func(k, _ []byte) error {
			v := b.Get(k)
			if v == nil {
				return fmt.Errorf("%w: rotation at size %d", ErrNotFound, binary.BigEndian.Uint64(k))
			}
			cp, err := parseSigned(append([]byte(nil), v...))
			if err != nil {
				return err
			}
			out = append(out, cp)
			return nil
		})
	})
	return out, err
}

// Latest returns the checkpoint of the largest tree, or ErrNotFound.
func (c *Checkpoints) Latest() (Checkpoint, error) {
	var cp Checkpoint
	err := c.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketCheckpoints)
		if b == nil {
			return ErrNotFound
		}
		k, v := b.Cursor().Last()
		if k == nil {
			return ErrNotFound
		}
		var err error
		cp, err = parseSigned(append([]byte(nil), v...))
		return err
	})
	return cp, err
}

// At returns the checkpoint of the tree of exactly size leaves.
func (c *Checkpoints) At(size int64) (Checkpoint, error) {
	var cp Checkpoint
	err := c.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketCheckpoints)
		if b == nil {
			return fmt.Errorf("%w: size %d", ErrNotFound, size)
		}
		v := b.Get(sizeKey(size))
		if v == nil {
			return fmt.Errorf("%w: size %d", ErrNotFound, size)
		}
		var err error
		cp, err = parseSigned(append([]byte(nil), v...))
		return err
	})
	return cp, err
}

// List calls fn for each checkpoint with from <= Size <= to, in size order,
// stopping at the first error fn returns.
func (c *Checkpoints) List(from, to int64, fn func(Checkpoint) error) error {
	err := c.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketCheckpoints)
		if b == nil {
			return nil
		}
		cur := b.Cursor()
		for k, v := cur.Seek(sizeKey(max(from, 0))); k != nil; k, v = cur.Next() {
			if int64(binary.BigEndian.Uint64(k)) > to {
				break
			}
			cp, err := parseSigned(append([]byte(nil), v...))
			if err != nil {
				return err
			}
			if err := fn(cp); err != nil {
				return errStop{err}
			}
		}
		return nil
	})
	var s errStop
	if errors.As(err, &s) {
		return s.err
	}
	return err
}

// Spread returns at most n checkpoints of trees no larger than upTo,
// spread evenly over positions: for each of n evenly spaced sizes, the
// first checkpoint at or after it, and always the latest; and besides
// those, every checkpoint that announces a key rotation, without which the
// later ones could not be trusted. It reads O(n) entries however many are
// stored, so an export of a years-old ledger does not load every
// checkpoint a per-second sealer cut.
func (c *Checkpoints) Spread(upTo int64, n int) ([]Checkpoint, error) {
	out, err := c.spread(upTo, n)
	if err != nil || len(out) == 0 {
		return out, err
	}
	rots, err := c.Rotations()
	if err != nil {
		return nil, err
	}
	for _, r := range rots {
		i, found := slices.BinarySearchFunc(out, r.Size, func(c Checkpoint, size int64) int { return cmp.Compare(c.Size, size) })
		if !found && r.Size <= upTo {
			out = slices.Insert(out, i, r)
		}
	}
	return out, nil
}

func (c *Checkpoints) spread(upTo int64, n int) ([]Checkpoint, error) {
	var out []Checkpoint
	if n <= 0 || upTo <= 0 {
		return nil, nil
	}
	err := c.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketCheckpoints)
		if b == nil {
			return nil
		}
		cur := b.Cursor()
		last := int64(-1)
		for i := 1; i <= n; i++ {
			target := int64(float64(upTo) * float64(i) / float64(n))
			k, v := cur.Seek(sizeKey(max(target, 1)))
			if i == n || k == nil || int64(binary.BigEndian.Uint64(k)) > upTo {
				// The latest checkpoint within upTo.
				k, _ = cur.Seek(sizeKey(upTo + 1))
				if k == nil {
					k, v = cur.Last()
				} else {
					k, v = cur.Prev()
				}
			}
			if k == nil {
				break
			}
			size := int64(binary.BigEndian.Uint64(k))
			if size <= last || size > upTo {
				continue
			}
			cp, err := parseSigned(append([]byte(nil), v...))
			if err != nil {
				return err
			}
			out = append(out, cp)
			last = size
		}
		return nil
	})
	return out, err
}

// errStop carries fn's error out of the transaction unchanged.
type errStop struct{ err error }

func (e errStop) Error() string { return e.err.Error() }

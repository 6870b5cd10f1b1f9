package bolt

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"

	"go.etcd.io/bbolt"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/heed/heed/ledger"
)

// ErrForeign means the data file was made with other secrets than the ones
// given to Open: keys copied from another data directory, say.
var ErrForeign = errors.New("bolt: data file belongs to other secrets")

// Promise makes Open refuse a file whose log is shorter than size events
// (ledger.ErrBehind) or whose tree at size hashes to another root than
// root (ledger.ErrDiverged): the size and root of the newest checkpoint
// signed over this store, kept outside the file, so that a rollback of the
// file (a damaged meta page, a restored copy, a truncation) cannot take
// them along. A missing or empty file is refused too when size > 0.
func Promise(size int64, root tlog.Hash) Option {
	return func(o *options) { o.promised, o.root = size, root }
}

// Identity makes Open check the file against fields (a name, such as a
// key file's, and a value derived from it): a field stored in the file
// with another value fails with ErrForeign naming it; one not yet stored
// is recorded, in a new file or on the first read-write open with it.
// Values are compared, never shown.
func Identity(fields map[string][]byte) Option {
	return func(o *options) { o.identity = fields }
}

func identityKey(name string) []byte { return append([]byte("identity/"), name...) }

// checkPromise is Open's check of the file against options, before bbolt
// touches it: a file that must hold events is not missing or empty.
func checkPromised(path string, o options) error {
	if o.promised <= 0 {
		return nil
	}
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("%w: %s is missing, but a checkpoint signed over it covers %d events", ledger.ErrBehind, path, o.promised)
	case err != nil:
		return fmt.Errorf("bolt: open %s: %w", path, err)
	case fi.Size() == 0:
		return fmt.Errorf("%w: %s is empty, but a checkpoint signed over it covers %d events", ledger.ErrBehind, path, o.promised)
	}
	return nil
}

// checkLoaded checks a loaded file against the promise and the identity
// inside load's read transaction, and returns the identity fields still
// to record.
func checkLoaded(tx *bbolt.Tx, path string, head uint64, o options) (map[string][]byte, error) {
	if o.promised > 0 {
		if head < uint64(o.promised) {
			return nil, fmt.Errorf("%w: %s holds %d events, but a checkpoint signed over it covers %d", ledger.ErrBehind, path, head, o.promised)
		}
		hr := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
			out := make([]tlog.Hash, len(idx))
			return out, readHashes(tx.Bucket(bucketTree), idx, out)
		})
		root, err := tlog.TreeHash(o.promised, hr)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, path, err)
		}
		if root != o.root {
			return nil, fmt.Errorf("%w: %s holds %d events, and its first %d hash to another root than the signed checkpoint of size %d", ledger.ErrDiverged, path, head, o.promised, o.promised)
		}
	}
	var todo map[string][]byte
	m := tx.Bucket(bucketMeta)
	names := make([]string, 0, len(o.identity))
	for name := range o.identity {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		want := o.identity[name]
		got := m.Get(identityKey(name))
		switch {
		case got == nil:
			if todo == nil {
				todo = map[string][]byte{}
			}
			todo[name] = want
		case string(got) != string(want):
			return nil, fmt.Errorf("%w: %s was made with another %s", ErrForeign, path, name)
		}
	}
	return todo, nil
}

// leafHashes checks leaves read from the events bucket against the leaf
// hashes of the tree bucket, so that a damaged event is refused rather
// than served. It keeps the tree value of the batch last used, so a scan
// in position order reads each batch's hashes once.
type leafHashes struct {
	c          *bbolt.Cursor
	first, end int64 // stored-hash indexes v covers
	v          []byte
	buf        []byte // 0x00 || leaf, hashed without tlog.RecordHash's allocation
}

func newLeafHashes(tx *bbolt.Tx) *leafHashes {
	return &leafHashes{c: tx.Bucket(bucketTree).Cursor()}
}

// check returns ErrCorrupt unless leaf hashes to the tree's leaf pos.
func (l *leafHashes) check(pos uint64, leaf []byte) error {
	if pos == 0 {
		return fmt.Errorf("%w: event at position 0", ErrCorrupt)
	}
	n := int64(pos - 1)
	x := tlog.StoredHashIndex(0, n)
	if x < l.first || x >= l.end {
		k, v := l.c.Seek(key(uint64(n)))
		if k == nil || int64(binary.BigEndian.Uint64(k)) > n {
			k, v = l.c.Prev()
		}
		if len(k) != 8 {
			return fmt.Errorf("%w: event %d has no tree hash", ErrCorrupt, pos)
		}
		l.first = tlog.StoredHashCount(int64(binary.BigEndian.Uint64(k)))
		l.end = l.first + int64(len(v))/tlog.HashSize
		l.v = v
		if x < l.first || x >= l.end {
			l.first, l.end = 0, 0
			return fmt.Errorf("%w: event %d has no tree hash", ErrCorrupt, pos)
		}
	}
	off := (x - l.first) * tlog.HashSize
	l.buf = append(append(l.buf[:0], 0), leaf...)
	if sha256.Sum256(l.buf) != [tlog.HashSize]byte(l.v[off:off+tlog.HashSize]) {
		return fmt.Errorf("%w: event %d does not match its tree hash: the stored event was altered", ErrCorrupt, pos)
	}
	return nil
}

// Backup writes a consistent copy of the whole data file to w, from one
// read transaction, while appends go on. The copy opens as a store
// holding at least every event acknowledged before Backup was called.
func (s *Store) Backup(w io.Writer) (int64, error) {
	var n int64
	err := s.view(func(tx *bbolt.Tx) error {
		var err error
		n, err = tx.WriteTo(w)
		return err
	})
	return n, err
}

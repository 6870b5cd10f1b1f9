package merkle

import (
	"context"
	"fmt"
	"slices"

	"golang.org/x/mod/sumdb/tlog"
)

// Source is a tree that can be sealed and proved: a tlog.HashReader over
// the stored hashes of the log, and its head position (tree size).
type Source interface {
	tlog.HashReader
	Head(ctx context.Context) (uint64, error)
}

// Tree is an in-memory Merkle tree that grows leaf by leaf. It holds every
// stored hash (about 64 bytes per leaf), which suits verifying a bundle of a
// few million events. It is not safe for concurrent use.
type Tree struct {
	hashes []tlog.Hash
	n      int64
}

// Append adds one leaf.
func (t *Tree) Append(leaf []byte) { t.AppendRecordHash(tlog.RecordHash(leaf)) }

// AppendRecordHash adds a leaf given its record hash.
func (t *Tree) AppendRecordHash(h tlog.Hash) {
	hs, err := tlog.StoredHashesForRecordHash(t.n, h, t)
	if err != nil {
		// Only reads of hashes we hold: cannot fail.
		panic(err)
	}
	t.hashes = append(t.hashes, hs...)
	t.n++
}

// Grow makes room for n more leaves without reallocating.
func (t *Tree) Grow(n int64) {
	if n > 0 {
		t.hashes = slices.Grow(t.hashes, int(tlog.StoredHashCount(t.n+n)-int64(len(t.hashes))))
	}
}

// Size returns the number of leaves.
func (t *Tree) Size() int64 { return t.n }

// Root returns the root hash of the first size leaves.
func (t *Tree) Root(size int64) (tlog.Hash, error) {
	if size < 0 || size > t.n {
		return tlog.Hash{}, fmt.Errorf("%w: size %d of a tree of %d", ErrRange, size, t.n)
	}
	return tlog.TreeHash(size, t)
}

// Head returns the number of leaves, so a Tree is a [Source].
func (t *Tree) Head(context.Context) (uint64, error) { return uint64(t.n), nil }

// ReadHashes implements tlog.HashReader.
func (t *Tree) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if x < 0 || x >= int64(len(t.hashes)) {
			return nil, fmt.Errorf("%w: stored hash %d of %d", ErrRange, x, len(t.hashes))
		}
		out[i] = t.hashes[x]
	}
	return out, nil
}

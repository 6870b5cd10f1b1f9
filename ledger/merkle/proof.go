package merkle

import (
	"fmt"

	"golang.org/x/mod/sumdb/tlog"
)

// Inclusion proves that the leaf at position (1-based) is in the tree of
// the given size.
func Inclusion(r tlog.HashReader, position, size int64) (tlog.RecordProof, error) {
	if position < 1 || position > size {
		return nil, fmt.Errorf("%w: position %d in a tree of %d", ErrRange, position, size)
	}
	p, err := tlog.ProveRecord(size, position-1, r)
	if err != nil {
		return nil, fmt.Errorf("merkle: inclusion proof: %w", err)
	}
	return p, nil
}

// CheckInclusion verifies that leaf sits at position in the tree signed by
// cp.
func CheckInclusion(p tlog.RecordProof, cp Checkpoint, position int64, leaf []byte) error {
	if position < 1 || position > cp.Size {
		return fmt.Errorf("%w: position %d in a tree of %d", ErrRange, position, cp.Size)
	}
	if err := tlog.CheckRecord(p, cp.Size, cp.Root, position-1, tlog.RecordHash(leaf)); err != nil {
		return fmt.Errorf("merkle: position %d not in tree of size %d: %w", position, cp.Size, err)
	}
	return nil
}

// Consistency proves that the tree of size oldSize is a prefix of the tree
// of size newSize.
func Consistency(r tlog.HashReader, oldSize, newSize int64) (tlog.TreeProof, error) {
	if oldSize < 1 || oldSize > newSize {
		return nil, fmt.Errorf("%w: sizes %d and %d", ErrRange, oldSize, newSize)
	}
	p, err := tlog.ProveTree(newSize, oldSize, r)
	if err != nil {
		return nil, fmt.Errorf("merkle: consistency proof: %w", err)
	}
	return p, nil
}

// CheckConsistency verifies that older is a prefix of newer.
func CheckConsistency(p tlog.TreeProof, older, newer Checkpoint) error {
	if older.Size < 1 || older.Size > newer.Size {
		return fmt.Errorf("%w: sizes %d and %d", ErrRange, older.Size, newer.Size)
	}
	if err := tlog.CheckTree(p, newer.Size, newer.Root, older.Size, older.Root); err != nil {
		return fmt.Errorf("%w: sizes %d and %d: %v", ErrInconsistent, older.Size, newer.Size, err)
	}
	return nil
}

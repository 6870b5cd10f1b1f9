package merkle

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	bolt "go.etcd.io/bbolt"

	"github.com/heed/heed/ledger/atomicfile"
)

// An anchor file holds a copy of the newest signed checkpoint of a log,
// kept beside the store and apart from checkpoints.db, so that a rollback
// of either file cannot take the promise along: a store opened against it
// must hold at least that many events, hashing to that root.

// ReadAnchor returns the checkpoint the anchor file at path holds, or
// ErrNotFound when there is no such file. It does not check the signature.
func ReadAnchor(path string) (Checkpoint, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Checkpoint{}, fmt.Errorf("%w: no anchor %s", ErrNotFound, path)
	}
	if err != nil {
		return Checkpoint{}, fmt.Errorf("merkle: anchor: %w", err)
	}
	cp, err := parseSigned(b)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("%w: anchor %s", err, path)
	}
	return cp, nil
}

// WriteAnchor replaces the anchor file at path with cp, atomically: a
// temporary file written and fsynced, renamed over the old one, and the
// directory fsynced, so a crash leaves the old anchor or the new one.
func WriteAnchor(path string, cp Checkpoint) error {
	if len(cp.Note) == 0 {
		return fmt.Errorf("%w: unsigned", ErrMalformed)
	}
	err := atomicfile.Write(path, 0o600, func(w io.Writer) error {
		_, err := w.Write(cp.Note)
		return err
	})
	if err != nil {
		return fmt.Errorf("merkle: anchor: %w", err)
	}
	return nil
}

// Anchor makes every later Add also write the new checkpoint to the anchor
// file at path. Call it before the checkpoints are shared.
func (c *Checkpoints) Anchor(path string) { c.anchor = path }

// Backup writes a consistent copy of the checkpoint file to w.
func (c *Checkpoints) Backup(w io.Writer) (int64, error) {
	var n int64
	err := c.db.View(func(tx *bolt.Tx) error {
		var err error
		n, err = tx.WriteTo(w)
		return err
	})
	return n, err
}

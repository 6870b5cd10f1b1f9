package kurrent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/kurrent-io/KurrentDB-Client-Go/kurrentdb"

	"github.com/heed/heed/ledger"
	"github.com/heed/heed/ledger/pii"
)

// KeyStore is a pii.KeyStore on the cluster, so every heed instance on it
// seals and opens personal data with the same per-subject keys, and an
// erasure through any instance destroys the key for all of them.
//
// A subject's wrapped key is the only event of its own stream,
// "key:<prefix><subject>.<n>", created with NoStream so that of two
// instances racing to create it, the loser reads the winner's key. n counts
// the subject's erasures so far, recorded in "erasure:<prefix><subject>".
// Erasing appends the next erasure record, which moves every reader to the
// next (empty) key stream, then tombstones the old key stream, so it cannot
// be read or written again. Neither name starts with the prefix, so these
// events never enter heed's positioned log or its Merkle tree.
//
// A tombstone does not remove the bytes: until a scavenge runs, the wrapped
// key stays on the nodes' disks (and in reads of $all). It is wrapped under
// the key-encryption key, which the cluster never sees.
type KeyStore struct {
	s *Store
}

var _ pii.KeyStore = (*KeyStore)(nil)

// NewKeyStore returns the key store of the cluster s is connected to. It
// uses s's connection; closing the KeyStore does not close s.
func NewKeyStore(s *Store) *KeyStore { return &KeyStore{s: s} }

// Close implements pii.KeyStore; the connection belongs to the Store.
func (k *KeyStore) Close() error { return nil }

// attempts bounds the loops that re-read after losing a race to another
// instance; each lost race means another erasure or key was recorded.
const attempts = 8

// errRaced means the key store lost a race with other instances every
// time it tried.
var errRaced = errors.New("kurrent: key store: lost the race to other instances repeatedly")

type wrappedKey struct {
	Wrapped []byte `json:"wrapped"`
}

type erasure struct {
	At time.Time `json:"at"`
}

func (k *KeyStore) keyStream(subject string, n uint64) string {
	return fmt.Sprintf("key:%s%s.%d", k.s.opts.Prefix, subject, n)
}

func (k *KeyStore) erasureStream(subject string) string {
	return "erasure:" + k.s.opts.Prefix + subject
}

// erasures returns how many times the subject was erased, and the last
// erasure.
func (k *KeyStore) erasures(ctx context.Context, subject string) (uint64, erasure, error) {
	r, ok, err := k.s.lastRecord(ctx, k.erasureStream(subject))
	if err != nil || !ok {
		return 0, erasure{}, err
	}
	var e erasure
	if err := json.Unmarshal(r.data, &e); err != nil {
		return 0, erasure{}, fmt.Errorf("kurrent: erasure record of a subject: %w", err)
	}
	return r.revision + 1, e, nil
}

// keyAt returns the key in key stream n, or nil if there is none or it was
// tombstoned.
func (k *KeyStore) keyAt(ctx context.Context, subject string, n uint64) ([]byte, error) {
	r, ok, err := k.s.lastRecord(ctx, k.keyStream(subject, n))
	if errors.Is(err, ledger.ErrNotFound) || gone(err) {
		return nil, nil // tombstoned
	}
	if err != nil || !ok {
		return nil, err
	}
	var w wrappedKey
	if err := json.Unmarshal(r.data, &w); err != nil {
		return nil, fmt.Errorf("kurrent: key record of a subject: %w", err)
	}
	return w.Wrapped, nil
}

// errGone means a key stream was tombstoned.
var errGone = errors.New("kurrent: key stream tombstoned")

// gone reports whether err says the stream was tombstoned (older servers
// say stream-deleted, newer ones may say tombstoned).
func gone(err error) bool {
	c := code(err)
	return c == kurrentdb.ErrorCodeStreamDeleted || c == kurrentdb.ErrorCodeStreamTombstoned
}

// tombstone hard-deletes stream; one already tombstoned is fine.
func (k *KeyStore) tombstone(ctx context.Context, stream string) error {
	return k.s.do(ctx, "tombstone "+stream, func(c *kurrentdb.Client, _ int) error {
		_, err := c.TombstoneStream(ctx, stream, kurrentdb.TombstoneStreamOptions{StreamState: kurrentdb.Any{}})
		if gone(err) {
			return nil
		}
		return err
	})
}

// destroy tombstones a key stream so it can never be read or written
// again, also one that does not exist yet: the server refuses to tombstone
// a stream that was never written (wrong expected version, even with Any),
// so destroy writes a placeholder first, which leaves no name free for a
// late key.
func (k *KeyStore) destroy(ctx context.Context, stream string) error {
	err := k.tombstone(ctx, stream)
	if err == nil || errors.Is(err, ErrUnavailable) || errors.Is(err, ledger.ErrClosed) || ctx.Err() != nil {
		return err
	}
	err = k.create(ctx, stream, "heed-key-void", uuid.New(), []byte("{}"))
	if err != nil && !errors.Is(err, ledger.ErrWrongRevision) && !errors.Is(err, errGone) {
		return err
	}
	return k.tombstone(ctx, stream)
}

// create writes the first event of stream. With a fixed id for every
// attempt, a retry after a lost acknowledgement is a no-op on the server.
func (k *KeyStore) create(ctx context.Context, stream, typ string, id uuid.UUID, data []byte) error {
	ev := kurrentdb.EventData{EventID: id, EventType: typ, ContentType: kurrentdb.ContentTypeJson, Data: data}
	return k.s.do(ctx, "append to "+stream, func(c *kurrentdb.Client, _ int) error {
		_, err := c.AppendToStream(ctx, stream, kurrentdb.AppendToStreamOptions{StreamState: kurrentdb.NoStream{}}, ev)
		if gone(err) {
			return errGone
		}
		return err
	})
}

// Get implements pii.KeyStore.
func (k *KeyStore) Get(ctx context.Context, subject string) ([]byte, error) {
	n, _, err := k.erasures(ctx, subject)
	if err != nil {
		return nil, err
	}
	return k.keyAt(ctx, subject, n)
}

// PutIfAbsent implements pii.KeyStore.
func (k *KeyStore) PutIfAbsent(ctx context.Context, subject string, wrapped []byte) ([]byte, error) {
	data, err := json.Marshal(wrappedKey{Wrapped: wrapped})
	if err != nil {
		return nil, err
	}
	// One id for every attempt: a retry after a lost acknowledgement is a
	// no-op on the server rather than a conflict with itself.
	id := uuid.New()
	for range attempts {
		n, _, err := k.erasures(ctx, subject)
		if err != nil {
			return nil, err
		}
		err = k.create(ctx, k.keyStream(subject, n), "heed-key", id, data)
		switch {
		case err == nil:
			return wrapped, nil
		case errors.Is(err, ledger.ErrWrongRevision):
			// Another instance created the key first: use theirs.
			w, err := k.keyAt(ctx, subject, n)
			if err != nil || w != nil {
				return w, err
			}
			// Theirs is already erased: start over on the next stream.
		case errors.Is(err, errGone):
			// Tombstoned: the subject was erased meanwhile.
		default:
			return nil, err
		}
	}
	return nil, errRaced
}

// Delete implements pii.KeyStore. The erasure is recorded before the key
// stream is tombstoned: once recorded, no instance's Get reaches the old
// key, and a retry after a crash in between finds the record and finishes
// the tombstone.
func (k *KeyStore) Delete(ctx context.Context, subject string) (time.Time, error) {
	for range attempts {
		n, last, err := k.erasures(ctx, subject)
		if err != nil {
			return time.Time{}, err
		}
		w, err := k.keyAt(ctx, subject, n)
		if err != nil {
			return time.Time{}, err
		}
		if w == nil && n > 0 {
			// No key since the last erasure: the same erasure again.
			if err := k.destroy(ctx, k.keyStream(subject, n-1)); err != nil {
				return time.Time{}, err
			}
			return last.At, nil
		}
		at := time.Now().UTC()
		data, err := json.Marshal(erasure{At: at})
		if err != nil {
			return time.Time{}, err
		}
		err = k.s.appendRecord(ctx, k.erasureStream(subject), "heed-key-erased", uuid.New(), n, data)
		if errors.Is(err, ledger.ErrWrongRevision) {
			continue // another instance erased meanwhile: its erasure is the one
		}
		if err != nil {
			return time.Time{}, err
		}
		if err := k.destroy(ctx, k.keyStream(subject, n)); err != nil {
			return time.Time{}, err
		}
		return at, nil
	}
	return time.Time{}, errRaced
}

// Erased implements pii.KeyStore.
func (k *KeyStore) Erased(ctx context.Context, subject string) (time.Time, bool, error) {
	n, last, err := k.erasures(ctx, subject)
	if err != nil || n == 0 {
		return time.Time{}, false, err
	}
	return last.At, true, nil
}

// Package mem is an in-memory ledger.Store for tests and tools. It keeps the
// full contract, including the Merkle tree hashes, but nothing survives the
// process.
package mem

import (
	"context"
	"fmt"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/heed/heed/ledger"
)

// Store is an in-memory ledger.Store. It is also a tlog.HashReader over
// the tree of its global log.
type Store struct {
	mu      sync.RWMutex
	events  []ledger.Event      // index = position-1
	streams map[string][]uint64 // stream -> positions
	ids     map[string]uint64   // id -> position
	hashes  []tlog.Hash         // stored hashes, tlog layout
	changed chan struct{}       // closed and replaced on every append
	closed  bool
	now     func() time.Time
}

// New returns an empty store.
func New() *Store {
	return &Store{
		streams: map[string][]uint64{},
		ids:     map[string]uint64{},
		changed: make(chan struct{}),
		now:     time.Now,
	}
}

// Append implements ledger.Store.
func (s *Store) Append(ctx context.Context, stream string, expected ledger.Expected, events []ledger.Event) ([]ledger.Event, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if stream == "" || len(events) == 0 {
		return nil, fmt.Errorf("%w: append needs a stream and at least one event", ledger.ErrInvalid)
	}
	for i := range events {
		if err := ledger.Validate(&events[i]); err != nil {
			return nil, err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ledger.ErrClosed
	}
	if out, done, err := s.retried(stream, events); done || err != nil {
		return out, err
	}
	if err := expected.Check(stream, uint64(len(s.streams[stream]))); err != nil {
		return nil, err
	}
	now := s.now().UTC()
	out := make([]ledger.Event, len(events))
	seen := map[string]bool{}
	for i, e := range events {
		if e.ID == "" {
			e.ID = ledger.NewID()
		}
		if seen[e.ID] {
			return nil, fmt.Errorf("%w: id %s appears twice in one append", ledger.ErrIDConflict, e.ID)
		}
		seen[e.ID] = true
		out[i] = e
	}
	for i := range out {
		e := &out[i]
		e.Stream = stream
		e.Position = uint64(len(s.events)) + 1
		e.Revision = uint64(len(s.streams[stream])) + 1
		e.RecordedAt = now
		e.OccurredAt = e.OccurredAt.UTC()
		leaf, err := e.Leaf()
		if err != nil {
			return nil, err
		}
		// Re-read from the leaf so readers see exactly what the tree covers.
		stored, err := ledger.ParseLeaf(leaf)
		if err != nil {
			return nil, err
		}
		hs, err := tlog.StoredHashes(int64(e.Position-1), leaf, lockedHashes{s})
		if err != nil {
			return nil, err
		}
		s.hashes = append(s.hashes, hs...)
		s.events = append(s.events, stored)
		s.streams[stream] = append(s.streams[stream], e.Position)
		s.ids[e.ID] = e.Position
		*e = stored
	}
	close(s.changed)
	s.changed = make(chan struct{})
	return out, nil
}

// retried reports whether every event's id is already stored in stream with
// the same content (done), or fails if some id is reused differently.
func (s *Store) retried(stream string, events []ledger.Event) ([]ledger.Event, bool, error) {
	var out []ledger.Event
	for i := range events {
		if events[i].ID == "" {
			continue
		}
		pos, ok := s.ids[events[i].ID]
		if !ok {
			continue
		}
		old := s.events[pos-1]
		if old.Stream != stream || !ledger.SameContent(&old, &events[i]) {
			return nil, false, fmt.Errorf("%w: id %s", ledger.ErrIDConflict, events[i].ID)
		}
		old.Replayed = true
		out = append(out, old)
	}
	if len(out) == 0 {
		return nil, false, nil
	}
	if len(out) != len(events) {
		return nil, false, fmt.Errorf("%w: append mixes stored and new ids", ledger.ErrIDConflict)
	}
	return out, true, nil
}

// Lookup returns the stored event with the given id and whether there is
// one (see bolt.Store.Lookup).
func (s *Store) Lookup(ctx context.Context, id string) (ledger.Event, bool, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ledger.Event{}, false, ledger.ErrClosed
	}
	pos, ok := s.ids[id]
	if !ok {
		return ledger.Event{}, false, nil
	}
	return s.events[pos-1], true, nil
}

// ReadStream implements ledger.Store.
func (s *Store) ReadStream(ctx context.Context, stream string, from uint64, limit int) ([]ledger.Event, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, ledger.ErrClosed
	}
	ps := s.streams[stream]
	if len(ps) == 0 {
		return nil, fmt.Errorf("%w: stream %s", ledger.ErrNotFound, stream)
	}
	if from < 1 {
		from = 1
	}
	var out []ledger.Event
	for r := from; r <= uint64(len(ps)) && (limit <= 0 || len(out) < limit); r++ {
		out = append(out, s.events[ps[r-1]-1])
	}
	return out, nil
}

// StreamRevision implements ledger.Store.
func (s *Store) StreamRevision(ctx context.Context, stream string) (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return 0, ledger.ErrClosed
	}
	return uint64(len(s.streams[stream])), nil
}

// ReadAll implements ledger.Store.
func (s *Store) ReadAll(ctx context.Context, from uint64, limit int) ([]ledger.Event, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, ledger.ErrClosed
	}
	if from < 1 {
		from = 1
	}
	if from > uint64(len(s.events)) {
		return nil, nil
	}
	end := uint64(len(s.events))
	if limit > 0 && from-1+uint64(limit) < end {
		end = from - 1 + uint64(limit)
	}
	return append([]ledger.Event(nil), s.events[from-1:end]...), nil
}

// Follow implements ledger.Store.
func (s *Store) Follow(ctx context.Context, from uint64, fn func(ledger.Event) error) error {
	if from < 1 {
		from = 1
	}
	for {
		s.mu.RLock()
		closed, changed := s.closed, s.changed
		var batch []ledger.Event
		if from <= uint64(len(s.events)) {
			batch = append(batch, s.events[from-1:]...)
		}
		s.mu.RUnlock()
		if closed {
			return ledger.ErrClosed
		}
		for _, e := range batch {
			if err := fn(e); err != nil {
				return err
			}
			from = e.Position + 1
		}
		if len(batch) > 0 {
			continue
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		}
	}
}

// Head implements ledger.Store.
func (s *Store) Head(ctx context.Context) (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return 0, ledger.ErrClosed
	}
	return uint64(len(s.events)), nil
}

// ReadHashes implements tlog.HashReader over the global log's tree.
func (s *Store) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return lockedHashes{s}.ReadHashes(indexes)
}

// lockedHashes reads hashes while the caller already holds s.mu.
type lockedHashes struct{ s *Store }

func (l lockedHashes) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if x < 0 || x >= int64(len(l.s.hashes)) {
			return nil, fmt.Errorf("%w: hash index %d", ledger.ErrNotFound, x)
		}
		out[i] = l.s.hashes[x]
	}
	return out, nil
}

// Close implements ledger.Store.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		close(s.changed)
	}
	return nil
}

package kurrent

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/kurrent-io/KurrentDB-Client-Go/kurrentdb"
	bolt "go.etcd.io/bbolt"
)

// The position index can be kept in a local bbolt file (Options.IndexPath),
// so that a start reads from the server only the part of $all written since
// the instance last ran, instead of all of it. The file holds, for every
// heed position, the event's $all position and id, and the $all position
// the indexer had passed when it was written. It lags the memory index by
// up to a second; a start catches up from wherever the file stands.

var (
	bucketPositions = []byte("positions") // heed position (8 B, big endian) -> commit ‖ prepare ‖ id
	bucketIndexMeta = []byte("meta")
	keySeen         = []byte("seen")   // commit ‖ prepare
	keyPrefix       = []byte("prefix") // the stream prefix the index is for
)

const entryLen = 8 + 8 + 16

// indexFile is the persisted position index.
type indexFile struct {
	db   *bolt.DB
	mu   sync.Mutex // serialises flushes
	seen kurrentdb.Position
}

// entry is an indexed event not yet written to the file.
type entry struct {
	pos kurrentdb.Position
	id  uuid.UUID
}

// flushEvery bounds the unwritten part of the index during the first
// catch-up, where it would otherwise grow with the whole of $all.
const flushEvery = 1 << 16

// loadIndex opens the index file and loads it into memory if it belongs to
// this prefix and its last event is still where the server has it;
// otherwise it empties the file and the index is rebuilt from $all.
func (s *Store) loadIndex(ctx context.Context, path string) error {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return fmt.Errorf("kurrent: index file: %w", err)
	}
	s.idx = &indexFile{db: db}
	last, ok, err := s.readIndex()
	if err == nil && ok {
		ok, err = s.tailHolds(ctx, last)
	}
	if err != nil {
		return err
	}
	if ok {
		s.loaded = int64(len(s.pos))
		return nil
	}
	s.opts.logf("kurrent: the persisted position index does not match the cluster; rebuilding it from $all")
	s.imu.Lock()
	s.pos, s.ids, s.seen, s.started = nil, map[uuid.UUID]uint64{}, kurrentdb.Position{}, false
	s.imu.Unlock()
	s.idx.seen = kurrentdb.Position{}
	return db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketPositions, bucketIndexMeta} {
			if tx.Bucket(b) != nil {
				if err := tx.DeleteBucket(b); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// readIndex loads the file into the memory index. ok is false if the file
// is empty, for another prefix, or not gap-free; last is the id of the
// last indexed event.
func (s *Store) readIndex() (last uuid.UUID, ok bool, err error) {
	s.imu.Lock()
	defer s.imu.Unlock()
	err = s.idx.db.View(func(tx *bolt.Tx) error {
		meta, positions := tx.Bucket(bucketIndexMeta), tx.Bucket(bucketPositions)
		if meta == nil || positions == nil || !bytes.Equal(meta.Get(keyPrefix), []byte(s.opts.Prefix)) {
			return nil
		}
		seen := meta.Get(keySeen)
		if len(seen) != 16 {
			return nil
		}
		c := positions.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if len(k) != 8 || binary.BigEndian.Uint64(k) != uint64(len(s.pos))+1 || len(v) != entryLen {
				return nil
			}
			p := kurrentdb.Position{Commit: binary.BigEndian.Uint64(v), Prepare: binary.BigEndian.Uint64(v[8:])}
			copy(last[:], v[16:])
			s.pos = append(s.pos, p)
			s.ids[last] = uint64(len(s.pos))
		}
		s.seen = kurrentdb.Position{Commit: binary.BigEndian.Uint64(seen), Prepare: binary.BigEndian.Uint64(seen[8:])}
		s.started = len(s.pos) > 0
		s.idx.seen = s.seen
		ok = s.started
		return nil
	})
	return last, ok, err
}

// tailHolds reports whether the server has the last indexed event, with
// the same id, at the $all position the file says. A file from another
// cluster, or from one whose heed streams were deleted, fails this.
func (s *Store) tailHolds(ctx context.Context, id uuid.UUID) (bool, error) {
	p := s.pos[len(s.pos)-1]
	var ok bool
	err := s.do(ctx, "read $all", func(c *kurrentdb.Client, _ int) error {
		ok = false
		rs, err := c.ReadAll(ctx, kurrentdb.ReadAllOptions{From: p}, 1)
		if err != nil {
			return err
		}
		defer rs.Close()
		ev, err := rs.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		r := ev.Event
		ok = r != nil && r.Position == p && r.EventID == id && strings.HasPrefix(r.StreamID, s.opts.Prefix)
		return nil
	})
	return ok, err
}

// flushIndex writes what the memory index gained since the last flush.
func (s *Store) flushIndex() error {
	if s.idx == nil {
		return nil
	}
	s.idx.mu.Lock()
	defer s.idx.mu.Unlock()
	s.imu.Lock()
	batch, seen, first := s.pending, s.seen, uint64(len(s.pos)-len(s.pending))+1
	s.pending = nil
	s.imu.Unlock()
	if len(batch) == 0 && seen == s.idx.seen {
		return nil
	}
	err := s.idx.db.Update(func(tx *bolt.Tx) error {
		positions, err := tx.CreateBucketIfNotExists(bucketPositions)
		if err != nil {
			return err
		}
		meta, err := tx.CreateBucketIfNotExists(bucketIndexMeta)
		if err != nil {
			return err
		}
		positions.FillPercent = 1 // appended in key order
		for i, e := range batch {
			v := make([]byte, 0, entryLen)
			v = binary.BigEndian.AppendUint64(v, e.pos.Commit)
			v = binary.BigEndian.AppendUint64(v, e.pos.Prepare)
			v = append(v, e.id[:]...)
			if err := positions.Put(binary.BigEndian.AppendUint64(nil, first+uint64(i)), v); err != nil {
				return err
			}
		}
		if err := meta.Put(keyPrefix, []byte(s.opts.Prefix)); err != nil {
			return err
		}
		return meta.Put(keySeen, binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, seen.Commit), seen.Prepare))
	})
	if err != nil {
		// Keep the batch for the next flush, ahead of what came since.
		s.imu.Lock()
		s.pending = append(batch, s.pending...)
		s.imu.Unlock()
		return fmt.Errorf("kurrent: index file: %w", err)
	}
	s.idx.seen = seen
	return nil
}

// flushLoop writes the index to its file every interval until ctx ends.
func (s *Store) flushLoop(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.flushIndex(); err != nil {
				s.opts.logf("kurrent: writing the position index", "err", err)
			}
		}
	}
}

// closeIndex writes the rest of the index and closes its file.
func (s *Store) closeIndex() error {
	if s.idx == nil {
		return nil
	}
	return errors.Join(s.flushIndex(), s.idx.db.Close())
}

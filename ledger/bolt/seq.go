package bolt

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/bbolt"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/heed/heed/ledger"
)

// request is one Append waiting for the sequencer.
type request struct {
	ctx      context.Context
	stream   string
	expected ledger.Expected
	props    []proposal
	out      []ledger.Event
	err      error
	done     chan struct{}
}

// Append implements ledger.Store. Validation and leaf encoding happen here,
// in the caller's goroutine, so the sequencer only checks and writes.
func (s *Store) Append(ctx context.Context, stream string, expected ledger.Expected, events []ledger.Event) ([]ledger.Event, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if stream == "" || len(events) == 0 {
		return nil, fmt.Errorf("%w: append needs a stream and at least one event", ledger.ErrInvalid)
	}
	if len(stream) > 1024 {
		return nil, fmt.Errorf("%w: stream name longer than 1024 bytes", ledger.ErrInvalid)
	}
	if s.readOnly {
		return nil, ErrReadOnly
	}
	if s.failed.Load() {
		return nil, ErrFailed
	}
	s.inflight.Add(1)
	defer s.inflight.Add(-1)
	r := &request{ctx: ctx, stream: stream, expected: expected, props: make([]proposal, len(events)), done: make(chan struct{})}
	for i := range events {
		p, err := propose(stream, events[i])
		if err != nil {
			return nil, err
		}
		r.props[i] = p
	}
	if err := uniqueIDs(r.props); err != nil {
		return nil, err
	}
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return nil, ledger.ErrClosed
	}
	select {
	case s.reqs <- r:
	case <-ctx.Done():
		s.mu.RUnlock()
		return nil, ctx.Err()
	}
	s.mu.RUnlock()
	select {
	case <-r.done:
		return r.out, r.err
	case <-ctx.Done():
		// The append may still commit; a retry with the same ids is safe.
		return nil, ctx.Err()
	}
}

// uniqueIDs refuses an append that carries one id twice.
func uniqueIDs(props []proposal) error {
	dup := func(id string) error {
		return fmt.Errorf("%w: id %s appears twice in one append", ledger.ErrIDConflict, id)
	}
	if len(props) <= 16 {
		for i := range props {
			for j := range i {
				if props[i].ev.ID == props[j].ev.ID {
					return dup(props[i].ev.ID)
				}
			}
		}
		return nil
	}
	seen := make(map[string]bool, len(props))
	for i := range props {
		if seen[props[i].ev.ID] {
			return dup(props[i].ev.ID)
		}
		seen[props[i].ev.ID] = true
	}
	return nil
}

// The longest the sequencer waits for a batch to fill is half the last
// commit's duration (a straggler left out waits a whole commit), within
// these bounds.
const (
	minLinger = 100 * time.Microsecond
	maxLinger = 2 * time.Millisecond
	pollEvery = 25 * time.Microsecond
)

// sequence is the one goroutine that writes: it gathers whatever requests
// are queued into one transaction, commits (bbolt fsyncs on commit), and
// only then releases the callers.
//
// Callers released by a commit come back a few microseconds later; a
// sequencer that started the next transaction with whoever had already
// arrived would alternate small and large batches. So while fewer requests
// are queued than there are callers inside Append, it waits a little for
// them.
func (s *Store) sequence() {
	defer close(s.done)
	batch := make([]*request, 0, s.maxBatch)
	linger := minLinger
	for r := range s.reqs {
		batch = append(batch[:0], r)
		if s.drain(&batch) {
			s.fill(&batch, linger)
		}
		start := time.Now()
		s.commit(batch)
		linger = min(max(time.Since(start)/2, minLinger), maxLinger)
		for _, r := range batch {
			close(r.done)
		}
		clear(batch)
	}
}

// fill waits up to linger for the callers inside Append to queue their
// requests. The count is polled: callers released by the last commit are
// still counted until they return, and either come back with a new request
// (a closed loop) or leave, which the next poll sees.
func (s *Store) fill(batch *[]*request, linger time.Duration) {
	deadline := time.Now().Add(linger)
	for len(*batch) < s.maxBatch && len(*batch) < int(s.inflight.Load()) {
		wait := min(time.Until(deadline), pollEvery)
		if wait <= 0 {
			return
		}
		t := time.NewTimer(wait)
		select {
		case r, ok := <-s.reqs:
			t.Stop()
			if !ok {
				return
			}
			*batch = append(*batch, r)
			if !s.drain(batch) {
				return
			}
		case <-t.C:
		}
	}
}

// drain adds queued requests to batch without waiting; it reports false
// once the queue is closed.
func (s *Store) drain(batch *[]*request) bool {
	for len(*batch) < s.maxBatch {
		select {
		case r, ok := <-s.reqs:
			if !ok {
				return false
			}
			*batch = append(*batch, r)
		default:
			return true
		}
	}
	return true
}

// batchState is what one transaction has written so far but not committed.
type batchState struct {
	tx      *bbolt.Tx
	events  *bbolt.Bucket
	tree    *bbolt.Bucket
	streams *bbolt.Bucket
	ids     *bbolt.Bucket
	revs    map[string]uint64        // stream revisions changed in this batch
	stored  map[string]*ledger.Event // events written in this batch, by id
	base    int64                    // first stored hash index of the batch
	hs      []tlog.Hash              // hashes written in this batch, from base
}

// ReadHashes reads the tree as this transaction sees it.
func (b *batchState) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if x >= b.base {
			if x-b.base >= int64(len(b.hs)) {
				return nil, fmt.Errorf("bolt: hash %d not yet written", x)
			}
			out[i] = b.hs[x-b.base]
			continue
		}
		if err := readHashes(b.tree, indexes[i:i+1], out[i:i+1]); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
	}
	return out, nil
}

func (b *batchState) revision(stream string) uint64 {
	if r, ok := b.revs[stream]; ok {
		return r
	}
	return revision(b.streams, stream)
}

// lookup returns the stored event with id, from this batch or the file.
func (b *batchState) lookup(id string) (*ledger.Event, error) {
	if e, ok := b.stored[id]; ok {
		return e, nil
	}
	v := b.ids.Get([]byte(id))
	if v == nil {
		return nil, nil
	}
	e, err := decode(b.events.Get(v))
	if err != nil {
		return nil, err
	}
	return &e, nil
}

// retried reports whether every event of r is already stored in its stream
// with the same content, and fails if any id is stored differently or only
// some are stored.
func (b *batchState) retried(r *request) ([]ledger.Event, bool, error) {
	var out []ledger.Event
	for i := range r.props {
		p := &r.props[i].ev
		old, err := b.lookup(p.ID)
		if err != nil {
			return nil, false, err
		}
		if old == nil {
			continue
		}
		if old.Stream != r.stream || !ledger.SameContent(old, p) {
			return nil, false, fmt.Errorf("%w: id %s", ledger.ErrIDConflict, p.ID)
		}
		out = append(out, *old)
	}
	if len(out) == 0 {
		return nil, false, nil
	}
	if len(out) != len(r.props) {
		return nil, false, fmt.Errorf("%w: append mixes stored and new ids", ledger.ErrIDConflict)
	}
	return out, true, nil
}

// commit writes one batch in one transaction. A request that fails its own
// checks fails alone; a failed commit fails every request of the batch.
func (s *Store) commit(batch []*request) {
	failAll := func(err error) {
		for _, r := range batch {
			if r.err == nil {
				r.out, r.err = nil, err
			}
		}
	}
	if s.failed.Load() {
		failAll(ErrFailed)
		return
	}
	t0 := time.Now()
	tx, err := s.db.Begin(true)
	if err != nil {
		failAll(fmt.Errorf("bolt: begin: %w", err))
		return
	}
	head := s.head.Load()
	b := &batchState{
		tx:      tx,
		events:  tx.Bucket(bucketEvents),
		tree:    tx.Bucket(bucketTree),
		streams: tx.Bucket(bucketStreams),
		ids:     tx.Bucket(bucketIDs),
		revs:    map[string]uint64{},
		stored:  map[string]*ledger.Event{},
		base:    tlog.StoredHashCount(int64(head)),
	}
	// Keys only grow at the right edge of these buckets, so full pages
	// are never split again.
	b.events.FillPercent = 1.0
	b.tree.FillPercent = 1.0
	recorded := time.Now().UTC()
	pos := head
	written := false
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.err = err
			continue
		}
		out, done, err := b.retried(r)
		if err != nil || done {
			r.out, r.err = out, err
			continue
		}
		rev := b.revision(r.stream)
		if err := r.expected.Check(r.stream, rev); err != nil {
			r.err = err
			continue
		}
		r.out = make([]ledger.Event, len(r.props))
		for i := range r.props {
			rev++
			pos++
			if err := b.write(&r.props[i], rev, pos, recorded, &r.out[i]); err != nil {
				tx.Rollback()
				failAll(err)
				return
			}
		}
		b.revs[r.stream] = rev
		written = true
	}
	if !written {
		tx.Rollback()
		return
	}
	if hook := s.beforeCommit.Load(); hook != nil {
		if err := (*hook)(int(pos - head)); err != nil {
			tx.Rollback()
			failAll(fmt.Errorf("bolt: commit: %w", err))
			return
		}
	}
	t1 := time.Now()
	if err := tx.Commit(); err != nil {
		s.checkAfterFailure(head)
		failAll(fmt.Errorf("bolt: commit: %w", err))
		return
	}
	s.stats.prepare.Add(int64(t1.Sub(t0)))
	s.stats.commit.Add(int64(time.Since(t1)))
	s.stats.commits.Add(1)
	s.stats.events.Add(int64(pos - head))
	s.head.Store(pos)
	s.notifyMu.Lock()
	close(s.notify)
	s.notify = make(chan struct{})
	s.notifyMu.Unlock()
}

// write stores one event with its indexes and tree hashes.
func (b *batchState) write(p *proposal, rev, pos uint64, recorded time.Time, out *ledger.Event) error {
	// bbolt keeps references to keys and values until commit, so they
	// need memory of their own: one allocation per event holds them all.
	n := len(p.tmpl) + 64
	buf := make([]byte, 0, 8*4+2+len(p.ev.Stream)+8+len(p.ev.ID)+n)
	buf = binary.BigEndian.AppendUint64(buf, pos)
	buf = binary.BigEndian.AppendUint64(buf, pos-1)
	posKey, treeKey := buf[0:8:8], buf[8:16:16]
	buf = binary.BigEndian.AppendUint16(buf, uint16(len(p.ev.Stream)))
	buf = append(buf, p.ev.Stream...)
	buf = binary.BigEndian.AppendUint64(buf, rev)
	sk := buf[16:len(buf):len(buf)]
	id := len(buf)
	buf = append(buf, p.ev.ID...)
	idKey := buf[id:len(buf):len(buf)]
	start := len(buf)
	buf = p.leaf(buf, rev, pos, recorded)
	leaf := buf[start:len(buf):len(buf)]
	if err := b.events.Put(posKey, leaf); err != nil {
		return fmt.Errorf("bolt: write event: %w", err)
	}
	if err := b.streams.Put(sk, posKey); err != nil {
		return fmt.Errorf("bolt: write stream index: %w", err)
	}
	if err := b.ids.Put(idKey, posKey); err != nil {
		return fmt.Errorf("bolt: write id index: %w", err)
	}
	hs, err := tlog.StoredHashes(int64(pos-1), leaf, b)
	if err != nil {
		return fmt.Errorf("bolt: tree: %w", err)
	}
	v := make([]byte, 0, len(hs)*tlog.HashSize)
	for i := range hs {
		v = append(v, hs[i][:]...)
	}
	if err := b.tree.Put(treeKey, v); err != nil {
		return fmt.Errorf("bolt: write tree: %w", err)
	}
	b.hs = append(b.hs, hs...)
	*out = p.ev
	out.Revision, out.Position, out.RecordedAt = rev, pos, recorded
	b.stored[out.ID] = out
	return nil
}

// checkAfterFailure decides whether the store is still usable after a
// failed commit. bbolt rolls back a commit that fails before its meta page
// is written; if the failure came later (the fsync itself), the new meta may
// already be visible, and the only honest answer is to stop.
func (s *Store) checkAfterFailure(head uint64) {
	err := s.db.View(func(tx *bbolt.Tx) error {
		if k, _ := tx.Bucket(bucketEvents).Cursor().Last(); k != nil && binary.BigEndian.Uint64(k) != head {
			return errors.New("failed batch is visible")
		}
		return nil
	})
	if err != nil {
		s.failed.Store(true)
	}
}

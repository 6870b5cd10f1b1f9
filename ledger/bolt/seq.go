package bolt

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"runtime"
	"strings"
	"sync"
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
	queued   time.Time // when it entered the queue, for the observer
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
	if strings.HasPrefix(stream, idMark) {
		return nil, fmt.Errorf("%w: stream name starts with a NUL byte", ledger.ErrInvalid)
	}
	if s.readOnly {
		return nil, ErrReadOnly
	}
	if s.failed.Load() {
		return nil, ErrFailed
	}
	s.inflight.Add(1)
	defer s.leave()
	r := &request{ctx: ctx, stream: stream, expected: expected, props: make([]proposal, len(events)), done: make(chan struct{})}
	if s.observer.Load() != nil {
		r.queued = time.Now()
	}
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
	case s.reqs <- r: // the queue is rarely full; this skips a select
	default:
		select {
		case s.reqs <- r:
		case <-ctx.Done():
			s.mu.RUnlock()
			return nil, ctx.Err()
		}
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

// leave counts a caller out of Append and, if the sequencer is waiting for
// the callers inside to queue, wakes it to count again.
func (s *Store) leave() {
	s.inflight.Add(-1)
	if s.filling.Load() {
		select {
		case s.left <- struct{}{}:
		default:
		}
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

// pruneStep is how many folded entries the sequencer forgets per batch,
// few enough to keep a batch short; a generation of 65,536 is gone within
// 32 batches, long before the next fold starts.
const pruneStep = 2048

// maxFill bounds how long the sequencer waits for the callers inside
// Append to queue before it sends a batch. The wait ends as soon as they
// have all queued or left, so it is reached only when the machine is too
// busy to run them promptly; then a fuller batch saves commits (each with
// two fsyncs and a rewrite of the buckets' right edges).
const maxFill = 2 * time.Millisecond

// sequence is the goroutine that orders appends. It gathers whatever
// requests are queued into a batch and prepares it: checks expected
// revisions and ids, assigns positions, encodes leaves and computes tree
// hashes, all against the committed file plus the batch still being
// committed. The committer goroutine then writes the prepared batch in one
// transaction, commits (bbolt fsyncs on commit) and only then releases the
// callers. Preparing one batch while the previous one commits keeps the
// sequencer's work off the commit's critical path; if the previous commit
// fails, the batch is prepared again against the file.
//
// Callers released by a commit come back a few microseconds later; a
// sequencer that started the next batch with whoever had already arrived
// would alternate small and large batches. So once the batch in flight has
// committed, while fewer requests are queued than there are callers inside
// Append, it waits a little for them.
func (s *Store) sequence() {
	defer close(s.done)
	plans := make(chan *plan)
	committed := make(chan struct{})
	go func() {
		defer close(committed)
		for p := range plans {
			s.commit(p)
		}
	}()
	var inflight *plan
	for r := range s.reqs {
		p := s.newPlan(inflight)
		open := s.take(p, r)
		// Prepare whatever arrives while the batch in flight commits.
		for inflight != nil {
			reqs := s.reqs
			if !open || len(p.reqs) >= s.maxBatch {
				reqs = nil
			}
			select {
			case r, ok := <-reqs:
				open = ok && s.take(p, r)
			case <-inflight.done:
				if inflight.failed {
					p = s.rebase(p)
				}
				inflight = nil
			}
		}
		// The committer is free: it starts writing the batch now (see
		// stream), while the rest of the batch arrives.
		p.publish()
		plans <- p
		if open {
			// No commit runs while the sequencer fills, so one read
			// transaction serves every request that arrives, rather than
			// one (and its four buckets) per wake-up. It must be closed
			// before the batch is sealed, as the commit that follows may
			// need to remap the file and so wait for every read
			// transaction to end.
			p.hold = true
			s.fill(p, maxFill)
			p.hold = false
			p.end()
		}
		p.seal()
		s.lastBatch = int(p.pos - p.head)
		inflight = p
	}
	close(plans)
	<-committed
}

// rebase prepares p's requests again from the file, after the batch it was
// prepared on top of failed to commit.
func (s *Store) rebase(p *plan) *plan {
	q := s.newPlan(nil)
	for _, r := range p.reqs {
		r.out, r.err = nil, nil
	}
	s.add(q, p.reqs)
	return q
}

// take prepares r and whatever else is queued into p; it reports false
// once the queue is closed.
func (s *Store) take(p *plan, r *request) bool {
	batch := []*request{r}
	open := s.drain(&batch, s.maxBatch-len(p.reqs))
	s.add(p, batch)
	return open
}

// fill waits up to limit for the callers inside Append to queue their
// requests, and prepares them into p as they come, so that the wait for
// the last ones overlaps the work on the first (the committer idles until
// p is sent). Callers released by the last commit are still counted until
// they return, and either come back with a new request (a closed loop) or
// leave, which wakes the wait to count again.
func (s *Store) fill(p *plan, limit time.Duration) {
	s.filling.Store(true)
	defer s.filling.Store(false)
	var t *time.Timer
	for len(p.reqs) < s.maxBatch && len(p.reqs) < int(s.inflight.Load()) {
		if t == nil {
			t = time.NewTimer(limit)
			defer t.Stop()
		}
		if len(s.reqs) == 0 {
			// The callers still to come are mostly runnable, not yet
			// run. Yielding lets several of them queue, so that the
			// sequencer then parks and wakes once for them all instead
			// of once each.
			runtime.Gosched()
		}
		select {
		case r, ok := <-s.reqs:
			if !ok || !s.take(p, r) {
				return
			}
		case <-s.left:
		case <-t.C:
			return
		}
	}
}

// drain adds queued requests to batch, up to max in all, without waiting;
// it reports false once the queue is closed.
func (s *Store) drain(batch *[]*request, max int) bool {
	for len(*batch) < max {
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

// plan is one prepared batch: the requests, their results, and the writes
// that commit them.
type plan struct {
	reqs   []*request
	prev   *plan                    // batch in flight this one builds on
	head   uint64                   // last position before this batch
	pos    uint64                   // last position after it
	revs   map[string]uint64        // stream revisions this batch changes
	stored map[string]*ledger.Event // events this batch writes, by id
	base   int64                    // first stored hash index of the batch
	hs     []tlog.Hash              // hashes this batch writes, from base
	puts   []put
	arena  []byte // the rest of the block puts' bytes are cut from
	err    error  // a failure that fails the whole batch

	// Shared with the committer, which writes the batch's events while
	// the sequencer still adds to it (see stream).
	mu     sync.Mutex
	ready  []put         // puts published so far: a prefix of puts
	more   chan struct{} // ready grew
	sealed chan struct{} // closed once the batch is complete

	// Set by the committer.
	failed    bool
	foldNext  int    // the fold's entries committed once this batch is
	foldWrote int    // how many of them this batch writes
	foldTo    uint64 // the folded position this batch completes, or 0
	done      chan struct{}

	runs runsChange // what the commit does to the runs (committer)

	rec   *recent
	topID *string // Store.topID
	edge  string  // Store.topID when the batch began
	top   string  // the greatest id of the batch, if above edge

	// The read transaction the batch is prepared in, and whether add
	// leaves it open for the next requests (see sequence).
	hold   bool
	tx     *bbolt.Tx
	events *bbolt.Bucket
	tree   *bbolt.Bucket
	idx    *index
	ids    *bbolt.Bucket
}

// put is one event's writes.
type put struct {
	pos, leaf, id []byte
	stream        string
	rev, at       uint64
	// ordered ids sort above every id stored before the batch, as
	// time-ordered ids (NewID's) do: they go to the right edge of the ids
	// bucket, which costs a page per page of ids; the others join the
	// stream index (see ids.go).
	ordered bool
}

// hash reads one stored hash as the batch sees it: its own hashes, those
// of the batch in flight, then the file's.
func (p *plan) hash(x int64) (tlog.Hash, error) {
	switch {
	case x >= p.base:
		if x-p.base >= int64(len(p.hs)) {
			return tlog.Hash{}, fmt.Errorf("bolt: hash %d not yet written", x)
		}
		return p.hs[x-p.base], nil
	case p.prev != nil && x >= p.prev.base:
		return p.prev.hs[x-p.prev.base], nil
	}
	var h [1]tlog.Hash
	if err := readHashes(p.tree, []int64{x}, h[:]); err != nil {
		return tlog.Hash{}, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return h[0], nil
}

// addLeaf appends to the batch's hashes those that leaf n (counting from
// 0) completes, as tlog.StoredHashes would return them, without its
// allocations: the leaf's record hash, then one interior node for each
// trailing one bit of n, each the parent of the one before and of its
// left sibling.
func (p *plan) addLeaf(n int64, leaf []byte) error {
	h := tlog.RecordHash(leaf)
	p.hs = append(p.hs, h)
	for level := 0; n>>level&1 == 1; level++ {
		left, err := p.hash(tlog.StoredHashIndex(level, n>>level-1))
		if err != nil {
			return err
		}
		h = tlog.NodeHash(left, h)
		p.hs = append(p.hs, h)
	}
	return nil
}

func (p *plan) revision(stream string) uint64 {
	if r, ok := p.revs[stream]; ok {
		return r
	}
	if p.prev != nil {
		if r, ok := p.prev.revs[stream]; ok {
			return r
		}
	}
	// The file may or may not hold the batch in flight yet; either way
	// that batch's streams were answered above. Committed events are in
	// the unfolded tail or, once pruned, in the runs this transaction
	// reads (see Store.rec).
	r, ok, legacy := p.rec.last(stream)
	if ok {
		return r
	}
	return p.idx.revision(stream, math.MaxUint64, legacy)
}

// lookup returns the stored event with id, from this batch, the batch in
// flight or the file.
func (p *plan) lookup(id string) (*ledger.Event, error) {
	if id > *p.topID {
		return nil, nil
	}
	if e, ok := p.stored[id]; ok {
		return e, nil
	}
	if p.prev != nil {
		if e, ok := p.prev.stored[id]; ok {
			return e, nil
		}
	}
	// Batches before the one in flight have committed before this
	// batch's transaction began: every entry found is readable in it.
	pos := p.idx.position(p.rec, p.ids, id, anyHead)
	if pos == 0 {
		return nil, nil
	}
	e, err := decode(p.events.Get(key(pos)))
	if err != nil {
		return nil, err
	}
	return &e, nil
}

// retried reports whether every event of r is already stored in its stream
// with the same content, and fails if any id is stored differently or only
// some are stored.
func (p *plan) retried(r *request) ([]ledger.Event, bool, error) {
	var out []ledger.Event
	for i := range r.props {
		ev := &r.props[i].ev
		old, err := p.lookup(ev.ID)
		if err != nil {
			return nil, false, err
		}
		if old == nil {
			continue
		}
		if old.Stream != r.stream || !ledger.SameContent(old, ev) {
			return nil, false, fmt.Errorf("%w: id %s", ledger.ErrIDConflict, ev.ID)
		}
		e := *old
		e.Replayed = true
		out = append(out, e)
	}
	if len(out) == 0 {
		return nil, false, nil
	}
	if len(out) != len(r.props) {
		return nil, false, fmt.Errorf("%w: append mixes stored and new ids", ledger.ErrIDConflict)
	}
	return out, true, nil
}

// newPlan starts a batch on top of prev, the batch in flight (nil if none).
func (s *Store) newPlan(prev *plan) *plan {
	// Sized like the last batch, rather than grown from empty (rehashed
	// and copied several times) in every batch.
	n := s.lastBatch
	p := &plan{rec: s.rec, topID: &s.topID, prev: prev, revs: make(map[string]uint64, n), stored: make(map[string]*ledger.Event, n),
		puts: make([]put, 0, n), hs: make([]tlog.Hash, 0, 2*n+8), arena: make([]byte, 0, min(arenaChunk, 512*max(n, 1))),
		done: make(chan struct{}), more: make(chan struct{}, 1), sealed: make(chan struct{})}
	p.edge = s.topID
	p.head = s.head.Load()
	if prev != nil {
		p.head = prev.pos
	}
	p.pos = p.head
	p.base = tlog.StoredHashCount(int64(p.head))
	return p
}

// add checks requests and computes their writes into p, in a read
// transaction of its own (one held across a commit could stall it). A
// request that fails its own checks fails alone.
func (s *Store) add(p *plan, batch []*request) {
	if len(batch) == 0 {
		return
	}
	start := time.Now()
	defer func() { s.stats.prepare.Add(int64(time.Since(start))) }()
	defer p.publish()
	p.reqs = append(p.reqs, batch...)
	if p.err != nil {
		return
	}
	if s.failed.Load() {
		p.err = ErrFailed
		return
	}
	if p.tx == nil {
		if err := s.begin(p); err != nil {
			p.err = err
			return
		}
		if !p.hold {
			defer p.end()
		}
	}
	recorded := time.Now().UTC()
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.err = err
			continue
		}
		out, done, err := p.retried(r)
		if err != nil || done {
			r.out, r.err = out, err
			continue
		}
		rev := p.revision(r.stream)
		if err := r.expected.Check(r.stream, rev); err != nil {
			r.err = err
			continue
		}
		r.out = make([]ledger.Event, len(r.props))
		for i := range r.props {
			rev++
			p.pos++
			if err := p.write(&r.props[i], rev, p.pos, recorded, &r.out[i]); err != nil {
				p.err = err
				return
			}
		}
		p.revs[r.stream] = rev
	}
}

// publish shows the committer the puts prepared so far once there are
// publishEvery it has not seen (seal shows the rest). The sequencer only
// appends to puts, so the prefix the committer holds never changes.
func (p *plan) publish() {
	// Only the sequencer sets ready, so it may read it unlocked.
	if len(p.puts)-len(p.ready) < publishEvery {
		return
	}
	p.show()
}

// show publishes the puts prepared so far and wakes the committer.
func (p *plan) show() {
	p.mu.Lock()
	p.ready = p.puts
	p.mu.Unlock()
	select {
	case p.more <- struct{}{}:
	default:
	}
}

// publishEvery is how many new puts wake the committer while a batch
// fills: waking it for each request that arrived would cost CPU on every
// append, and a batch at many appenders holds over a hundred requests.
const publishEvery = 16

// seal tells the committer that p is complete.
func (p *plan) seal() {
	// The next batch reads this one, never its predecessor, so drop the
	// link and let committed batches be collected.
	p.prev = nil
	p.show()
	close(p.sealed)
}

// begin opens the read transaction p is prepared in.
func (s *Store) begin(p *plan) error {
	// Prune before the transaction begins, so it sees the fold.
	if f := s.folded.Load(); f > s.pruned && s.rec.prune(f, pruneStep) {
		s.pruned = f
	}
	tx, err := s.db.Begin(false)
	if err != nil {
		return fmt.Errorf("bolt: begin: %w", err)
	}
	idx, err := s.index(tx)
	if err != nil {
		tx.Rollback()
		return err
	}
	p.tx, p.events, p.tree, p.idx, p.ids = tx, tx.Bucket(bucketEvents), tx.Bucket(bucketTree), idx, tx.Bucket(bucketIDs)
	return nil
}

// end closes p's read transaction, if one is open.
func (p *plan) end() {
	if p.tx != nil {
		p.tx.Rollback()
	}
	p.tx, p.events, p.tree, p.idx, p.ids = nil, nil, nil, nil, nil
}

// arenaChunk is the largest block a batch's keys and values are cut from:
// a few allocations a batch instead of one an event. Blocks start at the
// size the last batch suggests and double, so that a batch of one event
// (a lone appender) does not hold a whole chunk.
const arenaChunk = 64 << 10

// alloc returns an empty slice with room for n bytes from p's arena. The
// arena lives as long as the plan, which outlives the commit.
func (p *plan) alloc(n int) []byte {
	if cap(p.arena)-len(p.arena) < n {
		p.arena = make([]byte, 0, max(n, min(arenaChunk, 2*cap(p.arena))))
	}
	b := p.arena[len(p.arena) : len(p.arena) : len(p.arena)+n]
	p.arena = p.arena[:len(p.arena)+n]
	return b
}

// write prepares one event's writes: the leaf, its stream and id index
// entries and its tree hashes.
func (p *plan) write(pr *proposal, rev, pos uint64, recorded time.Time, out *ledger.Event) error {
	// bbolt keeps references to keys and values until commit, so they
	// need memory of their own, carved from the batch's arena.
	buf := p.alloc(8 + len(pr.ev.ID) + pr.tmpl.Len() + 64)
	buf = binary.BigEndian.AppendUint64(buf, pos)
	w := put{pos: buf[0:8:8], stream: pr.ev.Stream, rev: rev, at: pos, ordered: pr.ev.ID > p.edge}
	id := len(buf)
	buf = append(buf, pr.ev.ID...)
	w.id = buf[id:len(buf):len(buf)]
	start := len(buf)
	buf = pr.leaf(buf, rev, pos, recorded)
	w.leaf = buf[start:len(buf):len(buf)]
	if err := p.addLeaf(int64(pos-1), w.leaf); err != nil {
		return fmt.Errorf("bolt: tree: %w", err)
	}
	p.puts = append(p.puts, w)
	*out = pr.ev
	out.Revision, out.Position, out.RecordedAt = rev, pos, recorded
	p.stored[out.ID] = out
	if out.ID > *p.topID {
		*p.topID = out.ID
	}
	if out.ID > p.edge && out.ID > p.top {
		p.top = out.ID
	}
	return nil
}

// commit writes a batch in one transaction and releases its callers. A
// failed commit fails every request of the batch and leaves nothing of it
// visible.
func (s *Store) commit(p *plan) {
	tx, err := s.stream(p)
	// From here on, the batch's callers wait for this goroutine alone.
	start := time.Now()
	if err == nil {
		err = p.err
	}
	if err == nil && len(p.puts) > 0 {
		err = s.apply(p, tx)
	} else if tx != nil {
		tx.Rollback()
	}
	if err != nil {
		p.failed = true
		s.runsFailed(p)
		s.rec.drop(p.head)
		for _, r := range p.reqs {
			if r.err == nil {
				r.out, r.err = nil, err
			}
		}
	} else if len(p.puts) > 0 {
		s.foldCommitted(p)
		s.runsCommitted(p)
		d := time.Since(start)
		s.stats.commit.Add(int64(d))
		s.stats.commits.Add(1)
		s.stats.events.Add(int64(p.pos - p.head))
		s.head.Store(p.pos)
		s.notifyMu.Lock()
		close(s.notify)
		s.notify = make(chan struct{})
		s.notifyMu.Unlock()
		s.observe(p, start, d)
	}
	close(p.done)
	for _, r := range p.reqs {
		close(r.done)
	}
}

// observe tells the observer, if any, how long p's commit took and how
// long each of its appends waited before the commit began.
func (s *Store) observe(p *plan, start time.Time, commit time.Duration) {
	o := s.observer.Load()
	if o == nil {
		return
	}
	waited := make([]time.Duration, 0, len(p.reqs))
	for _, r := range p.reqs {
		// An append queued before the observer was set has no time.
		if !r.queued.IsZero() && r.err == nil {
			waited = append(waited, start.Sub(r.queued))
		}
	}
	(*o)(commit, waited)
}

// stream begins p's write transaction, writes the batch's share of the
// stream index fold and then each event and its id index entry as the
// sequencer publishes them, until p is sealed. The sequencer hands a batch
// over as soon as the committer is free, so these writes use the other
// core while the batch's last requests arrive instead of adding to the
// commit the callers wait for (at 256 appenders they were a quarter of
// it). It returns the open transaction, or an error and no transaction to
// roll back.
func (s *Store) stream(p *plan) (*bbolt.Tx, error) {
	var tx *bbolt.Tx
	var events, ids *bbolt.Bucket
	var err error
	if s.failed.Load() {
		err = ErrFailed
	} else if tx, err = s.db.Begin(true); err != nil {
		tx, err = nil, fmt.Errorf("bolt: begin: %w", err)
	} else {
		events, ids = tx.Bucket(bucketEvents), tx.Bucket(bucketIDs)
		// Only ids above every stored one are written here (see put).
		ids.FillPercent = 1.0
		// Keys only grow at the right edge, so full pages are never
		// split again.
		events.FillPercent = 1.0
		// Every foldEvery events, the index entries of the events
		// committed so far start joining the bucket, in key order, a
		// slice per commit (see folding); this batch's stay in memory.
		p.foldNext, p.foldWrote, p.foldTo, p.runs = 0, 0, 0, runsChange{}
		if err = s.foldStep(p, tx); err == nil {
			err = s.runsStep(p, tx)
		}
	}
	done := 0
	for sealed := false; !sealed; {
		select {
		case <-p.more:
		case <-p.sealed:
			sealed = true
		}
		p.mu.Lock()
		ready := p.ready
		p.mu.Unlock()
		for _, w := range ready[done:] {
			if err != nil {
				break
			}
			if err = events.Put(w.pos, w.leaf); err != nil {
				err = fmt.Errorf("bolt: write event: %w", err)
			} else if w.ordered {
				if err = ids.Put(w.id, w.pos); err != nil {
					err = fmt.Errorf("bolt: write id index: %w", err)
				}
			}
		}
		// The stream index entries go into recent now, before the
		// commit; readers see only those at or below the head (see
		// recent.tail), and commit drops them if the batch fails.
		if err == nil && len(ready) > done {
			s.rec.mu.Lock()
			for _, w := range ready[done:] {
				s.rec.add(w.stream, w.rev, w.at)
				if !w.ordered {
					s.rec.add(idStream(string(w.id)), 1, w.at)
				}
			}
			s.rec.mu.Unlock()
		}
		done = len(ready)
	}
	if err != nil && tx != nil {
		tx.Rollback()
		tx = nil
	}
	return tx, err
}

// apply writes p's tree hashes into tx, where stream has written the rest,
// and commits it.
func (s *Store) apply(p *plan, tx *bbolt.Tx) error {
	tree := tx.Bucket(bucketTree)
	tree.FillPercent = 1.0
	if p.top != "" {
		if err := tx.Bucket(bucketMeta).Put(keyTopID, []byte(p.top)); err != nil {
			tx.Rollback()
			return fmt.Errorf("bolt: write top id: %w", err)
		}
	}
	// The batch's tree hashes are consecutive stored-hash indexes: one
	// value under the batch's first leaf (see readHashes).
	hashes := make([]byte, 0, len(p.hs)*tlog.HashSize)
	for i := range p.hs {
		hashes = append(hashes, p.hs[i][:]...)
	}
	if err := tree.Put(key(p.head), hashes); err != nil {
		tx.Rollback()
		return fmt.Errorf("bolt: write tree: %w", err)
	}
	if hook := s.beforeCommit.Load(); hook != nil {
		if err := (*hook)(int(p.pos - p.head)); err != nil {
			tx.Rollback()
			return fmt.Errorf("bolt: commit: %w", err)
		}
	}
	s.fileMu.Lock()
	err := tx.Commit()
	s.fileMu.Unlock()
	if err != nil {
		s.checkAfterFailure(p.head)
		return fmt.Errorf("bolt: commit: %w", err)
	}
	select {
	case s.committed <- struct{}{}:
	default:
	}
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

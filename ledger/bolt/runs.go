package bolt

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"math/bits"
	"sync"

	"go.etcd.io/bbolt"
)

// The stream index on disk is a list of sorted runs, LSM-style. Each fold
// writes its generation of entries (see recent) as a new run: a bucket of
// its own, nested in the runs bucket, filled in key order and packed full,
// so that a fold writes about one page per page of entries, however many
// streams the store already holds. Inserting the same entries into one big
// bucket wrote, past a few million streams, one random page per entry.
//
// Runs are merged in the background so that a lookup reads few of them:
// once runFanout runs of one level exist, the committer merges them into
// one run of the next level, a slice per commit (runRate entries per event
// committed), and the merged run replaces them in the list of live runs
// (keyRuns in the meta bucket) in the commit that completes it. Every
// entry is so rewritten once per level, about log4(events/65536) times,
// sequentially. The runs a merge replaced, and runs a crash left half
// written (those not in the list), are dead: the committer deletes them a
// slice per commit, from their first key, so that the pages they free are
// few at a time and reused at once (bbolt writes its whole freelist at
// every commit).
//
// Each run has a Bloom filter of its stream names (the filters bucket,
// written with the run and kept in memory while the run is live: about 10
// bits a name), so that a lookup reads only the runs that may hold the
// stream: for a new stream, none. Runs hold disjoint, successive ranges of
// each stream's revisions: a newer run holds later revisions. The streams
// bucket of files written before runs is read as the oldest run; it is
// never written again.
var (
	bucketRuns    = []byte("runs")    // run id -> bucket of len16|stream|revision -> position
	bucketFilters = []byte("filters") // run id -> the run's filter of stream names
	// keyRuns (meta) lists the live runs, oldest first.
	keyRuns  = []byte("runs")
	formatV2 = []byte("heed-ledger-2")
)

const (
	// runFanout runs of a level are merged into one of the next.
	runFanout = 4
	// runRate is how many entries a merge writes, and a dead run loses,
	// per event committed: a level's merge is due every runFanout runs of
	// that level, and must be done before the next is.
	runRate = 2 * entriesPerEvent
	// runChunk is the least work a commit does on a merge or on the dead
	// runs, for a store that folds every 65536 events: each costs a
	// commit a few pages (the right edge of the run written, the first
	// pages of those read), so a commit of a few events does none, and
	// the work waits until enough events have come.
	runChunk = 2048
	// runRecord is the size of one run in the encoded list.
	runRecord = 8 + 1 + 8 + 8
)

// run is one live run of the stream index.
type run struct {
	id    uint64
	level uint8
	keys  uint64 // entries
	names uint64 // distinct streams, which size its filter
}

func encodeRuns(l []run) []byte {
	b := make([]byte, 0, len(l)*runRecord)
	for _, r := range l {
		b = binary.BigEndian.AppendUint64(b, r.id)
		b = append(b, r.level)
		b = binary.BigEndian.AppendUint64(b, r.keys)
		b = binary.BigEndian.AppendUint64(b, r.names)
	}
	return b
}

func decodeRuns(b []byte) ([]run, error) {
	if len(b)%runRecord != 0 {
		return nil, fmt.Errorf("bad list of runs")
	}
	l := make([]run, 0, len(b)/runRecord)
	for ; len(b) > 0; b = b[runRecord:] {
		l = append(l, run{id: binary.BigEndian.Uint64(b), level: b[8], keys: binary.BigEndian.Uint64(b[9:]), names: binary.BigEndian.Uint64(b[17:])})
	}
	return l, nil
}

// runHash is a stream name's hash for the run filters, which are stored,
// so it is fixed: FNV-1a, then a finalizer that spreads its bits.
func runHash(name string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	x := h.Sum64()
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}

// encodeFilter is a filter as stored: its block count, then its words,
// little-endian.
func encodeFilter(l *layer) []byte {
	b := make([]byte, 0, 8+8*len(l.blocks))
	b = binary.BigEndian.AppendUint64(b, l.mask+1)
	for _, w := range l.blocks {
		b = binary.LittleEndian.AppendUint64(b, w)
	}
	return b
}

func decodeFilter(b []byte) (*layer, error) {
	if len(b) < 8 {
		return nil, fmt.Errorf("bad run filter")
	}
	nb := binary.BigEndian.Uint64(b)
	if nb == 0 || bits.OnesCount64(nb) != 1 || uint64(len(b)-8) != nb*64 {
		return nil, fmt.Errorf("bad run filter")
	}
	l := &layer{blocks: make([]uint64, nb*8), mask: nb - 1}
	for i := range l.blocks {
		l.blocks[i] = binary.LittleEndian.Uint64(b[8+8*i:])
	}
	return l, nil
}

// runFilters holds the filters of the live runs in memory. A run's filter
// is added before the commit that lists the run, and dropped once a commit
// has taken the run off the list; a reader whose transaction still lists
// it reads the run without its filter.
type runFilters struct {
	mu sync.RWMutex
	m  map[uint64]*layer
}

func (f *runFilters) get(id uint64) *layer {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.m[id]
}

func (f *runFilters) set(id uint64, l *layer) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if l == nil {
		delete(f.m, id)
		return
	}
	f.m[id] = l
}

// index is the stream index as one transaction sees it.
type index struct {
	legacy *bbolt.Bucket // the streams bucket: the oldest run
	rb     *bbolt.Bucket // the runs bucket; nil in a file from before runs
	runs   []run         // the live runs, oldest first
	filt   []*layer      // their filters; nil reads the run
}

// indexCache is the last list of runs decoded, with the filters found for
// it, so that a reader decodes the list only when a commit has changed it.
type indexCache struct {
	raw  []byte
	runs []run
	filt []*layer
}

// index returns the stream index tx sees.
func (s *Store) index(tx *bbolt.Tx) (*index, error) {
	x := &index{legacy: tx.Bucket(bucketStreams), rb: tx.Bucket(bucketRuns)}
	raw := tx.Bucket(bucketMeta).Get(keyRuns)
	if c := s.idxCache.Load(); c != nil && bytes.Equal(c.raw, raw) {
		x.runs, x.filt = c.runs, c.filt
		return x, nil
	}
	runs, err := decodeRuns(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	filt := make([]*layer, len(runs))
	for i, r := range runs {
		filt[i] = s.filters.get(r.id)
	}
	x.runs, x.filt = runs, filt
	s.idxCache.Store(&indexCache{raw: bytes.Clone(raw), runs: runs, filt: filt})
	return x, nil
}

// bucket is the i-th live run's bucket.
func (x *index) bucket(i int) *bbolt.Bucket {
	if x.rb == nil {
		return nil
	}
	return x.rb.Bucket(key(x.runs[i].id))
}

// revision is the stream's last revision among the entries at or below
// head, newest run first; the streams bucket is read only if legacy says
// it may hold the stream.
func (x *index) revision(stream string, head uint64, legacy bool) uint64 {
	if len(x.runs) > 0 {
		h := runHash(stream)
		for i := len(x.runs) - 1; i >= 0; i-- {
			if f := x.filt[i]; f != nil && !f.has(h) {
				continue
			}
			if b := x.bucket(i); b != nil {
				if r := visibleRevision(b, stream, head); r > 0 {
					return r
				}
			}
		}
	}
	if legacy && x.legacy != nil {
		return visibleRevision(x.legacy, stream, head)
	}
	return 0
}

// buckets returns the buckets that may hold the stream's entries, oldest
// first.
func (x *index) buckets(stream string) []*bbolt.Bucket {
	out := []*bbolt.Bucket{x.legacy}
	if len(x.runs) > 0 {
		h := runHash(stream)
		for i := range x.runs {
			if f := x.filt[i]; f != nil && !f.has(h) {
				continue
			}
			if b := x.bucket(i); b != nil {
				out = append(out, b)
			}
		}
	}
	return out
}

// merging is a merge in progress (committer only): the entries of inputs,
// consecutive live runs of one level, written in key order into the run
// out, a slice per commit.
type merging struct {
	out    uint64
	level  uint8 // of out
	inputs []run
	filter *layer
	// Committed so far: the last key written, the entries and names
	// written, the last name, and the head the pacing counts from.
	after    []byte
	keys     uint64
	names    uint64
	lastName string
	paced    uint64
}

// mergeWork is what one commit did to a merge, applied once it succeeds.
type mergeWork struct {
	m        *merging
	after    []byte
	keys     uint64
	names    uint64
	lastName string
	paced    uint64
	done     bool
}

// runsChange is what a commit does to the runs, applied if it succeeds.
type runsChange struct {
	live    []run // the new list, when changed
	changed bool
	merges  []mergeWork
	started []*merging
	dropped []uint64 // runs that left the list: their filters go
	deleted []uint64 // dead runs gone from the file
	dead    []uint64 // runs the commit made dead
	paced   uint64   // head the dead runs' deletion paced to
}

// runsStep starts the merges due, advances every merge in progress and
// deletes part of the dead runs, in tx, recording in p.runs what it did.
func (s *Store) runsStep(p *plan, tx *bbolt.Tx) error {
	c := &p.runs
	rb, filters := tx.Bucket(bucketRuns), tx.Bucket(bucketFilters)
	live := c.live
	if !c.changed {
		live = s.live
	}
	// Start the merges due: runFanout runs of a level, none of them
	// already in a merge. Levels never rise from oldest to newest, so a
	// level's runs are consecutive and its oldest are merged first.
	merges := append([]*merging(nil), s.merges...)
	busy := map[uint8]bool{}
	for _, m := range merges {
		busy[m.level-1] = true
	}
	for i := 0; i < len(live); {
		j := i
		for j < len(live) && live[j].level == live[i].level {
			j++
		}
		if lv := live[i].level; !busy[lv] && j-i >= runFanout && lv < 255 {
			m := &merging{out: s.nextRun, level: lv + 1, inputs: append([]run(nil), live[i:i+runFanout]...), paced: p.head}
			s.nextRun++
			var names uint64
			for _, r := range m.inputs {
				names += r.names
			}
			nl := newLayer(int(min(names, 1<<40)))
			m.filter = &nl
			merges = append(merges, m)
			c.started = append(c.started, m)
			busy[lv] = true
		}
		i = j
	}
	for _, m := range merges {
		w, err := s.mergeSlice(m, p.head, rb)
		if err != nil {
			return err
		}
		if w.done {
			if err := filters.Put(key(m.out), encodeFilter(m.filter)); err != nil {
				return fmt.Errorf("bolt: merge runs: %w", err)
			}
			at := -1
			for i := range live {
				if live[i].id == m.inputs[0].id {
					at = i
					break
				}
			}
			if at < 0 || at+len(m.inputs) > len(live) {
				return fmt.Errorf("bolt: merge runs: inputs are not live")
			}
			for i, r := range m.inputs {
				if live[at+i].id != r.id {
					return fmt.Errorf("bolt: merge runs: inputs are not consecutive")
				}
			}
			next := make([]run, 0, len(live)-len(m.inputs)+1)
			next = append(next, live[:at]...)
			next = append(next, run{id: m.out, level: m.level, keys: w.keys, names: w.names})
			next = append(next, live[at+len(m.inputs):]...)
			live, c.changed = next, true
			for _, r := range m.inputs {
				c.dropped = append(c.dropped, r.id)
				c.dead = append(c.dead, r.id)
				if err := filters.Delete(key(r.id)); err != nil {
					return fmt.Errorf("bolt: merge runs: %w", err)
				}
			}
			s.filters.set(m.out, m.filter)
		}
		c.merges = append(c.merges, w)
	}
	c.live = live
	// Delete the dead runs, oldest first.
	budget := runRate * 2 * int(p.head-s.deadPaced)
	c.paced = s.deadPaced
	if budget >= s.runChunk() {
		c.paced = p.head
	} else {
		budget = 0
	}
	for _, id := range s.dead {
		if budget <= 0 {
			break
		}
		b := rb.Bucket(key(id))
		if b == nil {
			c.deleted = append(c.deleted, id)
			continue
		}
		cur := b.Cursor()
		for ; budget > 0; budget-- {
			k, _ := cur.First()
			if k == nil {
				break
			}
			if err := cur.Delete(); err != nil {
				return fmt.Errorf("bolt: delete run: %w", err)
			}
		}
		if k, _ := cur.First(); k == nil {
			if err := rb.DeleteBucket(key(id)); err != nil {
				return fmt.Errorf("bolt: delete run: %w", err)
			}
			if err := filters.Delete(key(id)); err != nil {
				return fmt.Errorf("bolt: delete run: %w", err)
			}
			c.deleted = append(c.deleted, id)
		}
	}
	if c.changed {
		if err := tx.Bucket(bucketMeta).Put(keyRuns, encodeRuns(live)); err != nil {
			return fmt.Errorf("bolt: list runs: %w", err)
		}
	}
	return nil
}

// mergeSlice writes the next entries of m, runRate per event committed
// since the last slice, and reports whether the merge is complete.
func (s *Store) mergeSlice(m *merging, head uint64, rb *bbolt.Bucket) (mergeWork, error) {
	w := mergeWork{m: m, after: m.after, keys: m.keys, names: m.names, lastName: m.lastName, paced: m.paced}
	budget := runRate * int(head-m.paced)
	if budget < s.runChunk() {
		return w, nil
	}
	w.paced = head
	out, err := rb.CreateBucketIfNotExists(key(m.out))
	if err != nil {
		return w, fmt.Errorf("bolt: merge runs: %w", err)
	}
	out.FillPercent = 1.0
	cs := make([]*bbolt.Cursor, len(m.inputs))
	ks, vs := make([][]byte, len(m.inputs)), make([][]byte, len(m.inputs))
	for i, r := range m.inputs {
		b := rb.Bucket(key(r.id))
		if b == nil {
			return w, fmt.Errorf("%w: run %d is listed but missing", ErrCorrupt, r.id)
		}
		cs[i] = b.Cursor()
		if m.after == nil {
			ks[i], vs[i] = cs[i].First()
		} else if ks[i], vs[i] = cs[i].Seek(m.after); ks[i] != nil && bytes.Equal(ks[i], m.after) {
			ks[i], vs[i] = cs[i].Next()
		}
	}
	// Keys and values handed to bbolt must outlive the transaction's
	// cursors: copy them into one block.
	var arena []byte
	for n := 0; n < budget; n++ {
		j := -1
		for i := range ks {
			if ks[i] != nil && (j < 0 || bytes.Compare(ks[i], ks[j]) < 0) {
				j = i
			}
		}
		if j < 0 {
			w.done = true
			break
		}
		k, v := ks[j], vs[j]
		for i := range ks {
			// An entry in two runs (a fold a crash interrupted, redone)
			// is written once.
			if i != j && ks[i] != nil && bytes.Equal(ks[i], k) {
				ks[i], vs[i] = cs[i].Next()
			}
		}
		if cap(arena)-len(arena) < len(k)+len(v) {
			arena = make([]byte, 0, max(64<<10, len(k)+len(v)))
		}
		start := len(arena)
		arena = append(arena, k...)
		arena = append(arena, v...)
		kk, vv := arena[start:start+len(k):start+len(k)], arena[start+len(k):len(arena):len(arena)]
		if err := out.Put(kk, vv); err != nil {
			return w, fmt.Errorf("bolt: merge runs: %w", err)
		}
		w.after, w.keys = kk, w.keys+1
		if name, ok := streamName(kk); !ok {
			return w, fmt.Errorf("%w: bad stream index key", ErrCorrupt)
		} else if name != w.lastName {
			m.filter.add(runHash(name))
			w.names++
			w.lastName = name
		}
		ks[j], vs[j] = cs[j].Next()
	}
	if !w.done {
		// The loop may have stopped right at the end.
		w.done = true
		for i := range ks {
			if ks[i] != nil {
				w.done = false
			}
		}
	}
	return w, nil
}

// runChunk is runChunk scaled to the store's fold interval, so that tests
// folding every few events merge too.
func (s *Store) runChunk() int {
	return int(max(1, min(runChunk, s.foldEvery/32)))
}

// runsCommitted applies p.runs after p's commit succeeded.
func (s *Store) runsCommitted(p *plan) {
	c := &p.runs
	s.merges = append(s.merges, c.started...)
	for _, w := range c.merges {
		m := w.m
		m.after, m.keys, m.names, m.lastName, m.paced = bytes.Clone(w.after), w.keys, w.names, w.lastName, w.paced
		if w.done {
			for i := range s.merges {
				if s.merges[i] == m {
					s.merges = append(s.merges[:i], s.merges[i+1:]...)
					break
				}
			}
		}
	}
	if c.changed {
		s.live = c.live
	}
	for _, id := range c.dropped {
		s.filters.set(id, nil)
	}
	if len(c.deleted) > 0 {
		gone := map[uint64]bool{}
		for _, id := range c.deleted {
			gone[id] = true
		}
		kept := s.dead[:0]
		for _, id := range s.dead {
			if !gone[id] {
				kept = append(kept, id)
			}
		}
		s.dead = kept
	}
	s.dead = append(s.dead, c.dead...)
	s.deadPaced = c.paced
}

// runsFailed undoes what runsStep did in memory for a commit that failed:
// the merges it started are given back their run ids' place.
func (s *Store) runsFailed(p *plan) {
	for _, m := range p.runs.started {
		s.filters.set(m.out, nil)
		// The id is not reused: a bucket of that id may be half written
		// in no file, and a later merge takes the next.
		s.dead = append(s.dead, m.out)
	}
	for _, w := range p.runs.merges {
		if w.done {
			s.filters.set(w.m.out, nil)
		}
	}
}

// loadRuns reads the list of live runs and their filters at open, and
// finds the dead runs: those in the runs bucket but not in the list.
func (s *Store) loadRuns(tx *bbolt.Tx) error {
	rb := tx.Bucket(bucketRuns)
	if rb == nil {
		if tx.Bucket(bucketMeta).Get(keyRuns) != nil {
			return fmt.Errorf("runs listed but no runs bucket")
		}
		return nil
	}
	live, err := decodeRuns(tx.Bucket(bucketMeta).Get(keyRuns))
	if err != nil {
		return err
	}
	fb := tx.Bucket(bucketFilters)
	if fb == nil {
		return fmt.Errorf("no run filters bucket")
	}
	listed := map[uint64]bool{}
	for i, r := range live {
		if i > 0 && r.level > live[i-1].level {
			return fmt.Errorf("runs out of order")
		}
		if rb.Bucket(key(r.id)) == nil {
			return fmt.Errorf("run %d is listed but missing", r.id)
		}
		f, err := decodeFilter(fb.Get(key(r.id)))
		if err != nil {
			return fmt.Errorf("run %d: %v", r.id, err)
		}
		s.filters.set(r.id, f)
		listed[r.id] = true
	}
	s.live = live
	c := rb.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if len(k) != 8 || v != nil {
			return fmt.Errorf("bad run key")
		}
		id := binary.BigEndian.Uint64(k)
		if !listed[id] {
			s.dead = append(s.dead, id)
		}
		s.nextRun = max(s.nextRun, id+1)
	}
	return nil
}

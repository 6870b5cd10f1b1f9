package bolt

import (
	"fmt"

	"go.etcd.io/bbolt"
)

// folding is a fold in progress: the stream index entries of the events at
// or below upto, written into a new run (see runs.go) a sorted slice per
// commit.
//
// Writing a whole generation in one commit would stall every appender for
// as long as it takes to write its pages. Spread over the commits of the
// next fold interval, each commit writes the next few keys in order, so no
// commit carries more than a sliver of the work; a shorter spread makes
// the slices, and the tail latency of the commits that carry them, larger.
//
// Only the committer goroutine touches it. The entries stay in recent
// until the last slice has committed, with the folded position and the
// run listed, in the same transaction: until then readers answer from
// recent, and a crash part-way leaves a run no list names, which Open
// deletes (see loadRuns) while its rebuild covers the entries again.
type folding struct {
	upto    uint64
	run     uint64        // the run the entries go into
	ready   chan gathered // the sorted entries, when gathered off the committer
	entries []logged
	filter  *layer // of the entries' streams
	names   uint64 // distinct streams among them
	sorted  bool
	next    int    // entries[:next] are committed in the bucket
	start   uint64 // head when the entries were ready: pacing counts from it
}

// gathered is a generation's entries in key order and the filter of their
// streams.
type gathered struct {
	entries []logged
	filter  *layer
	names   uint64
}

// gather returns the entries after position from and at or below upto, in
// key order, with a filter of their streams.
func (s *Store) gather(from, upto uint64) gathered {
	g := gathered{entries: s.rec.between(from, upto)}
	last := ""
	for i := range g.entries {
		if i == 0 || g.entries[i].stream != last {
			last = g.entries[i].stream
			g.names++
		}
	}
	l := newLayer(int(g.names))
	g.filter = &l
	for i := range g.entries {
		if i == 0 || g.entries[i].stream != g.entries[i-1].stream {
			l.add(runHash(g.entries[i].stream))
		}
	}
	return g
}

// foldStep writes this batch's share of the fold into tx, starting a fold
// when a generation is due. It records in p what the commit, if it
// succeeds, has made true. It runs before the batch is complete (see
// stream), so it paces the fold by the events committed before the batch.
func (s *Store) foldStep(p *plan, tx *bbolt.Tx) error {
	f := s.fold
	if f == nil {
		folded := s.folded.Load()
		if p.head-folded < s.foldEvery {
			return nil
		}
		f = &folding{upto: p.head, run: s.nextRun}
		s.nextRun++
		// The batch's own entries join recent after this (see stream),
		// so the generation cut here holds exactly the fold's.
		s.rec.cut(int(min(s.foldEvery, 1<<16)))
		// A small generation is gathered and sorted here, in the commit
		// that starts the fold; a large one by a goroutine, so that the
		// sort does not stall a commit.
		if p.head-folded < s.foldAsync {
			g := s.gather(folded, p.head)
			f.entries, f.filter, f.names, f.sorted, f.start = g.entries, g.filter, g.names, true, p.head
		} else {
			f.ready = make(chan gathered, 1)
			go func(from, upto uint64) { f.ready <- s.gather(from, upto) }(folded, p.head)
		}
		s.fold = f
	}
	if !f.sorted {
		select {
		case g := <-f.ready:
			f.entries, f.filter, f.names, f.sorted, f.start = g.entries, g.filter, g.names, true, p.head
		default:
			return nil
		}
	}
	end := f.chunkEnd(p.head, s.foldEvery)
	if end < len(f.entries) && end-f.next < int(max(1, s.foldEvery/256)) {
		// Too few entries to be worth the pages a slice dirties (the
		// run's right edge): a later commit writes them with more.
		p.foldNext = f.next
		return nil
	}
	// The run is new and its keys come in order: packed full, its pages
	// are written about once each.
	b, err := tx.Bucket(bucketRuns).CreateBucketIfNotExists(key(f.run))
	if err != nil {
		return fmt.Errorf("bolt: fold stream index: %w", err)
	}
	b.FillPercent = 1.0
	for _, e := range f.entries[f.next:end] {
		if err := b.Put(streamKey(e.stream, e.rev), key(e.pos)); err != nil {
			return fmt.Errorf("bolt: fold stream index: %w", err)
		}
	}
	p.foldNext = end
	p.foldWrote = end - f.next
	if end == len(f.entries) {
		if err := tx.Bucket(bucketFilters).Put(key(f.run), encodeFilter(f.filter)); err != nil {
			return fmt.Errorf("bolt: fold stream index: %w", err)
		}
		if err := tx.Bucket(bucketMeta).Put(keyFolded, key(f.upto)); err != nil {
			return fmt.Errorf("bolt: fold stream index: %w", err)
		}
		// Listed by runsStep, in this transaction.
		p.runs.live = append(append([]run(nil), s.live...), run{id: f.run, keys: uint64(len(f.entries)), names: f.names})
		p.runs.changed = true
		s.filters.set(f.run, f.filter)
		p.foldTo = f.upto
	}
	return nil
}

// chunkEnd is where this commit's slice ends: the share of the entries
// proportional to the events committed since the fold began (up to pos),
// over one fold interval, and at least one entry.
func (f *folding) chunkEnd(pos, every uint64) int {
	span := max(every, 1)
	done := pos - f.start
	n := uint64(len(f.entries))
	target := n
	if done < span {
		target = (n*done + span - 1) / span
	}
	return int(min(n, max(target, uint64(f.next)+1)))
}

// foldCommitted moves the fold on after p's commit succeeded.
func (s *Store) foldCommitted(p *plan) {
	if s.fold == nil || !s.fold.sorted {
		return
	}
	s.fold.next = p.foldNext
	n := int64(p.foldWrote)
	s.stats.folded.Add(n)
	if n > s.stats.foldMax.Load() {
		s.stats.foldMax.Store(n)
	}
	if p.foldTo > 0 {
		s.folded.Store(p.foldTo)
		s.fold = nil
	}
}

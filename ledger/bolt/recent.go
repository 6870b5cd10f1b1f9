package bolt

import (
	"cmp"
	"slices"
	"strings"
	"sync"
)

// recent indexes the streams of the events committed since the last fold,
// in memory. A fresh stream's key lands on a random page of the streams
// bucket (stream names carry keyed pseudonyms), so writing each event's
// index entry at commit made every commit write about one random page per
// event. Instead commits leave those entries here, and every foldEvery
// events they are sorted and written into the bucket in key order, a slice
// per commit (see folding), so entries that share a page share its write. The events themselves are the
// journal: Open rebuilds this index from the events after the folded
// position recorded in the meta bucket, so a crash loses nothing.
type recent struct {
	mu      sync.RWMutex
	streams map[string]*span
	// log holds the same entries in position order, so a fold can take
	// its generation as a prefix instead of walking the map under the
	// lock that commits wait on. A prefix is never written again: add
	// only appends, and prune re-slices into a fresh array.
	log []logged
}

// logged is one entry of recent.log.
type logged struct {
	stream   string
	rev, pos uint64
}

// span is a stream's unfolded tail: revisions first, first+1, … at the
// positions in pos (ascending).
type span struct {
	first uint64
	pos   []uint64
}

func newRecent() *recent { return &recent{streams: map[string]*span{}} }

// add records the event at revision rev and position pos of stream;
// revisions of one stream arrive in order. The caller holds mu.
func (r *recent) add(stream string, rev, pos uint64) {
	sp := r.streams[stream]
	if sp == nil {
		sp = &span{first: rev}
		r.streams[stream] = sp
	}
	sp.pos = append(sp.pos, pos)
	r.log = append(r.log, logged{stream, rev, pos})
}

// last returns the stream's last unfolded revision.
func (r *recent) last(stream string) (uint64, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.lastLocked(stream)
}

// lastLocked is last for a caller holding mu.
func (r *recent) lastLocked(stream string) (uint64, bool) {
	if sp := r.streams[stream]; sp != nil {
		return sp.first + uint64(len(sp.pos)) - 1, true
	}
	return 0, false
}

// tail copies the stream's unfolded revisions at or below position head:
// the first revision and the positions.
func (r *recent) tail(stream string, head uint64) (uint64, []uint64) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	sp := r.streams[stream]
	if sp == nil {
		return 0, nil
	}
	n, _ := slices.BinarySearch(sp.pos, head+1)
	return sp.first, slices.Clone(sp.pos[:n])
}

// upTo returns the log's entries at or below position upto in the order
// of their keys in the streams bucket (length, name, revision: see
// streamKey). It holds the lock only to take a prefix of the log: sorting a
// whole generation takes milliseconds, and commits wait on the lock.
func (r *recent) upTo(upto uint64) []logged {
	r.mu.RLock()
	n, _ := slices.BinarySearchFunc(r.log, upto+1, func(l logged, pos uint64) int { return cmp.Compare(l.pos, pos) })
	gen := slices.Clone(r.log[:n])
	r.mu.RUnlock()
	slices.SortFunc(gen, func(a, b logged) int {
		if c := cmp.Compare(len(a.stream), len(b.stream)); c != 0 {
			return c
		}
		if c := strings.Compare(a.stream, b.stream); c != 0 {
			return c
		}
		return cmp.Compare(a.rev, b.rev)
	})
	return gen
}

// prune forgets the entries of events at or below position folded, once
// they are in the bucket.
func (r *recent) prune(folded uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n, _ := slices.BinarySearchFunc(r.log, folded+1, func(l logged, pos uint64) int { return cmp.Compare(l.pos, pos) })
	r.log = slices.Clone(r.log[n:])
	for stream, sp := range r.streams {
		n, _ := slices.BinarySearch(sp.pos, folded+1)
		switch {
		case n == len(sp.pos):
			delete(r.streams, stream)
		case n > 0:
			sp.first += uint64(n)
			sp.pos = slices.Clone(sp.pos[n:])
		}
	}
}

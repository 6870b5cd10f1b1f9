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
	// its generation as a prefix (a copy) and prune can take the oldest,
	// instead of walking the map under the lock that commits wait on.
	log []logged
	// names holds every stream added here, and once complete is set
	// every stream in the bucket too (see learnStreams): then a stream it
	// lacks has never been stored.
	names    *names
	complete bool
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

func newRecent() *recent { return &recent{streams: map[string]*span{}, names: newNames()} }

// add records the event at revision rev and position pos of stream;
// revisions of one stream arrive in order. The caller holds mu.
func (r *recent) add(stream string, rev, pos uint64) {
	// Every stream in streams is in names, and asking names is cheaper
	// than a miss in streams, the usual case at volume.
	h1, h2 := r.names.hash(stream)
	var sp *span
	if r.names.hasHash(h1, h2) {
		sp = r.streams[stream]
	}
	if sp == nil {
		sp = &span{first: rev}
		r.streams[stream] = sp
		r.names.addHash(h1, h2)
	}
	sp.pos = append(sp.pos, pos)
	r.log = append(r.log, logged{stream, rev, pos})
}

// drop forgets the entries after position head, those of a batch whose
// commit failed (see Store.stream), newest first.
func (r *recent) drop(head uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for len(r.log) > 0 && r.log[len(r.log)-1].pos > head {
		l := r.log[len(r.log)-1]
		r.log = r.log[:len(r.log)-1]
		if sp := r.streams[l.stream]; sp != nil && len(sp.pos) > 0 && sp.pos[len(sp.pos)-1] == l.pos {
			sp.pos = sp.pos[:len(sp.pos)-1]
			if len(sp.pos) == 0 {
				delete(r.streams, l.stream)
			}
		}
	}
}

// last returns the stream's last revision if it can tell without the
// bucket: its last unfolded revision, or 0 for a stream never stored.
func (r *recent) last(stream string) (uint64, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	// names holds every stream in streams, and the filter is cheaper
	// than a miss in that map.
	if r.complete && !r.names.has(stream) {
		return 0, true
	}
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

// between returns the log's entries after position from and at or below
// upto, in the order of their keys in the streams bucket (length, name,
// revision: see streamKey). It holds the lock only to copy them: sorting a
// whole generation takes milliseconds, and commits wait on the lock.
func (r *recent) between(from, upto uint64) []logged {
	at := func(p uint64) int {
		n, _ := slices.BinarySearchFunc(r.log, p, func(l logged, pos uint64) int { return cmp.Compare(l.pos, pos) })
		return n
	}
	r.mu.RLock()
	gen := slices.Clone(r.log[at(from+1):at(upto+1)])
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

// prune forgets up to max of the oldest entries at or below position
// folded, once they are in the bucket, and reports whether none is left.
// It works from the log, oldest first, so it costs what it removes rather
// than a walk of every stream (which held the lock commits wait on for
// 15–50 ms after each fold); the sequencer spreads a generation's prune
// over several batches.
func (r *recent) prune(folded uint64, max int) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for ; n < len(r.log) && n < max && r.log[n].pos <= folded; n++ {
		l := r.log[n]
		sp := r.streams[l.stream]
		if sp == nil || len(sp.pos) == 0 || sp.pos[0] != l.pos {
			continue
		}
		sp.first++
		sp.pos = sp.pos[1:]
		if len(sp.pos) == 0 {
			delete(r.streams, l.stream)
		}
	}
	r.log = r.log[n:]
	if len(r.log) > 0 && r.log[0].pos <= folded {
		return false
	}
	// Let the pruned front of the log's array go.
	if cap(r.log) > 2*len(r.log)+4096 {
		r.log = slices.Clone(r.log)
	}
	return true
}

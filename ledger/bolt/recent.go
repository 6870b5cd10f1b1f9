package bolt

import (
	"cmp"
	"slices"
	"strings"
	"sync"
)

// recent indexes the streams of the events committed since the last fold,
// in memory. A fresh stream's key lands anywhere in the index (stream
// names carry keyed pseudonyms), so writing each event's index entry at
// commit made every commit write about one random page per event. Instead
// commits leave those entries here, and every foldEvery events they are
// sorted and written as a new run (see runs.go), a slice per commit (see
// folding). The events themselves are the journal: Open rebuilds this
// index from the events after the folded position recorded in the meta
// bucket, so a crash loses nothing.
type recent struct {
	mu sync.RWMutex
	// gens holds the entries a generation at a time, oldest first; the
	// last one takes new entries. A fold takes whole generations (see
	// cut), so that once it has committed its entries leave memory with
	// their generation rather than one by one, which cost a map lookup
	// and delete each.
	gens []*gen
	// names holds every stream added here, and once complete is set
	// every stream in the bucket too (see learnStreams): then a stream it
	// lacks has never been stored.
	names    *names
	complete bool
}

// gen is one generation of entries.
type gen struct {
	streams map[string]*span
	// log holds the same entries in position order, so a fold can copy
	// them and prune can take the oldest, instead of walking the map
	// under the lock that commits wait on.
	log []logged
}

// logged is one entry of a generation's log.
type logged struct {
	stream   string
	rev, pos uint64
}

// span is a stream's entries in one generation: revisions first, first+1,
// … at the positions in pos (ascending). A stream's spans in successive
// generations continue one another.
type span struct {
	first uint64
	pos   []uint64
}

func newRecent() *recent { return &recent{gens: []*gen{newGen(0)}, names: newNames()} }

func newGen(size int) *gen { return &gen{streams: make(map[string]*span, size)} }

// cut starts a generation, sized for about size streams, for the entries
// added from now on; a fold then takes the ones before.
func (r *recent) cut(size int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.gens[len(r.gens)-1].log) > 0 {
		r.gens = append(r.gens, newGen(size))
	}
}

// add records the event at revision rev and position pos of stream;
// revisions of one stream arrive in order. The caller holds mu.
func (r *recent) add(stream string, rev, pos uint64) {
	g := r.gens[len(r.gens)-1]
	// Every stream in a generation is in names, and asking names is
	// cheaper than a miss in streams, the usual case at volume.
	h := r.names.hash(stream)
	var sp *span
	if r.names.hasHash(h) {
		sp = g.streams[stream]
	}
	if sp == nil {
		sp = &span{first: rev}
		g.streams[stream] = sp
		r.names.addHash(h)
	}
	sp.pos = append(sp.pos, pos)
	g.log = append(g.log, logged{stream, rev, pos})
}

// drop forgets the entries after position head, those of a batch whose
// commit failed (see Store.stream), newest first.
func (r *recent) drop(head uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := len(r.gens) - 1; i >= 0; i-- {
		g := r.gens[i]
		for len(g.log) > 0 && g.log[len(g.log)-1].pos > head {
			l := g.log[len(g.log)-1]
			g.log = g.log[:len(g.log)-1]
			if sp := g.streams[l.stream]; sp != nil && len(sp.pos) > 0 && sp.pos[len(sp.pos)-1] == l.pos {
				sp.pos = sp.pos[:len(sp.pos)-1]
				if len(sp.pos) == 0 {
					delete(g.streams, l.stream)
				}
			}
		}
		if len(g.log) > 0 {
			return
		}
	}
}

// last returns the stream's last unfolded revision, if it has one, and
// otherwise whether the streams bucket of a file from before runs may hold
// the stream: once names holds every stream of that bucket (complete), a
// stream it lacks is in neither.
func (r *recent) last(stream string) (rev uint64, ok, legacy bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	// names holds every stream in the generations, and the filter is
	// cheaper than a miss in their maps.
	in := r.names.has(stream)
	if in {
		if rev, ok := r.lastLocked(stream); ok {
			return rev, true, true
		}
	}
	return 0, false, in || !r.complete
}

// lastLocked is the stream's last unfolded revision, for a caller holding
// mu.
func (r *recent) lastLocked(stream string) (uint64, bool) {
	for i := len(r.gens) - 1; i >= 0; i-- {
		if sp := r.gens[i].streams[stream]; sp != nil {
			return sp.first + uint64(len(sp.pos)) - 1, true
		}
	}
	return 0, false
}

// tail copies the stream's unfolded revisions at or below position head:
// the first revision and the positions.
func (r *recent) tail(stream string, head uint64) (uint64, []uint64) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var first uint64
	var out []uint64
	for _, g := range r.gens {
		sp := g.streams[stream]
		if sp == nil {
			continue
		}
		if out == nil {
			first = sp.first
		}
		n, _ := slices.BinarySearch(sp.pos, head+1)
		out = append(out, sp.pos[:n]...)
	}
	if len(out) == 0 {
		return 0, nil
	}
	return first, out
}

// between returns the entries after position from and at or below upto,
// in the order of their keys in the streams bucket (length, name,
// revision: see streamKey). It holds the lock only to copy them: sorting a
// whole generation takes milliseconds, and commits wait on the lock.
func (r *recent) between(from, upto uint64) []logged {
	var out []logged
	r.mu.RLock()
	for _, g := range r.gens {
		at := func(p uint64) int {
			n, _ := slices.BinarySearchFunc(g.log, p, func(l logged, pos uint64) int { return cmp.Compare(l.pos, pos) })
			return n
		}
		out = append(out, g.log[at(from+1):at(upto+1)]...)
	}
	r.mu.RUnlock()
	slices.SortFunc(out, func(a, b logged) int {
		if c := cmp.Compare(len(a.stream), len(b.stream)); c != 0 {
			return c
		}
		if c := strings.Compare(a.stream, b.stream); c != 0 {
			return c
		}
		return cmp.Compare(a.rev, b.rev)
	})
	return out
}

// prune forgets the entries at or below position folded, once they are in
// the bucket, and reports whether none is left. A fold ends where a
// generation does (see cut), so it drops whole generations. Entries of a
// generation that runs past folded (none, unless a fold and a cut ever
// disagree) go one by one, up to max a call, oldest first, so that the
// lock commits wait on is held briefly.
func (r *recent) prune(folded uint64, max int) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for len(r.gens) > 1 {
		if log := r.gens[0].log; len(log) > 0 && log[len(log)-1].pos > folded {
			break
		}
		r.gens[0] = nil
		r.gens = r.gens[1:]
	}
	g := r.gens[0]
	n := 0
	for ; n < len(g.log) && n < max && g.log[n].pos <= folded; n++ {
		l := g.log[n]
		sp := g.streams[l.stream]
		if sp == nil || len(sp.pos) == 0 || sp.pos[0] != l.pos {
			continue
		}
		sp.first++
		sp.pos = sp.pos[1:]
		if len(sp.pos) == 0 {
			delete(g.streams, l.stream)
		}
	}
	g.log = g.log[n:]
	if len(g.log) > 0 && g.log[0].pos <= folded {
		return false
	}
	// Let the pruned front of the log's array go.
	if n > 0 && cap(g.log) > 2*len(g.log)+4096 {
		g.log = slices.Clone(g.log)
	}
	return true
}

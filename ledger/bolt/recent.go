package bolt

import (
	"bytes"
	"slices"
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

// entry is one stream index entry.
type entry struct {
	key []byte
	pos uint64
}

// upTo returns the index entries of the events at or below position upto,
// in key order.
func (r *recent) upTo(upto uint64) []entry {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var out []entry
	for stream, sp := range r.streams {
		for i, p := range sp.pos {
			if p > upto {
				break
			}
			out = append(out, entry{streamKey(stream, sp.first+uint64(i)), p})
		}
	}
	slices.SortFunc(out, func(a, b entry) int { return bytes.Compare(a.key, b.key) })
	return out
}

// prune forgets the entries of events at or below position folded, once
// they are in the bucket.
func (r *recent) prune(folded uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
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

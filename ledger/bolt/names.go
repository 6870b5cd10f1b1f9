package bolt

import (
	"encoding/binary"
	"hash/maphash"
	"math/bits"

	"go.etcd.io/bbolt"
)

// names is a Bloom filter of stream names: it may say a name is there when
// it is not, never the reverse. Most appends at volume start a stream (an
// import, a first contact), and checking the streams bucket to learn that a
// stream is new was the sequencer's largest cost: about 1 µs an event, an
// eighth of all the CPU an append takes at 256 appenders. The filter says
// so in about 0.1 µs, and the bucket is read only when it says "maybe".
//
// It grows in layers, each twice the one before, so that it needs no sizing
// up front and never has to be rebuilt: a name is added to the newest layer
// and looked for in all of them. At about 10 bits and 7 probes a name, a
// layer answers "maybe" for a name it lacks about 1% of the time.
type names struct {
	seed   maphash.Seed
	layers []layer
}

type layer struct {
	bits  []uint64
	mask  uint64 // bit count - 1; the count is a power of two
	n, at int    // names added, and how many it takes
}

const (
	namesFirst  = 1 << 16 // names the first layer takes
	namesProbes = 7
)

func newNames() *names { return &names{seed: maphash.MakeSeed()} }

// add records name.
func (f *names) add(name string) {
	h1, h2 := f.hash(name)
	f.addHash(h1, h2)
}

// addHash records the name with hashes h1, h2 (see hash).
func (f *names) addHash(h1, h2 uint64) {
	var l *layer
	if len(f.layers) > 0 {
		l = &f.layers[len(f.layers)-1]
	}
	if l == nil || l.n >= l.at {
		at := namesFirst
		if l != nil {
			at = 2 * l.at
		}
		m := uint64(1) << bits.Len(uint(at*10-1)) // at least 10 bits a name
		f.layers = append(f.layers, layer{bits: make([]uint64, m/64), mask: m - 1, at: at})
		l = &f.layers[len(f.layers)-1]
	}
	for i := range uint64(namesProbes) {
		b := (h1 + i*h2) & l.mask
		l.bits[b/64] |= 1 << (b % 64)
	}
	l.n++
}

// has reports whether name may have been added.
func (f *names) has(name string) bool {
	h1, h2 := f.hash(name)
	return f.hasHash(h1, h2)
}

// hasHash is has for the name with hashes h1, h2.
func (f *names) hasHash(h1, h2 uint64) bool {
	for j := range f.layers {
		l := &f.layers[j]
		in := true
		for i := range uint64(namesProbes) {
			b := (h1 + i*h2) & l.mask
			if l.bits[b/64]&(1<<(b%64)) == 0 {
				in = false
				break
			}
		}
		if in {
			return true
		}
	}
	return false
}

// hash gives the two hashes the probes are made of (Kirsch–Mitzenmacher);
// the second is odd, so the probes of a layer are distinct.
func (f *names) hash(name string) (uint64, uint64) {
	h := maphash.String(f.seed, name)
	return h, bits.RotateLeft64(h, 32) | 1
}

// learnChunk is how many keys of the streams bucket one read transaction of
// learnStreams reads: a transaction held for the whole bucket would hold up
// a commit that has to remap the file.
const learnChunk = 1 << 16

// learnStreams adds the name of every stream in the streams bucket to the
// filter of rec, a chunk of keys at a time, and then lets the sequencer
// trust it. Streams folded into the bucket meanwhile come from rec, which
// added them when they were committed (or rebuilt at open). It gives up,
// leaving the filter untrusted, if the store closes first.
func (s *Store) learnStreams() {
	defer close(s.learned)
	var from []byte
	batch := make([]string, 0, 1024)
	flush := func() {
		s.rec.mu.Lock()
		for _, n := range batch {
			s.rec.names.add(n)
		}
		s.rec.mu.Unlock()
		batch = batch[:0]
	}
	for {
		select {
		case <-s.quit:
			return
		default:
		}
		var last string
		read := 0
		err := s.db.View(func(tx *bbolt.Tx) error {
			c := tx.Bucket(bucketStreams).Cursor()
			k, _ := c.First()
			if from != nil {
				k, _ = c.Seek(from)
			}
			for ; k != nil && read < learnChunk; k, _ = c.Next() {
				read++
				name, ok := streamName(k)
				if !ok {
					return ErrCorrupt
				}
				if name != last {
					last = name
					batch = append(batch, name)
					if len(batch) == cap(batch) {
						flush()
					}
				}
			}
			if k == nil {
				from = nil
			} else {
				from = append(from[:0], k...)
			}
			return nil
		})
		flush()
		if err != nil {
			return
		}
		if from == nil {
			s.rec.mu.Lock()
			s.rec.complete = true
			s.rec.mu.Unlock()
			return
		}
	}
}

// streamName is the stream a key of the streams bucket belongs to.
func streamName(k []byte) (string, bool) {
	if len(k) < 10 {
		return "", false
	}
	n := int(binary.BigEndian.Uint16(k))
	if len(k) != 2+n+8 {
		return "", false
	}
	return string(k[2 : 2+n]), true
}

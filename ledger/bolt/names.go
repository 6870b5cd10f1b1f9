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
// stream is new would be the sequencer's largest cost. The filter says so
// for a fraction of it, and the bucket is read only when it says "maybe".
//
// It grows in layers, each four times the one before, so that it needs no
// sizing up front and never has to be rebuilt: a name is added to the
// newest layer and looked for in all of them. A layer keeps a name's probes
// in one 512-bit block, a cache line, so that looking in a layer costs one
// miss, not up to seven. At about 10 bits and 7 probes a name, a layer
// answers "maybe" for a name it lacks about 1% of the time.
type names struct {
	seed   maphash.Seed
	layers []layer
}

type layer struct {
	blocks []uint64 // 8 words a block
	mask   uint64   // block count - 1; the count is a power of two
	n, at  int      // names added, and how many it takes
}

const (
	namesFirst  = 1 << 16 // names the first layer takes
	namesGrowth = 4
	namesProbes = 7
)

func newNames() *names { return &names{seed: maphash.MakeSeed()} }

// add records name.
func (f *names) add(name string) { f.addHash(f.hash(name)) }

// addHash records the name with hash h (see hash).
func (f *names) addHash(h uint64) {
	var l *layer
	if len(f.layers) > 0 {
		l = &f.layers[len(f.layers)-1]
	}
	if l == nil || l.n >= l.at {
		at := namesFirst
		if l != nil {
			at = namesGrowth * l.at
		}
		f.layers = append(f.layers, newLayer(at))
		l = &f.layers[len(f.layers)-1]
	}
	l.add(h)
}

// has reports whether name may have been added.
func (f *names) has(name string) bool { return f.hasHash(f.hash(name)) }

// hasHash is has for the name with hash h.
func (f *names) hasHash(h uint64) bool {
	for j := range f.layers {
		if f.layers[j].has(h) {
			return true
		}
	}
	return false
}

// newLayer returns an empty layer sized for at names: at least 10 bits a
// name, in blocks of 512.
func newLayer(at int) layer {
	nb := uint64(1) << bits.Len(uint((max(at, 1)*10+511)/512-1))
	return layer{blocks: make([]uint64, nb*8), mask: nb - 1, at: at}
}

// add records the name with hash h.
func (l *layer) add(h uint64) {
	b, p := l.block(h), probes(h)
	for range namesProbes {
		b[p>>6&7] |= 1 << (p & 63)
		p >>= 9
	}
	l.n++
}

// has reports whether the name with hash h may have been added.
func (l *layer) has(h uint64) bool {
	b, p := l.block(h), probes(h)
	for range namesProbes {
		if b[p>>6&7]&(1<<(p&63)) == 0 {
			return false
		}
		p >>= 9
	}
	return true
}

// hash is a name's hash; a layer picks the block from its low bits.
func (f *names) hash(name string) uint64 { return maphash.String(f.seed, name) }

// block is the block of l that the name with hash h falls in.
func (l *layer) block(h uint64) []uint64 {
	i := (h & l.mask) * 8
	return l.blocks[i : i+8 : i+8]
}

// probes gives a name's bit positions within its block, nine bits each,
// from a second mix of its hash, so that they do not follow the block.
func probes(h uint64) uint64 { return bits.RotateLeft64(h*0x9e3779b97f4a7c15, 29) }

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

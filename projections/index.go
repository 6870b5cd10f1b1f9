package projections

import "encoding/binary"

// index maps subject keys to record indexes. It is a flat open-addressing
// table of pointer-free slots, so a snapshot stores it as raw memory and a
// restart maps it back without rehashing millions of keys (a Go map would
// be rebuilt entry by entry, the bulk of a restore's time).
//
// Keys are HMAC or SHA-256 output, uniform and not chosen by callers, so
// their first eight bytes serve as the hash.
type index struct {
	slots []slot
	n     int
	// frozen, while a snapshot is written, keeps slots before they change.
	frozen *freeze
}

// slot holds a key and its record index plus one; 0 marks a free slot.
type slot struct {
	k key
	v uint32
}

func (x *index) home(k key) uint64 { return binary.LittleEndian.Uint64(k[:8]) }

func (x *index) get(k key) (uint32, bool) {
	if len(x.slots) == 0 {
		return 0, false
	}
	mask := uint64(len(x.slots) - 1)
	for i := x.home(k) & mask; ; i = (i + 1) & mask {
		s := &x.slots[i]
		if s.v == 0 {
			return 0, false
		}
		if s.k == k {
			return s.v - 1, true
		}
	}
}

// put adds k, which must be absent.
func (x *index) put(k key, v uint32) {
	if 4*(x.n+1) > 3*len(x.slots) {
		x.grow()
	}
	x.insert(k, v+1)
	x.n++
}

func (x *index) insert(k key, v uint32) {
	mask := uint64(len(x.slots) - 1)
	i := x.home(k) & mask
	for x.slots[i].v != 0 {
		i = (i + 1) & mask
	}
	if x.frozen != nil {
		x.frozen.keepSlot(x.slots, int(i))
	}
	x.slots[i] = slot{k: k, v: v}
}

func (x *index) grow() {
	old := x.slots
	x.slots = make([]slot, max(16, 2*len(old)))
	for _, s := range old {
		if s.v != 0 {
			x.insert(s.k, s.v)
		}
	}
}

// len is the number of keys.
func (x *index) len() int { return x.n }

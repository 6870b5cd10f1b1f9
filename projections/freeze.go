package projections

import (
	"sync"
	"unsafe"
)

// freeze keeps the state as it was when a snapshot began, while appliers
// go on changing it: the first change to a record or slot after the
// freeze keeps its old value here, and the writer puts those values back
// into the copy it writes. A snapshot of millions of records then takes
// the state's lock only for a chunk at a time (see writeTo), instead of for
// the whole write, during which no event was applied and decisions that
// wait for the head stalled.
//
// Only appliers change the state, and they exclude every reader; the
// writer reads the state and the kept values under a read lock. So the
// kept values need no lock of their own.
type freeze struct {
	recs     int    // records at the freeze; later ones are not written
	slots    []slot // the slot array at the freeze (a grow replaces it and leaves this one alone)
	recKept  map[int]rec
	slotKept map[int]slot
	recBits  []uint64 // which records have a kept value
	slotBits []uint64
}

func newFreeze(s *State) *freeze {
	return &freeze{
		recs: s.recs.n, slots: s.subjects.slots,
		recKept: map[int]rec{}, slotKept: map[int]slot{},
		recBits: make([]uint64, (s.recs.n+63)/64), slotBits: make([]uint64, (len(s.subjects.slots)+63)/64),
	}
}

func has(bits []uint64, i int) bool { return bits[i/64]&(1<<(i%64)) != 0 }
func set(bits []uint64, i int)      { bits[i/64] |= 1 << (i % 64) }

// keepRec keeps record i's value before its first change since the freeze.
func (f *freeze) keepRec(i int, r *rec) {
	if i < f.recs && !has(f.recBits, i) {
		set(f.recBits, i)
		f.recKept[i] = *r
	}
}

// keepSlot keeps slot i of slots before its first change since the
// freeze, if slots is the frozen array.
func (f *freeze) keepSlot(slots []slot, i int) {
	if len(f.slots) == 0 || unsafe.SliceData(slots) != unsafe.SliceData(f.slots) || has(f.slotBits, i) {
		return
	}
	set(f.slotBits, i)
	f.slotKept[i] = slots[i]
}

// mut returns record i to be changed, keeping its value first for a
// snapshot being written. Every change to a record goes through it.
func (s *State) mut(i int) *rec {
	r := s.recs.at(i)
	if s.frozen != nil {
		s.frozen.keepRec(i, r)
	}
	return r
}

// frozenRecs copies the raw bytes of records [from, to) as they were at the
// freeze into buf.
func (s *State) frozenRecs(f *freeze, from, to int, buf []byte) []byte {
	buf = buf[:0]
	for i := from; i < to; {
		page := s.recs.p[i/pageSize]
		end := min(to, (i/pageSize+1)*pageSize)
		part := page[i%pageSize : i%pageSize+(end-i)]
		buf = append(buf, unsafe.Slice((*byte)(unsafe.Pointer(&part[0])), len(part)*int(recSize))...)
		i = end
	}
	for i := from; i < to; i++ {
		if has(f.recBits, i) {
			r := f.recKept[i]
			copy(buf[(i-from)*int(recSize):], unsafe.Slice((*byte)(unsafe.Pointer(&r)), recSize))
		}
	}
	return buf
}

// frozenSlots copies the raw bytes of slots [from, to) as they were at the
// freeze into buf.
func frozenSlots(f *freeze, from, to int, buf []byte) []byte {
	part := f.slots[from:to]
	buf = append(buf[:0], unsafe.Slice((*byte)(unsafe.Pointer(&part[0])), int64(len(part))*slotSize)...)
	for i := from; i < to; i++ {
		if has(f.slotBits, i) {
			sl := f.slotKept[i]
			copy(buf[int64(i-from)*slotSize:], unsafe.Slice((*byte)(unsafe.Pointer(&sl)), slotSize))
		}
	}
	return buf
}

const recSize = unsafe.Sizeof(rec{})

// noLock is the locker of a state no one else uses.
type noLock struct{}

func (noLock) Lock()   {}
func (noLock) Unlock() {}

var _ sync.Locker = noLock{}

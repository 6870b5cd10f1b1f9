package schedule

import (
	"cmp"
	"hash/fnv"
	"math/bits"
	"slices"
)

// index holds the pending timers, one slot each, in flat arrays without
// pointers: an open-addressing table keyed by a 64-bit hash of (tenant,
// reminder id), with linear probing and backward-shift deletion, so it
// needs no tombstones. A slot is 24 bytes; at the table's load the index
// costs 30-45 bytes per pending timer, and it is written to and read from
// a snapshot as it is. It is a pure function of the log up to pos: every
// change comes from an event (see Scheduler.apply) except the queued bit,
// which marks the timers handed to the firing workers and is never saved.
type index struct {
	keys []uint64 // 0: empty slot
	pos  []uint64 // position of the event that set the due time
	due  []uint32 // seconds since epoch, rounded up (see sec)
	meta []uint32 // queued | lead | plan version index
	n    int
}

const (
	queued = 1 << 31
	// The lead is how many 1/128 s before its due second a timer falls
	// due (see leadOf): due times are kept to that, so a timer due within
	// a second is handed out then, not at the second's end.
	leadShift = 24
	leadMask  = 0x7f << leadShift
	// planMask bounds the plan versions a server knows to 16.7M.
	planMask = 1<<leadShift - 1
	// noPlan marks a timer whose plan version the index does not know:
	// it is reconciled like one whose plan changed.
	noPlan = planMask
)

// metaOf packs a timer's plan version index and the lead of its due time.
func metaOf(plan uint32, lead uint32) uint32 { return lead<<leadShift&leadMask | plan&planMask }

// maxLoad bounds the table's load before it grows by half.
const maxLoad = 0.85

func newIndex(capacity int) *index {
	x := &index{}
	x.alloc(max(16, int(float64(capacity)/maxLoad)+1))
	return x
}

func (x *index) alloc(size int) {
	x.keys = make([]uint64, size)
	x.pos = make([]uint64, size)
	x.due = make([]uint32, size)
	x.meta = make([]uint32, size)
}

// timerKey is the index key of a reminder of a tenant; never 0.
func timerKey(tenant, reminder string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(tenant))
	h.Write([]byte{0})
	h.Write([]byte(reminder))
	return mix(h.Sum64())
}

// mix spreads a hash's bits (the splitmix64 finaliser), so that the
// high bits the table's range reduction reads vary.
func mix(k uint64) uint64 {
	k ^= k >> 30
	k *= 0xbf58476d1ce4e5b9
	k ^= k >> 27
	k *= 0x94d049bb133111eb
	k ^= k >> 31
	if k == 0 {
		k = 1
	}
	return k
}

// home is the slot key k starts probing at.
func (x *index) home(k uint64) int {
	hi, _ := bits.Mul64(k, uint64(len(x.keys)))
	return int(hi)
}

// find returns k's slot, or -1.
func (x *index) find(k uint64) int {
	for i := x.home(k); ; {
		switch x.keys[i] {
		case k:
			return i
		case 0:
			return -1
		}
		if i++; i == len(x.keys) {
			i = 0
		}
	}
}

// put sets k's timer (meta from metaOf); it reports whether k was new.
// A timer changed while queued stays queued: a worker has it, and sees
// the change in the log.
func (x *index) put(k, pos uint64, due uint32, meta uint32) bool {
	if float64(x.n+1) > maxLoad*float64(len(x.keys)) {
		x.grow()
	}
	i := x.home(k)
	for x.keys[i] != 0 && x.keys[i] != k {
		if i++; i == len(x.keys) {
			i = 0
		}
	}
	fresh := x.keys[i] == 0
	if fresh {
		x.n++
		x.meta[i] = 0
	}
	x.keys[i], x.pos[i], x.due[i] = k, pos, due
	x.meta[i] = x.meta[i]&queued | meta&^queued
	return fresh
}

func (x *index) grow() {
	old := *x
	x.alloc(len(old.keys) + len(old.keys)/2 + 1)
	x.n = 0
	for i, k := range old.keys {
		if k != 0 {
			x.put(k, old.pos[i], old.due[i], old.meta[i]&^queued)
			x.meta[x.find(k)] |= old.meta[i] & queued
		}
	}
}

// remove deletes k's timer; it reports whether there was one.
func (x *index) remove(k uint64) bool {
	i := x.find(k)
	if i < 0 {
		return false
	}
	x.n--
	size := len(x.keys)
	// Backward shift: pull later members of the probe run into the hole
	// when their home lies at or before it.
	for j := i; ; {
		if j++; j == size {
			j = 0
		}
		if x.keys[j] == 0 {
			break
		}
		h := x.home(x.keys[j])
		if (j-h+size)%size >= (j-i+size)%size {
			x.keys[i], x.pos[i], x.due[i], x.meta[i] = x.keys[j], x.pos[j], x.due[j], x.meta[j]
			i = j
		}
	}
	x.keys[i], x.pos[i], x.due[i], x.meta[i] = 0, 0, 0, 0
	return true
}

// slot is one pending timer handed out by collect.
type slot struct {
	key uint64
	pos uint64
	due uint32
	// at is the due time in ticks (see ticks).
	at uint64
	// plan is the plan version index.
	plan uint32
}

// at is slot i's due time in ticks.
func (x *index) at(i int) uint64 { return dueTicks(x.due[i], x.meta[i]) }

// collect marks queued and returns the timers due at or before horizon
// (in ticks) that are not queued yet, earliest first, at most limit of
// them; next is the earliest due time (in ticks) of the timers left
// unqueued (0 if none), and due counts every timer due by now, queued or
// not.
func (x *index) collect(now, horizon uint64, limit int) (out []slot, next uint64, due int) {
	for i, k := range x.keys {
		if k == 0 {
			continue
		}
		d := x.at(i)
		if d <= now {
			due++
		}
		if x.meta[i]&queued != 0 {
			continue
		}
		if d <= horizon {
			out = append(out, slot{key: k, pos: x.pos[i], due: x.due[i], at: d, plan: x.meta[i] & planMask})
			continue
		}
		if next == 0 || d < next {
			next = d
		}
	}
	slices.SortFunc(out, func(a, b slot) int { return cmp.Compare(a.at, b.at) })
	if len(out) > limit {
		for _, s := range out[limit:] {
			if s.at < next || next == 0 {
				next = s.at
			}
		}
		out = out[:limit]
	}
	for _, s := range out {
		x.meta[x.find(s.key)] |= queued
	}
	return out, next, due
}

// release clears k's queued bit if its timer is still the one set by the
// event at pos.
func (x *index) release(k, pos uint64) {
	if i := x.find(k); i >= 0 && x.pos[i] == pos {
		x.meta[i] &^= queued
	}
}

// each calls fn for every pending timer.
func (x *index) each(fn func(s slot)) {
	for i, k := range x.keys {
		if k != 0 {
			fn(slot{key: k, pos: x.pos[i], due: x.due[i], at: x.at(i), plan: x.meta[i] & planMask})
		}
	}
}

// bytes is the memory the index's arrays hold.
func (x *index) bytes() int { return len(x.keys) * (8 + 8 + 4 + 4) }

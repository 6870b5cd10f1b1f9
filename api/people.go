package api

import "sync"

// people caches what a number resolves to: its E.164 form and its subject.
// Parsing a number is regexp-heavy and the pseudonym is an HMAC, so recent
// answers are kept; the cache is dropped whole when it fills.
//
// Nothing in it is a pointer: keys and values are fixed-size arrays. A map
// of strings was the largest thing the garbage collector scanned under load
// (half the live objects at 100,000 numbers), and its marking showed in the
// p99.
type people struct {
	mu    sync.RWMutex
	max   int
	byRaw map[shortStr]person
}

// shortStr holds a string of up to 32 bytes by value.
type shortStr struct {
	n uint8
	b [32]byte
}

func short(s string) (shortStr, bool) {
	var k shortStr
	if len(s) > len(k.b) {
		return k, false
	}
	k.n = uint8(copy(k.b[:], s))
	return k, true
}

func (k *shortStr) String() string { return string(k.b[:k.n]) }

// person is a cached resolution: the E.164 form and the subject.
type person struct {
	e164    shortStr
	sn      uint8
	subject [64]byte
}

func newPeople(max int) *people {
	return &people{max: max, byRaw: map[shortStr]person{}}
}

// get returns the cached E.164 form and subject of a number as written.
func (p *people) get(raw string) (e164, subject string, ok bool) {
	k, fits := short(raw)
	if !fits {
		return "", "", false
	}
	p.mu.RLock()
	v, ok := p.byRaw[k]
	p.mu.RUnlock()
	if !ok {
		return "", "", false
	}
	return v.e164.String(), string(v.subject[:v.sn]), true
}

// put caches a resolution; ones too long to hold by value are not kept.
func (p *people) put(raw, e164, subject string) {
	k, ok1 := short(raw)
	e, ok2 := short(e164)
	if !ok1 || !ok2 || len(subject) > len(person{}.subject) {
		return
	}
	v := person{e164: e, sn: uint8(len(subject))}
	copy(v.subject[:], subject)
	p.mu.Lock()
	if len(p.byRaw) >= p.max {
		clear(p.byRaw)
	}
	p.byRaw[k] = v
	p.mu.Unlock()
}

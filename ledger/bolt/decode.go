package bolt

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/heed/heed/ledger"
)

// decode turns a stored leaf into an event. Leaves are canonical, so a
// scanner that knows their one layout decodes them several times faster
// than encoding/json; anything it does not expect goes to encoding/json.
func decode(leaf []byte) (ledger.Event, error) {
	if e, ok := decodeFast(leaf); ok {
		return e, nil
	}
	var e ledger.Event
	if err := json.Unmarshal(leaf, &e); err != nil {
		return ledger.Event{}, fmt.Errorf("%w: stored leaf: %v", ErrCorrupt, err)
	}
	return e, nil
}

type scanner struct {
	b  []byte
	i  int
	ok bool
}

// lit consumes s if it comes next.
func (s *scanner) lit(s2 string) bool {
	if s.ok && len(s.b)-s.i >= len(s2) && string(s.b[s.i:s.i+len(s2)]) == s2 {
		s.i += len(s2)
		return true
	}
	return false
}

func (s *scanner) need(s2 string) {
	if !s.lit(s2) {
		s.ok = false
	}
}

// str reads a JSON string, copying it out of the (mapped) leaf.
func (s *scanner) str() string {
	if !s.ok || s.i >= len(s.b) || s.b[s.i] != '"' {
		s.ok = false
		return ""
	}
	start := s.i + 1
	for j := start; j < len(s.b); j++ {
		switch s.b[j] {
		case '"':
			s.i = j + 1
			return string(s.b[start:j])
		case '\\':
			return s.escaped()
		}
	}
	s.ok = false
	return ""
}

// escaped reads a string holding escapes with encoding/json.
func (s *scanner) escaped() string {
	j := s.i + 1
	for ; j < len(s.b) && s.b[j] != '"'; j++ {
		if s.b[j] == '\\' {
			j++
		}
	}
	var out string
	if j >= len(s.b) || json.Unmarshal(s.b[s.i:j+1], &out) != nil {
		s.ok = false
		return ""
	}
	s.i = j + 1
	return out
}

func (s *scanner) uint() uint64 {
	j := s.i
	for j < len(s.b) && s.b[j] >= '0' && s.b[j] <= '9' {
		j++
	}
	n, err := strconv.ParseUint(string(s.b[s.i:j]), 10, 64)
	if !s.ok || err != nil {
		s.ok = false
		return 0
	}
	s.i = j
	return n
}

// time reads a UTC time as Event.Leaf writes it,
// "2006-01-02T15:04:05.999999999Z"; other layouts go to time.Parse.
func (s *scanner) time() time.Time {
	b := s.b[s.i:]
	if !s.ok || len(b) < 22 || b[0] != '"' {
		s.ok = false
		return time.Time{}
	}
	end := bytes.IndexByte(b[1:], '"') + 1
	if t, ok := parseUTC(b[1:end]); ok {
		s.i += end + 1
		return t
	}
	t, err := time.Parse(time.RFC3339Nano, s.str())
	if !s.ok || err != nil {
		s.ok = false
	}
	return t
}

func parseUTC(b []byte) (time.Time, bool) {
	if len(b) < 20 || b[4] != '-' || b[7] != '-' || b[10] != 'T' || b[13] != ':' || b[16] != ':' || b[len(b)-1] != 'Z' {
		return time.Time{}, false
	}
	ok := true
	num := func(p []byte) int {
		n := 0
		for _, c := range p {
			if c < '0' || c > '9' {
				ok = false
			}
			n = n*10 + int(c-'0')
		}
		return n
	}
	year, month, day := num(b[0:4]), num(b[5:7]), num(b[8:10])
	hour, min, sec := num(b[11:13]), num(b[14:16]), num(b[17:19])
	nsec := 0
	if frac := b[19 : len(b)-1]; len(frac) > 0 {
		// RFC3339Nano drops trailing zeros and the dot when there is no
		// fraction.
		if frac[0] != '.' || len(frac) < 2 || len(frac) > 10 || frac[len(frac)-1] == '0' {
			return time.Time{}, false
		}
		nsec = num(frac[1:])
		for i := len(frac) - 1; i < 9; i++ {
			nsec *= 10
		}
	}
	if !ok || month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || min > 59 || sec > 59 {
		return time.Time{}, false
	}
	t := time.Date(year, time.Month(month), day, hour, min, sec, nsec, time.UTC)
	if t.Day() != day {
		return time.Time{}, false // 31 February and the like
	}
	return t, true
}

// decodeFast decodes a leaf laid out exactly as Event.Leaf writes it.
func decodeFast(b []byte) (ledger.Event, bool) {
	var e ledger.Event
	s := &scanner{b: b, ok: true}
	s.need(`{"id":`)
	e.ID = s.str()
	s.need(`,"type":`)
	e.Type = s.str()
	if s.lit(`,"tenant":`) {
		e.Tenant = s.str()
	}
	if s.lit(`,"subject":`) {
		e.Subject = s.str()
	}
	s.need(`,"stream":`)
	e.Stream = s.str()
	s.need(`,"revision":`)
	e.Revision = s.uint()
	s.need(`,"position":`)
	e.Position = s.uint()
	s.need(`,"occurred_at":`)
	e.OccurredAt = s.time()
	s.need(`,"recorded_at":`)
	e.RecordedAt = s.time()
	if s.lit(`,"actor":`) {
		e.Actor = s.str()
	}
	s.need(`,"schema":`)
	schema := s.uint()
	e.Schema = int(schema)
	s.need(`,"data":`)
	if !s.ok || schema > 1<<31 {
		return ledger.Event{}, false
	}
	// Data is an object, so a leaf ending in `"}` ends with the pii
	// string, whose base64 holds no quote: its marker is the last one.
	end := len(b) - 1
	if len(b) < 2 || b[end] != '}' {
		return ledger.Event{}, false
	}
	if b[end-1] == '"' {
		m := bytes.LastIndex(b, markPII)
		if m < s.i {
			return ledger.Event{}, false
		}
		pii, err := base64.StdEncoding.DecodeString(string(b[m+len(markPII) : end-1]))
		if err != nil {
			return ledger.Event{}, false
		}
		e.PII = pii
		end = m
	}
	if end <= s.i {
		return ledger.Event{}, false
	}
	e.Data = json.RawMessage(bytes.Clone(b[s.i:end]))
	return e, true
}

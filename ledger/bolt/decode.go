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

func (s *scanner) time() time.Time {
	v := s.str()
	t, err := time.Parse(time.RFC3339Nano, v)
	if !s.ok || err != nil {
		s.ok = false
	}
	return t
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

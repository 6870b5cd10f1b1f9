package bundle

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strconv"
	"time"
)

// quickLeaf is a fast, conservative check that line is a canonical leaf
// (what ledger.ParseLeaf accepts) and returns its position. It answers
// true only when certain: plain ASCII strings without escapes, compact
// data without characters encoding/json would escape, and every field in
// the order (*ledger.Event).Leaf writes them. Anything else returns false
// and the caller asks ledger.ParseLeaf, which stays the definition; a
// fuzz test checks that quickLeaf never accepts what ParseLeaf refuses.
//
// It exists because ParseLeaf decodes and re-encodes every line, about
// 90% of the cost of verifying a bundle.
func quickLeaf(line []byte) (int64, bool) {
	s := scanner{b: line}
	if !s.lit(`{"id":`) || !s.str(false) || !s.lit(`,"type":`) || !s.str(false) {
		return 0, false
	}
	if s.lit(`,"tenant":`) && !s.str(true) {
		return 0, false
	}
	if s.lit(`,"subject":`) && !s.str(true) {
		return 0, false
	}
	if !s.lit(`,"stream":`) || !s.str(false) || !s.lit(`,"revision":`) {
		return 0, false
	}
	if _, ok := s.uint(); !ok || !s.lit(`,"position":`) {
		return 0, false
	}
	pos, ok := s.uint()
	if !ok || pos > 1<<62 || !s.lit(`,"occurred_at":`) || !s.time() || !s.lit(`,"recorded_at":`) || !s.time() {
		return 0, false
	}
	if s.lit(`,"actor":`) && !s.str(true) {
		return 0, false
	}
	if !s.lit(`,"schema":`) || !s.int() || !s.lit(`,"data":`) || !s.data() {
		return 0, false
	}
	if s.lit(`,"pii":`) && !s.pii() {
		return 0, false
	}
	if !s.lit(`}`) || s.i != len(s.b) {
		return 0, false
	}
	return int64(pos), true
}

type scanner struct {
	b []byte
	i int
}

func (s *scanner) lit(x string) bool {
	if len(s.b)-s.i >= len(x) && string(s.b[s.i:s.i+len(x)]) == x {
		s.i += len(x)
		return true
	}
	return false
}

// plain reports whether c stands for itself in a string encoding/json
// writes: printable ASCII other than the quote, backslash and the three
// characters it escapes for HTML.
func plain(c byte) bool {
	return c >= 0x20 && c < 0x7f && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
}

// str accepts a string of plain characters; nonEmpty for omitempty fields,
// whose empty value is never written.
func (s *scanner) str(nonEmpty bool) bool {
	_, ok := s.strBytes(nonEmpty)
	return ok
}

func (s *scanner) strBytes(nonEmpty bool) ([]byte, bool) {
	if s.i >= len(s.b) || s.b[s.i] != '"' {
		return nil, false
	}
	start := s.i + 1
	for j := start; j < len(s.b); j++ {
		c := s.b[j]
		if c == '"' {
			if nonEmpty && j == start {
				return nil, false
			}
			s.i = j + 1
			return s.b[start:j], true
		}
		if !plain(c) {
			return nil, false
		}
	}
	return nil, false
}

func (s *scanner) digits() []byte {
	start := s.i
	if s.i < len(s.b) && s.b[s.i] == '-' {
		s.i++
	}
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		s.i++
	}
	return s.b[start:s.i]
}

func (s *scanner) uint() (uint64, bool) {
	d := s.digits()
	n, err := strconv.ParseUint(string(d), 10, 64)
	return n, err == nil && strconv.FormatUint(n, 10) == string(d)
}

func (s *scanner) int() bool {
	d := s.digits()
	n, err := strconv.ParseInt(string(d), 10, strconv.IntSize)
	return err == nil && strconv.FormatInt(n, 10) == string(d)
}

// time accepts what time.Time.MarshalJSON writes for a UTC time.
func (s *scanner) time() bool {
	v, ok := s.strBytes(true)
	if !ok {
		return false
	}
	t, err := time.Parse(time.RFC3339Nano, string(v))
	return err == nil && t.Year() >= 0 && t.Year() <= 9999 && t.UTC().Format(time.RFC3339Nano) == string(v)
}

// data accepts a compact JSON object that encoding/json would copy
// unchanged: no whitespace between tokens and nothing it escapes.
func (s *scanner) data() bool {
	if s.i >= len(s.b) || s.b[s.i] != '{' {
		return false
	}
	start, depth, inStr, esc := s.i, 0, false, false
	for j := start; j < len(s.b); j++ {
		c := s.b[j]
		switch {
		case c == '<' || c == '>' || c == '&':
			return false
		case c == 0xE2 && j+2 < len(s.b) && s.b[j+1] == 0x80 && (s.b[j+2] == 0xA8 || s.b[j+2] == 0xA9):
			return false // U+2028, U+2029
		case inStr:
			switch {
			case esc:
				esc = false
			case c == '\\':
				esc = true
			case c == '"':
				inStr = false
			}
		case c == '"':
			inStr = true
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			return false
		case c == '{' || c == '[':
			depth++
		case c == '}' || c == ']':
			depth--
			if depth == 0 {
				s.i = j + 1
				return json.Valid(s.b[start:s.i])
			}
		}
	}
	return false
}

func (s *scanner) pii() bool {
	v, ok := s.strBytes(true)
	if !ok {
		return false
	}
	raw, err := base64.StdEncoding.DecodeString(string(v))
	return err == nil && bytes.Equal([]byte(base64.StdEncoding.EncodeToString(raw)), v)
}

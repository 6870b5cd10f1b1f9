package ledger

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// The canonical leaf, written and read in one place. A leaf is what
// encoding/json makes of an Event with UTC times and compacted Data:
//
//	{"id":…,"type":…[,"tenant":…][,"subject":…],"stream":…,"revision":…,
//	"position":…,"occurred_at":…,"recorded_at":…[,"actor":…],"schema":…,
//	"data":{…}[,"pii":"base64"]}
//
// The writers and readers here know that one layout and skip reflection;
// the encoding/json forms stay the definition, and fuzz tests hold the two
// to each other byte for byte.

// AppendLeaf appends the canonical leaf of e to dst (see [Event.Leaf]).
func AppendLeaf(dst []byte, e *Event) ([]byte, error) {
	buf := compactBuffers.Get().(*bytes.Buffer)
	defer compactBuffers.Put(buf)
	d, err := leafData(buf, e, false)
	if err != nil {
		return nil, err
	}
	occurred, recorded := e.OccurredAt.UTC(), e.RecordedAt.UTC()
	for _, t := range []time.Time{occurred, recorded} {
		if y := t.Year(); y < 0 || y > 9999 {
			return nil, fmt.Errorf("%w: event %s: year %d out of range", ErrInvalid, e.ID, y)
		}
	}
	dst = appendHead(dst, e)
	dst = append(dst, `,"revision":`...)
	dst = strconv.AppendUint(dst, e.Revision, 10)
	dst = append(dst, `,"position":`...)
	dst = strconv.AppendUint(dst, e.Position, 10)
	dst = append(dst, `,"occurred_at":"`...)
	dst = occurred.AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, `","recorded_at":"`...)
	dst = recorded.AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, '"')
	dst, _ = appendTail(dst, e, d)
	return dst, nil
}

// appendHead appends the fields before the revision: id, type, tenant,
// subject and stream.
func appendHead(b []byte, e *Event) []byte {
	b = append(b, `{"id":`...)
	b = appendString(b, e.ID)
	b = append(b, `,"type":`...)
	b = appendString(b, e.Type)
	if e.Tenant != "" {
		b = append(b, `,"tenant":`...)
		b = appendString(b, e.Tenant)
	}
	if e.Subject != "" {
		b = append(b, `,"subject":`...)
		b = appendString(b, e.Subject)
	}
	b = append(b, `,"stream":`...)
	return appendString(b, e.Stream)
}

// appendTail appends the fields after the recorded time: actor, schema,
// data (d, canonical already) and pii, and the closing brace. data is
// where d starts in b.
func appendTail(b []byte, e *Event, d []byte) (_ []byte, data int) {
	if e.Actor != "" {
		b = append(b, `,"actor":`...)
		b = appendString(b, e.Actor)
	}
	b = append(b, `,"schema":`...)
	b = strconv.AppendInt(b, int64(e.Schema), 10)
	b = append(b, leafMarkData...)
	data = len(b)
	b = append(b, d...)
	if len(e.PII) > 0 {
		b = append(b, leafMarkPII...)
		b = base64.StdEncoding.AppendEncode(b, e.PII)
		b = append(b, '"')
	}
	return append(b, '}'), data
}

// compactBuffers holds scratch space for compacting payloads.
var compactBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// leafData returns e.Data as the leaf holds it: compacted, with the
// characters encoding/json escapes for HTML escaped, "{}" when empty. A
// payload that is compact already is checked to be JSON unless valid says
// Validate has parsed it. The result may be buf's bytes or e.Data itself.
func leafData(buf *bytes.Buffer, e *Event, valid bool) ([]byte, error) {
	buf.Reset()
	var d []byte
	switch {
	case len(e.Data) == 0:
		d = []byte("{}")
	case compacted(e.Data) && (valid || json.Valid(e.Data)):
		// json.Compact would copy it unchanged: most payloads come from a
		// marshaller.
		d = e.Data
	default:
		if err := json.Compact(buf, e.Data); err != nil {
			return nil, fmt.Errorf("%w: event %s: data is not JSON: %v", ErrInvalid, e.ID, err)
		}
		d = buf.Bytes()
	}
	if needsHTMLEscape(d) {
		var esc bytes.Buffer
		json.HTMLEscape(&esc, d)
		d = esc.Bytes()
	}
	return d, nil
}

// compacted reports whether the JSON text b has no whitespace outside its
// strings, the only bytes json.Compact removes.
func compacted(b []byte) bool {
	in := false
	for i := 0; i < len(b); i++ {
		switch c := b[i]; {
		case in && c == '\\':
			i++
		case c == '"':
			in = !in
		case !in && (c == ' ' || c == '\t' || c == '\n' || c == '\r'):
			return false
		}
	}
	return true
}

func needsHTMLEscape(b []byte) bool {
	for _, c := range b {
		if c == '<' || c == '>' || c == '&' || c == 0xE2 {
			return true
		}
	}
	return false
}

// appendString appends s as encoding/json quotes it (HTML-safe, invalid
// UTF-8 replaced by U+FFFD).
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// Markers of the leaf's layout. JSON strings escape '"', so the first
// occurrence of each is the envelope field, never text inside a value.
var (
	leafMarkRevPos   = []byte(`,"revision":0,"position":0,`)
	leafMarkRecorded = []byte(`,"recorded_at":"0001-01-01T00:00:00Z"`)
	leafMarkData     = []byte(`,"data":`)
	leafMarkPII      = []byte(`,"pii":"`)
)

// LeafTemplate is the leaf of an event whose revision, position and
// recorded time are not yet known: a store prepares it while the event
// waits for its place in the log, then fills those in with Append.
type LeafTemplate struct {
	b   []byte
	rp  int // offset of leafMarkRevPos
	rec int // offset of leafMarkRecorded
	d   []byte
}

// NewLeafTemplate prepares the leaf of e, which must have passed
// [Validate]; its revision, position and recorded time are ignored. e's
// strings must be valid UTF-8 and its occurred time within years 0–9999.
func NewLeafTemplate(e *Event) LeafTemplate {
	buf := compactBuffers.Get().(*bytes.Buffer)
	defer compactBuffers.Put(buf)
	d, _ := leafData(buf, e, true) // Validate parsed it
	n := 200 + len(e.ID) + len(e.Type) + len(e.Tenant) + len(e.Subject) + len(e.Stream) + len(e.Actor)
	b := make([]byte, 0, n+len(d)+(len(e.PII)+2)/3*4+4)
	b = appendHead(b, e)
	rp := len(b)
	b = append(b, leafMarkRevPos...)
	b = append(b, `"occurred_at":"`...)
	b = e.OccurredAt.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	rec := len(b)
	b = append(b, leafMarkRecorded...)
	b, data := appendTail(b, e, d)
	return LeafTemplate{b: b, rp: rp, rec: rec, d: b[data : data+len(d) : data+len(d)]}
}

// Len is the template's length, a little less than the leaf's.
func (t *LeafTemplate) Len() int { return len(t.b) }

// Data returns the payload as the leaf holds it (compacted, HTML-escaped),
// as a reader decoding the leaf would see it.
func (t *LeafTemplate) Data() json.RawMessage { return t.d }

// Append appends to dst the leaf at the given revision, position and
// recorded time (UTC); it equals Event.Leaf with those fields set.
func (t *LeafTemplate) Append(dst []byte, rev, pos uint64, recorded time.Time) []byte {
	b := t.b
	dst = append(dst, b[:t.rp]...)
	dst = append(dst, `,"revision":`...)
	dst = strconv.AppendUint(dst, rev, 10)
	dst = append(dst, `,"position":`...)
	dst = strconv.AppendUint(dst, pos, 10)
	dst = append(dst, ',')
	dst = append(dst, b[t.rp+len(leafMarkRevPos):t.rec]...)
	dst = append(dst, `,"recorded_at":"`...)
	dst = recorded.AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, '"')
	return append(dst, b[t.rec+len(leafMarkRecorded):]...)
}

// DecodeLeaf decodes a stored leaf. Leaves are canonical, so a reader of
// their one layout does without encoding/json's reflection; anything it
// does not expect goes to encoding/json. Unlike [ParseLeaf] it
// does not check the leaf is canonical.
func DecodeLeaf(b []byte) (Event, error) {
	if e, ok := decodeLeaf(b); ok {
		return e, nil
	}
	var e Event
	if err := json.Unmarshal(b, &e); err != nil {
		return Event{}, fmt.Errorf("%w: leaf: %v", ErrInvalid, err)
	}
	return e, nil
}

// ParseLeaf decodes a canonical leaf back into an event and checks that it
// re-encodes to the same bytes, so a bundle line with extra or reordered
// fields is refused rather than silently accepted.
func ParseLeaf(b []byte) (Event, error) {
	if _, ok := LeafPosition(b); ok {
		if e, ok := decodeLeaf(b); ok {
			return e, nil
		}
	}
	return parseLeafJSON(b)
}

// parseLeafJSON is ParseLeaf by encoding/json: decode strictly, encode
// again, compare.
func parseLeafJSON(b []byte) (Event, error) {
	var e Event
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		return Event{}, fmt.Errorf("%w: leaf: %v", ErrInvalid, err)
	}
	again, err := e.Leaf()
	if err != nil {
		return Event{}, err
	}
	if !bytes.Equal(again, b) {
		return Event{}, fmt.Errorf("%w: leaf at position %d is not in canonical form", ErrInvalid, e.Position)
	}
	return e, nil
}

// leafScanner reads a leaf front to back; ok turns false at the first
// thing it does not expect.
type leafScanner struct {
	b  []byte
	i  int
	ok bool
}

// lit consumes x if it comes next.
func (s *leafScanner) lit(x string) bool {
	if s.ok && len(s.b)-s.i >= len(x) && string(s.b[s.i:s.i+len(x)]) == x {
		s.i += len(x)
		return true
	}
	return false
}

func (s *leafScanner) need(x string) {
	if !s.lit(x) {
		s.ok = false
	}
}

// raw reads a JSON string and returns its bytes between the quotes, and
// whether they hold an escape.
func (s *leafScanner) raw() (v []byte, escaped bool) {
	if !s.ok || s.i >= len(s.b) || s.b[s.i] != '"' {
		s.ok = false
		return nil, false
	}
	start := s.i + 1
	end := bytes.IndexByte(s.b[start:], '"')
	if end >= 0 && bytes.IndexByte(s.b[start:start+end], '\\') < 0 {
		// The common case: no escape, so the first quote ends it.
		s.i = start + end + 1
		return s.b[start : start+end], false
	}
	for j := start; j < len(s.b); j++ {
		switch s.b[j] {
		case '"':
			s.i = j + 1
			return s.b[start:j], true
		case '\\':
			j++
		}
	}
	s.ok = false
	return nil, false
}

// str reads a JSON string, copying it out of the leaf (which may be
// mapped memory); escapes go to encoding/json.
func (s *leafScanner) str() string {
	start := s.i
	v, escaped := s.raw()
	if !s.ok {
		return ""
	}
	if !escaped {
		return string(v)
	}
	var out string
	if json.Unmarshal(s.b[start:s.i], &out) != nil {
		s.ok = false
	}
	return out
}

// view reads a JSON string without escapes and returns its bytes in the
// leaf.
func (s *leafScanner) view() []byte {
	v, escaped := s.raw()
	if escaped {
		s.ok = false
	}
	return v
}

// plain reports whether c stands for itself in a string encoding/json
// writes: printable ASCII other than the quote, backslash and the three
// characters it escapes for HTML.
func plain(c byte) bool {
	return c >= 0x20 && c < 0x7f && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
}

// plainStr reads a string of plain characters only; nonEmpty for
// omitempty fields, whose empty value is never written.
func (s *leafScanner) plainStr(nonEmpty bool) []byte {
	if !s.ok || s.i >= len(s.b) || s.b[s.i] != '"' {
		s.ok = false
		return nil
	}
	start := s.i + 1
	for j := start; j < len(s.b); j++ {
		c := s.b[j]
		if c == '"' {
			if nonEmpty && j == start {
				break
			}
			s.i = j + 1
			return s.b[start:j]
		}
		if !plain(c) {
			break
		}
	}
	s.ok = false
	return nil
}

func (s *leafScanner) digits() []byte {
	start := s.i
	if s.i < len(s.b) && s.b[s.i] == '-' {
		s.i++
	}
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		s.i++
	}
	return s.b[start:s.i]
}

// uint reads an unsigned integer.
func (s *leafScanner) uint() uint64 {
	if !s.ok {
		return 0
	}
	d := s.digits()
	n, err := strconv.ParseUint(string(d), 10, 64)
	if err != nil {
		s.ok = false
	}
	return n
}

// canonUint reads an unsigned integer as strconv writes it (no leading
// zero, no sign).
func (s *leafScanner) canonUint() uint64 {
	if !s.ok {
		return 0
	}
	d := s.digits()
	n, err := strconv.ParseUint(string(d), 10, 64)
	if err != nil || strconv.FormatUint(n, 10) != string(d) {
		s.ok = false
	}
	return n
}

// canonInt reads an int as strconv writes it.
func (s *leafScanner) canonInt() {
	if !s.ok {
		return
	}
	d := s.digits()
	n, err := strconv.ParseInt(string(d), 10, strconv.IntSize)
	if err != nil || strconv.FormatInt(n, 10) != string(d) {
		s.ok = false
	}
}

// time reads a UTC time as Event.Leaf writes it,
// "2006-01-02T15:04:05.999999999Z"; other layouts go to time.Parse.
func (s *leafScanner) time() time.Time {
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

// canonTime reads a time exactly as Event.Leaf writes it.
func (s *leafScanner) canonTime() {
	v := s.plainStr(true)
	if !s.ok {
		return
	}
	t, err := time.Parse(time.RFC3339Nano, string(v))
	if err != nil || t.Year() < 0 || t.Year() > 9999 || t.UTC().Format(time.RFC3339Nano) != string(v) {
		s.ok = false
	}
}

// parseUTC reads "2006-01-02T15:04:05.999999999Z" without time.Parse.
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

// decodeLeaf decodes a leaf laid out exactly as Event.Leaf writes it, or
// reports false.
func decodeLeaf(b []byte) (Event, bool) {
	var e Event
	s := &leafScanner{b: b, ok: true}
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
		return Event{}, false
	}
	// Data is an object, so a leaf ending in `"}` ends with the pii
	// string, whose base64 holds no quote: its marker is the last one.
	end := len(b) - 1
	if len(b) < 2 || b[end] != '}' {
		return Event{}, false
	}
	if b[end-1] == '"' {
		m := bytes.LastIndex(b, leafMarkPII)
		if m < s.i {
			return Event{}, false
		}
		pii, err := base64.StdEncoding.DecodeString(string(b[m+len(leafMarkPII) : end-1]))
		if err != nil {
			return Event{}, false
		}
		e.PII = pii
		end = m
	}
	if end <= s.i {
		return Event{}, false
	}
	e.Data = json.RawMessage(bytes.Clone(b[s.i:end]))
	return e, true
}

// LeafHead is the start of a leaf, read without decoding it: the fields a
// reader uses to route an event, as bytes of the leaf.
type LeafHead struct {
	ID, Type                []byte
	Tenant, Subject, Stream []byte
	Position                uint64
}

// ReadLeafHead reads tenant, subject, stream and position from the
// canonical start of a leaf. ok is false for anything else, including a
// string with an escape in it; the caller then decodes the leaf.
func ReadLeafHead(b []byte) (h LeafHead, ok bool) {
	s := &leafScanner{b: b, ok: true}
	s.need(`{"id":`)
	h.ID = s.view()
	s.need(`,"type":`)
	h.Type = s.view()
	if s.lit(`,"tenant":`) {
		h.Tenant = s.view()
	}
	if s.lit(`,"subject":`) {
		h.Subject = s.view()
	}
	s.need(`,"stream":`)
	h.Stream = s.view()
	s.need(`,"revision":`)
	s.uint()
	s.need(`,"position":`)
	h.Position = s.uint()
	return h, s.ok
}

// LeafPosition is a fast, conservative check that line is a canonical
// leaf, what ParseLeaf accepts, and returns its position. It answers true
// only when certain: plain ASCII strings without escapes, compact data
// without characters encoding/json would escape, and every field in the
// order Event.Leaf writes them. Anything else returns false and the caller
// asks ParseLeaf, which decides.
func LeafPosition(line []byte) (int64, bool) {
	s := &leafScanner{b: line, ok: true}
	s.need(`{"id":`)
	s.plainStr(false)
	s.need(`,"type":`)
	s.plainStr(false)
	if s.lit(`,"tenant":`) {
		s.plainStr(true)
	}
	if s.lit(`,"subject":`) {
		s.plainStr(true)
	}
	s.need(`,"stream":`)
	s.plainStr(false)
	s.need(`,"revision":`)
	s.canonUint()
	s.need(`,"position":`)
	pos := s.canonUint()
	if pos > 1<<62 {
		return 0, false
	}
	s.need(`,"occurred_at":`)
	s.canonTime()
	s.need(`,"recorded_at":`)
	s.canonTime()
	if s.lit(`,"actor":`) {
		s.plainStr(true)
	}
	s.need(`,"schema":`)
	s.canonInt()
	s.need(`,"data":`)
	s.data()
	if s.lit(`,"pii":`) {
		s.pii()
	}
	s.need(`}`)
	if !s.ok || s.i != len(s.b) {
		return 0, false
	}
	return int64(pos), true
}

// data accepts a compact JSON object that encoding/json would copy
// unchanged: no whitespace between tokens and nothing it escapes.
func (s *leafScanner) data() {
	if !s.ok || s.i >= len(s.b) || s.b[s.i] != '{' {
		s.ok = false
		return
	}
	start, depth, inStr, esc := s.i, 0, false, false
	for j := start; j < len(s.b); j++ {
		c := s.b[j]
		switch {
		case c == '<' || c == '>' || c == '&':
			s.ok = false
			return
		case c == 0xE2 && j+2 < len(s.b) && s.b[j+1] == 0x80 && (s.b[j+2] == 0xA8 || s.b[j+2] == 0xA9):
			s.ok = false // U+2028, U+2029
			return
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
			s.ok = false
			return
		case c == '{' || c == '[':
			depth++
		case c == '}' || c == ']':
			depth--
			if depth == 0 {
				s.i = j + 1
				s.ok = json.Valid(s.b[start:s.i])
				return
			}
		}
	}
	s.ok = false
}

// pii accepts base64 as encoding/json writes a byte slice.
func (s *leafScanner) pii() {
	v := s.plainStr(true)
	if !s.ok {
		return
	}
	raw, err := base64.StdEncoding.DecodeString(string(v))
	if err != nil || !bytes.Equal([]byte(base64.StdEncoding.EncodeToString(raw)), v) {
		s.ok = false
	}
}

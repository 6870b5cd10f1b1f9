package bolt

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/heed/heed/ledger"
)

// The canonical leaf of an event is computed by the appender, before the
// sequencer knows the revision, position and recorded time, with those
// fields zero; the sequencer splices the real values in. JSON strings escape
// '"', so the first occurrence of each marker is the envelope field and not
// text inside a value, and Data comes after both.
var (
	markRevPos   = []byte(`,"revision":0,"position":0,`)
	markRecorded = []byte(`,"recorded_at":"0001-01-01T00:00:00Z"`)
	markData     = []byte(`,"data":`)
	markPII      = []byte(`,"pii":"`)
)

// proposal is an event prepared for the sequencer.
type proposal struct {
	ev   ledger.Event // as it will be returned, minus the assigned fields
	tmpl []byte       // canonical leaf with zero revision, position and time
	rp   int          // offset of markRevPos in tmpl
	rec  int          // offset of markRecorded in tmpl
}

// propose validates e for stream and prepares its leaf template.
func propose(stream string, e ledger.Event) (proposal, error) {
	if err := ledger.Validate(&e); err != nil {
		return proposal{}, err
	}
	if e.ID == "" {
		e.ID = ledger.NewID()
	}
	// Invalid UTF-8 would be replaced in the leaf, which then no longer
	// decodes to a canonical leaf of the same event.
	for _, f := range []string{stream, e.ID, e.Type, e.Tenant, e.Subject, e.Actor} {
		if !utf8.ValidString(f) {
			return proposal{}, fmt.Errorf("%w: %s: envelope field is not valid UTF-8", ledger.ErrInvalid, e.Type)
		}
	}
	if y := e.OccurredAt.UTC().Year(); y < 0 || y > 9999 {
		return proposal{}, fmt.Errorf("%w: %s: occurred_at year %d out of range", ledger.ErrInvalid, e.Type, y)
	}
	e.Stream = stream
	e.Revision, e.Position, e.RecordedAt = 0, 0, time.Time{}
	e.OccurredAt = e.OccurredAt.UTC()
	if len(e.PII) == 0 {
		e.PII = nil
	}
	tmpl, rp, rec, data, end, err := template(&e)
	if err != nil {
		return proposal{}, err
	}
	// The returned event carries Data exactly as the leaf holds it
	// (compacted, HTML-escaped), as a reader decoding the leaf would.
	e.Data = json.RawMessage(tmpl[data:end:end])
	return proposal{ev: e, tmpl: tmpl, rp: rp, rec: rec}, nil
}

// buffers holds scratch space for compacting payloads.
var buffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// template encodes e as Event.Leaf would with zero revision, position and
// recorded time, without reflection, and returns where the spliced fields
// and Data are. e must have passed ledger.Validate. FuzzLeaf holds it to
// Event.Leaf byte for byte.
func template(e *ledger.Event) (tmpl []byte, rp, rec, data, end int, err error) {
	buf := buffers.Get().(*bytes.Buffer)
	defer buffers.Put(buf)
	buf.Reset()
	var d []byte
	switch {
	case len(e.Data) == 0:
		d = []byte("{}")
	case compacted(e.Data):
		// Validate has parsed it, so it is JSON, and json.Compact would
		// copy it unchanged: most payloads come from a marshaller.
		d = e.Data
	default:
		if err := json.Compact(buf, e.Data); err != nil {
			return nil, 0, 0, 0, 0, fmt.Errorf("%w: event %s: data is not JSON: %v", ledger.ErrInvalid, e.ID, err)
		}
		d = buf.Bytes()
	}
	if needsHTMLEscape(d) {
		var esc bytes.Buffer
		json.HTMLEscape(&esc, d)
		d = esc.Bytes()
	}
	// The fixed parts (names, markers, times) take under 200 bytes; the
	// strings may grow by escaping, rarely.
	n := 200 + len(e.ID) + len(e.Type) + len(e.Tenant) + len(e.Subject) + len(e.Stream) + len(e.Actor)
	b := make([]byte, 0, n+len(d)+(len(e.PII)+2)/3*4+4)
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
	b = appendString(b, e.Stream)
	rp = len(b)
	b = append(b, markRevPos...)
	b = append(b, `"occurred_at":"`...)
	b = e.OccurredAt.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	rec = len(b)
	b = append(b, markRecorded...)
	if e.Actor != "" {
		b = append(b, `,"actor":`...)
		b = appendString(b, e.Actor)
	}
	b = append(b, `,"schema":`...)
	b = strconv.AppendInt(b, int64(e.Schema), 10)
	b = append(b, markData...)
	data = len(b)
	b = append(b, d...)
	end = len(b)
	if len(e.PII) > 0 {
		b = append(b, markPII...)
		b = base64.StdEncoding.AppendEncode(b, e.PII)
		b = append(b, '"')
	}
	b = append(b, '}')
	return b, rp, rec, data, end, nil
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

// appendString appends s as encoding/json quotes it (HTML-safe). s is
// valid UTF-8: propose refuses anything else.
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

// leaf appends to dst the canonical leaf of p at the given revision,
// position and recorded time; it equals ev.Leaf() with those fields set.
func (p *proposal) leaf(dst []byte, rev, pos uint64, recorded time.Time) []byte {
	t := p.tmpl
	dst = append(dst, t[:p.rp]...)
	dst = append(dst, `,"revision":`...)
	dst = strconv.AppendUint(dst, rev, 10)
	dst = append(dst, `,"position":`...)
	dst = strconv.AppendUint(dst, pos, 10)
	dst = append(dst, ',')
	dst = append(dst, t[p.rp+len(markRevPos):p.rec]...)
	dst = append(dst, `,"recorded_at":"`...)
	dst = recorded.AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, '"')
	return append(dst, t[p.rec+len(markRecorded):]...)
}

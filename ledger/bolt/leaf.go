package bolt

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
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
	e.Stream = stream
	e.Revision, e.Position, e.RecordedAt = 0, 0, time.Time{}
	e.OccurredAt = e.OccurredAt.UTC()
	if len(e.PII) == 0 {
		e.PII = nil
	}
	tmpl, err := e.Leaf()
	if err != nil {
		return proposal{}, err
	}
	rp := bytes.Index(tmpl, markRevPos)
	rec := bytes.Index(tmpl, markRecorded)
	data := rec + bytes.Index(tmpl[rec:], markData) + len(markData)
	end := len(tmpl) - 1
	if e.PII != nil {
		end = bytes.LastIndex(tmpl, markPII)
	}
	if rp < 0 || rec < rp || data < rec+len(markData) || end < data {
		return proposal{}, fmt.Errorf("bolt: leaf layout changed: %.80s", tmpl)
	}
	// The returned event carries Data exactly as the leaf holds it
	// (compacted, HTML-escaped), as a reader decoding the leaf would.
	e.Data = json.RawMessage(tmpl[data:end:end])
	return proposal{ev: e, tmpl: tmpl, rp: rp, rec: rec}, nil
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

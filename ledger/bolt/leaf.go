package bolt

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

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
	e.Stream = stream
	e.Revision, e.Position, e.RecordedAt = 0, 0, time.Time{}
	e.OccurredAt = e.OccurredAt.UTC()
	if len(e.Data) == 0 {
		e.Data = json.RawMessage("{}")
	} else {
		var buf bytes.Buffer
		if err := json.Compact(&buf, e.Data); err != nil {
			return proposal{}, fmt.Errorf("%w: %s data: %v", ledger.ErrInvalid, e.Type, err)
		}
		e.Data = buf.Bytes()
	}
	if len(e.PII) == 0 {
		e.PII = nil
	}
	tmpl, err := e.Leaf()
	if err != nil {
		return proposal{}, err
	}
	rp := bytes.Index(tmpl, markRevPos)
	rec := bytes.Index(tmpl, markRecorded)
	if rp < 0 || rec < rp {
		return proposal{}, fmt.Errorf("bolt: leaf layout changed: %.80s", tmpl)
	}
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

package bolt

import (
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/heed/heed/ledger"
)

// proposal is an event prepared for the sequencer: its leaf is made by the
// appender, before the sequencer knows the revision, position and
// recorded time, which it fills in (see ledger.LeafTemplate).
type proposal struct {
	ev   ledger.Event // as it will be returned, minus the assigned fields
	tmpl ledger.LeafTemplate
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
	tmpl := ledger.NewLeafTemplate(&e)
	// The returned event carries Data exactly as the leaf holds it
	// (compacted, HTML-escaped), as a reader decoding the leaf would.
	e.Data = tmpl.Data()
	return proposal{ev: e, tmpl: tmpl}, nil
}

// leaf appends to dst the canonical leaf of p at the given revision,
// position and recorded time; it equals ev.Leaf() with those fields set.
func (p *proposal) leaf(dst []byte, rev, pos uint64, recorded time.Time) []byte {
	return p.tmpl.Append(dst, rev, pos, recorded)
}

// Package ledger defines heed's immutable event log: the event envelope and
// catalogue, the Store contract every backend satisfies, and its errors.
//
// Stores live in sub-packages (ledger/bolt, ledger/mem, ledger/kurrent); the
// conformance suite that defines correct behaviour is ledger/storetest.
package ledger

import (
	"bytes"
	"encoding/json"
	"time"

	"github.com/google/uuid"
)

// Event is one immutable fact in the log.
//
// A caller proposing an event fills ID (optional: the store assigns a UUIDv7
// when empty), Type, Tenant, Subject, OccurredAt, Actor, Schema, Data and PII.
// The store fills Stream, Revision, Position and RecordedAt.
type Event struct {
	// ID identifies the event; a retried append with the same ID and content
	// is a no-op that returns the original position.
	ID string `json:"id"`
	// Type names the event in the catalogue, e.g. "ConsentGranted".
	Type string `json:"type"`
	// Tenant is the business the event belongs to; empty for global facts
	// such as a national suppression list.
	Tenant string `json:"tenant,omitempty"`
	// Subject is the keyed pseudonym of the E.164 number, never the number.
	Subject string `json:"subject,omitempty"`
	// Stream is the stream the event was appended to.
	Stream string `json:"stream"`
	// Revision is the event's 1-based index within its stream.
	Revision uint64 `json:"revision"`
	// Position is the event's 1-based, gap-free index in the global log.
	Position uint64 `json:"position"`
	// OccurredAt is business time: when the fact happened in the world.
	OccurredAt time.Time `json:"occurred_at"`
	// RecordedAt is ledger time: when the store accepted the event.
	RecordedAt time.Time `json:"recorded_at"`
	// Actor is the API key id or process that wrote the event.
	Actor string `json:"actor,omitempty"`
	// Schema is the version of the payload layout for Type.
	Schema int `json:"schema"`
	// Data is the JSON payload, shaped by the catalogue entry for Type.
	Data json.RawMessage `json:"data"`
	// PII holds personal fields sealed with the subject's data key.
	PII []byte `json:"pii,omitempty"`
	// Replayed is set on the events Store.Append returns when the append
	// was a no-op: a retry of events an earlier append stored. It is never
	// stored, and false on every event read.
	Replayed bool `json:"-"`
}

// Event ids are public (they are in every audit bundle), so their random
// bits may come from uuid's pool, read from crypto/rand in batches rather
// than one read per id on the append path.
func init() { uuid.EnableRandPool() }

// NewID returns a fresh UUIDv7 string, time-ordered so ids sort roughly by
// creation.
func NewID() string {
	return uuid.Must(uuid.NewV7()).String()
}

// Leaf returns the canonical encoding of e: the exact bytes hashed into the
// Merkle tree and written as one line of an audit bundle. Times are UTC with
// nanoseconds and Data is compacted, so the encoding is a pure function of
// the event's content (see [AppendLeaf]).
func (e *Event) Leaf() ([]byte, error) {
	return AppendLeaf(make([]byte, 0, 256+len(e.Data)+len(e.PII)*4/3), e)
}

// SameContent reports whether two proposals for the same id carry the same
// content, ignoring what the store assigns (stream position, revision,
// recorded time). It decides whether a retried append is a no-op or a
// conflict.
func SameContent(a, b *Event) bool {
	if a.ID != b.ID || a.Type != b.Type || a.Tenant != b.Tenant || a.Subject != b.Subject ||
		a.Actor != b.Actor || a.Schema != b.Schema || !a.OccurredAt.Equal(b.OccurredAt) ||
		!bytes.Equal(a.PII, b.PII) {
		return false
	}
	return jsonEqual(a.Data, b.Data)
}

// jsonEqual compares two payloads in the form Leaf encodes them (compacted,
// with <, > and & escaped), so a retry of a stored event matches whatever
// escaping the caller used.
func jsonEqual(a, b json.RawMessage) bool {
	if bytes.Equal(a, b) {
		return true
	}
	ca, errA := json.Marshal(a)
	cb, errB := json.Marshal(b)
	return errA == nil && errB == nil && bytes.Equal(ca, cb)
}

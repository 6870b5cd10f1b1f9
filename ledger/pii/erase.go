package pii

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/heed/heed/ledger"
)

// Appender appends events; every ledger.Store is one.
type Appender interface {
	Append(ctx context.Context, stream string, expected ledger.Expected, events []ledger.Event) ([]ledger.Event, error)
}

// erasureIDs namespaces the ids of SubjectErased events.
var erasureIDs = uuid.MustParse("6b1c3a9e-0c52-4c0e-9a4e-5f2d1e7b8a01")

// EraseSubject destroys the subject's data key, then appends SubjectErased
// to ledger.SubjectStream(subject), and returns the appended event.
//
// The key goes first. Had the event gone first, a crash between the two
// steps would leave the log stating that a key was destroyed while it
// still exists, and the data still readable. This way a crash leaves the
// key destroyed without the event: privacy holds, and the caller, which
// saw an error, retries. The retry finds the erasure time recorded with
// the destroyed key and appends an event with the same id (derived from
// subject and time), so any number of retries append exactly one event.
func EraseSubject(ctx context.Context, log Appender, keys *Keys, subject, tenant, actor, reason string) (ledger.Event, error) {
	at, err := keys.EraseContext(ctx, subject)
	if err != nil {
		return ledger.Event{}, err
	}
	e, err := ledger.NewEvent(tenant, subject, at, ledger.SubjectErased{Reason: reason})
	if err != nil {
		return ledger.Event{}, err
	}
	e.ID = uuid.NewSHA1(erasureIDs, []byte(subject+"\x00"+at.Format(time.RFC3339Nano))).String()
	e.Actor = actor
	out, err := log.Append(ctx, ledger.SubjectStream(subject), ledger.Any(), []ledger.Event{e})
	if err != nil {
		return ledger.Event{}, fmt.Errorf("pii: key destroyed but SubjectErased not yet recorded (retry): %w", err)
	}
	return out[0], nil
}

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

// ErasureStream is where a tenant's erasure of a subject is recorded: the
// tenant's contact stream for the subject, so that it bears on that
// tenant's state only. Personal fields kept for no tenant (Owner("", s))
// are erased in the subject's own stream.
func ErasureStream(tenant, subject string) string {
	if tenant == "" {
		return ledger.SubjectStream(subject)
	}
	return ledger.ContactStream(tenant, subject)
}

// EraseSubject destroys tenant's data key for the subject (the key named
// Owner(tenant, subject)), then appends SubjectErased to
// ErasureStream(tenant, subject), and returns the appended event. Other
// tenants' keys for the subject are untouched.
//
// The key goes first. Had the event gone first, a crash between the two
// steps would leave the log stating that a key was destroyed while it
// still exists, and the data still readable. This way a crash leaves the
// key destroyed without the event: privacy holds, and the caller, which
// saw an error, retries. The retry finds the erasure time recorded with
// the destroyed key and appends an event with the same id (derived from
// owner, time and actor), so any number of retries append exactly one
// event. Another actor asking for an erasure already done (a customer
// erasing everywhere after a business erased) records its own request,
// with the time the key was destroyed.
func EraseSubject(ctx context.Context, log Appender, keys *Keys, subject, tenant, actor, reason string) (ledger.Event, error) {
	return Erase(ctx, log, keys, subject, tenant, actor, ledger.SubjectErased{Reason: reason})
}

// Erase is EraseSubject recording the SubjectErased given (with its via).
func Erase(ctx context.Context, log Appender, keys *Keys, subject, tenant, actor string, what ledger.SubjectErased) (ledger.Event, error) {
	owner := Owner(tenant, subject)
	at, err := keys.EraseContext(ctx, owner)
	if err != nil {
		return ledger.Event{}, err
	}
	e, err := ledger.NewEvent(tenant, subject, at, what)
	if err != nil {
		return ledger.Event{}, err
	}
	e.ID = uuid.NewSHA1(erasureIDs, []byte(owner+"\x00"+at.Format(time.RFC3339Nano)+"\x00"+actor)).String()
	e.Actor = actor
	out, err := log.Append(ctx, ErasureStream(tenant, subject), ledger.Any(), []ledger.Event{e})
	if err != nil {
		return ledger.Event{}, fmt.Errorf("pii: key destroyed but SubjectErased not yet recorded (retry): %w", err)
	}
	return out[0], nil
}

// EraseEverywhere erases the subject at every tenant named, and the
// personal fields kept for no tenant: what a customer who proved the
// number asks for. It stops at the first failure; a retry repeats the
// erasures done (each a no-op) and goes on.
func EraseEverywhere(ctx context.Context, log Appender, keys *Keys, subject string, tenants []string, actor, reason string) ([]ledger.Event, error) {
	return EraseAll(ctx, log, keys, subject, tenants, actor, ledger.SubjectErased{Reason: reason})
}

// EraseAll is EraseEverywhere recording the SubjectErased given.
func EraseAll(ctx context.Context, log Appender, keys *Keys, subject string, tenants []string, actor string, what ledger.SubjectErased) ([]ledger.Event, error) {
	var out []ledger.Event
	for _, t := range append([]string{""}, tenants...) {
		e, err := Erase(ctx, log, keys, subject, t, actor, what)
		if err != nil {
			return out, err
		}
		out = append(out, e)
	}
	return out, nil
}

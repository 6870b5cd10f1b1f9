package ledger

import (
	"context"
	"errors"
	"fmt"
)

// Sentinel errors returned by every Store. Implementations wrap them with
// %w and add context; callers test with errors.Is.
var (
	// ErrWrongRevision means the stream was not at the expected revision.
	ErrWrongRevision = errors.New("ledger: wrong expected revision")
	// ErrIDConflict means an event id was reused with different content.
	ErrIDConflict = errors.New("ledger: event id reused with different content")
	// ErrNotFound means the stream or position does not exist.
	ErrNotFound = errors.New("ledger: not found")
	// ErrClosed means the store was closed.
	ErrClosed = errors.New("ledger: store closed")
	// ErrInvalid means an event failed validation (unknown type or schema,
	// malformed payload, missing field).
	ErrInvalid = errors.New("ledger: invalid event")
	// ErrBehind means the store holds fewer events than a checkpoint it
	// signed: its data was rolled back, truncated or replaced.
	ErrBehind = errors.New("ledger: store is behind its own signed checkpoint")
	// ErrDiverged means the store's tree at a signed size hashes to
	// another root than the one signed: its history was rewritten.
	ErrDiverged = errors.New("ledger: store's history differs from its signed checkpoint")
)

// Expected is the revision a stream must be at for an append to succeed.
// Revisions count events: a stream holding r events is at revision r, and a
// stream that does not exist is at revision 0.
type Expected struct {
	kind     expectKind
	revision uint64
}

type expectKind uint8

const (
	expectAny expectKind = iota
	expectExact
)

// Any accepts the append whatever the stream's revision.
func Any() Expected { return Expected{kind: expectAny} }

// NoStream accepts the append only if the stream has no events.
func NoStream() Expected { return Expected{kind: expectExact, revision: 0} }

// Exact accepts the append only if the stream is at revision r.
func Exact(r uint64) Expected { return Expected{kind: expectExact, revision: r} }

// IsAny reports whether e accepts any revision.
func (e Expected) IsAny() bool { return e.kind == expectAny }

// Revision returns the exact revision e requires; meaningless when IsAny.
func (e Expected) Revision() uint64 { return e.revision }

// Check returns nil if a stream at revision current satisfies e, and an
// error wrapping ErrWrongRevision otherwise.
func (e Expected) Check(stream string, current uint64) error {
	if e.kind == expectAny || current == e.revision {
		return nil
	}
	return fmt.Errorf("%w: stream %s is at %d, expected %d", ErrWrongRevision, stream, current, e.revision)
}

func (e Expected) String() string {
	if e.kind == expectAny {
		return "any"
	}
	return fmt.Sprintf("exact(%d)", e.revision)
}

// Store is the event log every backend implements. All methods are safe for
// concurrent use.
type Store interface {
	// Append writes events to stream atomically if the stream is at the
	// expected revision, and returns them as stored (with stream, revision,
	// position and recorded time). It returns only after the events are
	// durable. Events with empty ids are given fresh UUIDv7 ids. If every
	// event's id is already stored in stream with the same content, the
	// append is a no-op, whatever revision it expected, that returns the
	// stored events with Replayed set; an id stored with different content,
	// or an append mixing stored and new ids, fails with ErrIDConflict.
	Append(ctx context.Context, stream string, expected Expected, events []Event) ([]Event, error)
	// ReadStream returns up to limit events of stream with revision >= from
	// (1-based), in revision order; a limit <= 0 means no limit, every
	// event to the stream's end. A stream with no events yields
	// ErrNotFound.
	ReadStream(ctx context.Context, stream string, from uint64, limit int) ([]Event, error)
	// StreamRevision returns the stream's current revision (0 if absent).
	StreamRevision(ctx context.Context, stream string) (uint64, error)
	// ReadAll returns up to limit events of the global log with position >=
	// from (1-based), in position order; a limit <= 0 means no limit, every
	// event to the head.
	ReadAll(ctx context.Context, from uint64, limit int) ([]Event, error)
	// Follow calls fn for every event with position >= from, in order: first
	// those already stored, then each new one as it is appended, with no gap
	// or duplicate at the hand-off. It returns when ctx is done (ctx.Err()),
	// when fn returns an error (that error), or when the store closes
	// (ErrClosed).
	Follow(ctx context.Context, from uint64, fn func(Event) error) error
	// Head returns the position of the last event, 0 when the log is empty.
	Head(ctx context.Context) (uint64, error)
	// Close releases the store. Calls after Close fail with ErrClosed.
	Close() error
}

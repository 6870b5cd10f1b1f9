package smpp

import (
	"errors"
	"fmt"

	"github.com/heed/heed/smpp/pdu"
)

// Kind says what a failed submit means for the message, which is what a
// caller has to branch on.
type Kind int

const (
	// NotSent: the SMSC never accepted the message (no bind, refused
	// with a temporary status until retries ran out, client closed). It is
	// safe to submit again.
	NotSent Kind = iota + 1
	// Permanent: the SMSC refused the message with a permanent status.
	// Sending it again would fail again.
	Permanent
	// Unknown: the request was written but no answer came (the link
	// dropped, or the response timed out). The message may or may not be
	// on its way; it must not be resent blindly.
	Unknown
)

func (k Kind) String() string {
	switch k {
	case NotSent:
		return "not sent"
	case Permanent:
		return "permanent failure"
	case Unknown:
		return "outcome unknown"
	}
	return fmt.Sprintf("kind %d", int(k))
}

// Sentinel causes wrapped by [Error].
var (
	ErrClosed      = errors.New("smpp: client closed")
	ErrBindRefused = errors.New("smpp: bind refused")
	ErrLinkDropped = errors.New("smpp: link dropped")
	ErrTimeout     = errors.New("smpp: response timed out")
	ErrRefused     = errors.New("smpp: request refused")
	ErrNotBound    = errors.New("smpp: not bound")
	// ErrUnbound: the link ended after we unbound it (it also wraps
	// ErrClosed). A request still unanswered then is of unknown outcome,
	// but the link was not dropped and is not bound again.
	ErrUnbound = errors.New("smpp: unbound")
)

// Error is the error every failed submit returns.
type Error struct {
	Kind   Kind
	Op     string     // "bind", "submit_sm", ...
	Status pdu.Status // the SMSC's command_status, if it sent one
	Part   int        // the part (from 1) that failed, 0 if not part-specific
	Parts  int
	Err    error // the cause: a sentinel above, a network or context error
}

func (e *Error) Error() string {
	s := "smpp: " + e.Op
	if e.Parts > 1 {
		s += fmt.Sprintf(" part %d/%d", e.Part, e.Parts)
	}
	s += ": " + e.Kind.String()
	if e.Status != pdu.OK {
		s += ": status " + e.Status.String()
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// KindOf returns the [Kind] of err, or 0 if err is not an [*Error].
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return 0
}

package bundle

import (
	"errors"
	"fmt"
)

// Format is the format name written in, and required of, the header.
const Format = "heed-bundle/1"

// Header is the first line of a bundle.
type Header struct {
	Format string `json:"format"`
	Origin string `json:"origin"`
	Key    string `json:"key"`
	// Keys, present once the signing key has rotated, lists every key
	// that signed checkpoints, Key first; each later one is announced by a
	// checkpoint signed by the one before it and by itself.
	Keys        []string `json:"keys,omitempty"`
	Events      int64    `json:"events"`
	Checkpoints int64    `json:"checkpoints"`
}

// checkpointLine is one checkpoint line of a bundle.
type checkpointLine struct {
	Checkpoint string `json:"checkpoint"`
}

// Kinds of verification failure; an [*Error] wraps exactly one.
var (
	// ErrTruncated means the bundle ends before what its header promises,
	// or in the middle of a line.
	ErrTruncated = errors.New("bundle: truncated")
	// ErrFormat means a line is not what the format requires there.
	ErrFormat = errors.New("bundle: malformed")
	// ErrSequence means an event line is not at the position expected:
	// an event was dropped, inserted, swapped or renumbered.
	ErrSequence = errors.New("bundle: event out of sequence")
	// ErrTampered means events do not hash to what a checkpoint signed.
	ErrTampered = errors.New("bundle: events do not match the signed checkpoint")
	// ErrUncovered means some events are under no checkpoint.
	ErrUncovered = errors.New("bundle: events not covered by a checkpoint")
	// ErrKey means the bundle's key is unusable or is not the trusted key.
	ErrKey = errors.New("bundle: wrong key")
	// ErrSignature means a checkpoint's signature does not verify.
	ErrSignature = errors.New("bundle: bad checkpoint signature")
	// ErrRollback means the bundle does not extend a checkpoint the
	// auditor saw before: history was cut short or rewritten.
	ErrRollback = errors.New("bundle: does not extend the checkpoint seen before")
)

// Error is a verification failure and where it is.
type Error struct {
	// Kind is one of the package's sentinel errors.
	Kind error
	// Line is the 1-based line of the bundle at fault, 0 if none.
	Line int64
	// Position is the first bad event position when it is known.
	Position int64
	// From and To bound the bad positions (inclusive) when only a range is
	// known.
	From, To int64
	// Detail says what was found.
	Detail string
}

func (e *Error) Error() string {
	s := e.Kind.Error()
	switch {
	case e.Position > 0:
		s += fmt.Sprintf(": at position %d", e.Position)
	case e.From > 0 && e.From == e.To:
		s += fmt.Sprintf(": at position %d", e.From)
	case e.From > 0:
		s += fmt.Sprintf(": positions %d..%d", e.From, e.To)
	}
	if e.Line > 0 {
		s += fmt.Sprintf(" (line %d)", e.Line)
	}
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

// Unwrap returns Kind, so errors.Is(err, bundle.ErrTampered) works.
func (e *Error) Unwrap() error { return e.Kind }

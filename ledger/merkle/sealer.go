package merkle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"golang.org/x/mod/sumdb/tlog"
)

// DefaultInterval is how often a [Sealer] checks for new events.
const DefaultInterval = time.Second

// Sealer cuts a signed checkpoint whenever the log has grown.
type Sealer struct {
	Source      Source
	Signer      *Signer
	Origin      string
	Checkpoints *Checkpoints
	// Interval between seals; DefaultInterval when zero.
	Interval time.Duration
	// Log receives seal failures; slog.Default when nil.
	Log *slog.Logger
}

// Seal signs and stores a checkpoint of the current head if it is beyond
// the latest checkpoint, and returns the latest checkpoint either way.
// Several sealers may share one Checkpoints file (the background one and
// an export, say): a seal that loses the race returns the winner's.
//
// Before signing it checks that the tree still hashes, at the latest
// checkpoint's size, to the root signed then: a store whose history was
// rewritten gets ErrInconsistent instead of a signature on the new history.
func (s *Sealer) Seal(ctx context.Context) (Checkpoint, error) {
	return s.seal(ctx, nil)
}

// ErrNothingToSeal means a rotation found no events beyond the latest
// checkpoint: the checkpoint announcing a new key must be a new one.
var ErrNothingToSeal = errors.New("merkle: no events beyond the latest checkpoint")

// Rotate seals the head with a checkpoint signed by both the sealer's key
// and next, announcing next, and from then on signs with next. The log
// must have grown since the latest checkpoint (by the event that records
// the rotation, say); ErrNothingToSeal otherwise.
func (s *Sealer) Rotate(ctx context.Context, next *Signer) (Checkpoint, error) {
	cp, err := s.seal(ctx, next)
	if err != nil {
		return Checkpoint{}, err
	}
	s.Signer = next
	return cp, nil
}

func (s *Sealer) seal(ctx context.Context, next *Signer) (Checkpoint, error) {
	head, err := s.Source.Head(ctx)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("merkle: seal: %w", err)
	}
	prev, err := s.Checkpoints.Latest()
	switch {
	case errors.Is(err, ErrNotFound):
	case err != nil:
		return Checkpoint{}, fmt.Errorf("merkle: seal: %w", err)
	default:
		if int64(head) <= prev.Size && next != nil {
			return Checkpoint{}, ErrNothingToSeal
		}
		if int64(head) <= prev.Size {
			return prev, nil
		}
		again, err := tlog.TreeHash(prev.Size, s.Source)
		if err != nil {
			return Checkpoint{}, fmt.Errorf("merkle: seal: %w", err)
		}
		if again != prev.Root {
			return Checkpoint{}, fmt.Errorf("%w: root at size %d differs from the signed one", ErrInconsistent, prev.Size)
		}
	}
	if head == 0 {
		return Checkpoint{}, ErrNotFound
	}
	root, err := tlog.TreeHash(int64(head), s.Source)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("merkle: seal: %w", err)
	}
	cp := Checkpoint{Origin: s.Origin, Size: int64(head), Root: root}
	if next != nil {
		cp, err = s.Signer.SignRotation(cp, next)
	} else {
		cp, err = s.Signer.Sign(cp)
	}
	if err != nil {
		return Checkpoint{}, err
	}
	if err := s.Checkpoints.Add(cp); errors.Is(err, ErrStale) && next == nil {
		// Another sealer of the same file got there first; its checkpoint
		// covers at least as much.
		return s.Checkpoints.Latest()
	} else if err != nil {
		return Checkpoint{}, fmt.Errorf("merkle: seal: %w", err)
	}
	return cp, nil
}

// Run seals every Interval until ctx is done, then seals once more so
// events appended just before a clean shutdown are covered too. It returns
// ctx.Err() after that last seal, or the seal's error if it was
// ErrInconsistent, which no retry will cure.
func (s *Sealer) Run(ctx context.Context) error {
	every := s.Interval
	if every <= 0 {
		every = DefaultInterval
	}
	log := s.Log
	if log == nil {
		log = slog.Default()
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			_, err := s.Seal(context.WithoutCancel(ctx))
			if err != nil && !errors.Is(err, ErrNotFound) {
				log.Error("final seal failed", "err", err)
			}
			return ctx.Err()
		case <-t.C:
		}
		_, err := s.Seal(ctx)
		switch {
		case err == nil, errors.Is(err, ErrNotFound), ctx.Err() != nil:
		case errors.Is(err, ErrInconsistent):
			log.Error("refusing to seal", "err", err)
			return err
		default:
			log.Warn("seal failed; will retry", "err", err)
		}
	}
}

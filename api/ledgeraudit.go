package api

import (
	"context"
	"errors"
	"io"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/heed/heed/ledger"
	"github.com/heed/heed/ledger/bundle"
	"github.com/heed/heed/ledger/merkle"
)

// LedgerAuditor is the [Auditor] of a log whose tree and signed
// checkpoints heed keeps: checkpoints, proofs and bundles, whichever store
// holds the events.
type LedgerAuditor struct {
	Store       ledger.Store
	Hashes      tlog.HashReader
	Checkpoints *merkle.Checkpoints
	// Seal cuts a checkpoint now; nil when another process seals
	// (KurrentDB, where instances share a lease).
	Seal func(context.Context) (merkle.Checkpoint, error)
	// Origin and VerifierKey go into bundles.
	Origin, VerifierKey string
}

// latestWait is how long latest waits for another instance to seal the
// head.
const latestWait = 5 * time.Second

func (a LedgerAuditor) latest(ctx context.Context) (merkle.Checkpoint, error) {
	if a.Seal != nil {
		// Cover every event acknowledged so far.
		if cp, err := a.Seal(ctx); err == nil || !errors.Is(err, merkle.ErrNotFound) {
			return cp, err
		}
	}
	// Another instance may hold the sealing lease: wait briefly for a
	// checkpoint that covers the head.
	deadline := time.Now().Add(latestWait)
	poll := time.NewTicker(50 * time.Millisecond)
	defer poll.Stop()
	for {
		cp, err := a.Checkpoints.Latest()
		head, herr := a.Store.Head(ctx)
		if herr != nil {
			return merkle.Checkpoint{}, herr
		}
		if (err == nil && uint64(cp.Size) >= head) || time.Now().After(deadline) {
			return cp, err
		}
		select {
		case <-ctx.Done():
			return merkle.Checkpoint{}, ctx.Err()
		case <-poll.C:
		}
	}
}

// Checkpoint returns the newest checkpoint, sealing the head first when
// this process seals, with the announcements of key rotations up to it.
func (a LedgerAuditor) Checkpoint(ctx context.Context) (Checkpoint, error) {
	cp, err := a.latest(ctx)
	if err != nil {
		return Checkpoint{}, err
	}
	out := Checkpoint{Size: cp.Size, Root: cp.Root[:], Note: string(cp.Note)}
	if a.Checkpoints != nil {
		rots, err := a.Checkpoints.Rotations()
		if err != nil {
			return Checkpoint{}, err
		}
		for _, r := range rots {
			if r.Size <= cp.Size {
				out.Rotations = append(out.Rotations, string(r.Note))
			}
		}
	}
	return out, nil
}

// Inclusion proves the event at position is in the tree of size.
func (a LedgerAuditor) Inclusion(_ context.Context, position, size int64) ([][]byte, error) {
	p, err := merkle.Inclusion(a.Hashes, position, size)
	return hashBytes(p), err
}

// Consistency proves the tree of size older is a prefix of newer.
func (a LedgerAuditor) Consistency(_ context.Context, older, newer int64) ([][]byte, error) {
	p, err := merkle.Consistency(a.Hashes, older, newer)
	return hashBytes(p), err
}

func hashBytes(hs []tlog.Hash) [][]byte {
	out := make([][]byte, len(hs))
	for i := range hs {
		out[i] = hs[i][:]
	}
	return out
}

// Bundle writes the events up to the newest checkpoint with the
// checkpoints an export carries (see [bundle.Export]).
func (a LedgerAuditor) Bundle(ctx context.Context, w io.Writer) error {
	cp, err := a.latest(ctx)
	if err != nil && !errors.Is(err, merkle.ErrNotFound) {
		return err
	}
	var cps []merkle.Checkpoint
	if a.Checkpoints != nil {
		if cps, err = a.Checkpoints.Spread(cp.Size, bundle.DefaultMaxCheckpoints); err != nil {
			return err
		}
	}
	return bundle.Export(ctx, w, a.Store, a.Origin, a.VerifierKey, cps, bundle.ExportOptions{Size: cp.Size})
}

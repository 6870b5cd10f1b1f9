package kurrent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/google/uuid"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/heed/heed/ledger"
	"github.com/heed/heed/ledger/merkle"
)

// ErrOrigin means the checkpoints published in the cluster were signed for
// another origin or key than this instance's: the instances are not
// configured for the same ledger.
var ErrOrigin = errors.New("kurrent: published checkpoint is for another ledger")

// Sealer makes a KurrentDB ledger tamper-evident. Every heed instance runs
// one: each keeps its own copy of the Merkle tree (Tree, a local bbolt
// file grown by following the log) and of the checkpoint list
// (Checkpoints). One instance at a time, elected with a [Lease], signs a
// checkpoint whenever the log has grown and publishes it to a checkpoint
// stream in the cluster; the others import what it publishes, so `heed
// export` and `heed verify` work from any instance's data directory.
//
// A checkpoint is published before it is stored locally, with an exact
// expected revision, so the published list is the one history every
// instance converges on; before signing or importing, the sealer checks
// that its own tree hashes to the root signed at the previous size.
type Sealer struct {
	Store       *Store
	Tree        *merkle.Log
	Checkpoints *merkle.Checkpoints
	Signer      *merkle.Signer
	Origin      string
	// Holder names this instance in the lease; hostname and pid by
	// default.
	Holder string
	// TTL is the lease term; 10 s by default. A dead sealer is replaced
	// within about twice this.
	TTL time.Duration
	// Interval between seals; merkle.DefaultInterval by default.
	Interval time.Duration
	// Log receives failures; slog.Default when nil.
	Log *slog.Logger

	lease *Lease
	// chain follows the signing key through the published checkpoints,
	// from the ledger's first key.
	chain  *merkle.Chain
	next   uint64 // revision of the checkpoint stream to import next
	warned bool   // that this instance's key was rotated out
}

// published is one event of the checkpoint stream.
type published struct {
	Size   int64  `json:"size"`
	Holder string `json:"holder"`
	Note   string `json:"note"`
}

func (s *Sealer) stream() string { return "checkpoints:" + s.Store.opts.Prefix + "log" }

// Run follows the log into the tree, and takes part in the lease,
// sealing while it holds it, until ctx is done. It returns ctx.Err(), or
// an error no retry cures: ErrOrigin, or merkle.ErrInconsistent when the
// log no longer matches a signed checkpoint.
func (s *Sealer) Run(ctx context.Context) error {
	s.init()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	grown := make(chan error, 1)
	go func() { grown <- s.grow(ctx) }()

	every := min(s.Interval, s.TTL/3)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		err := s.step(ctx)
		if errors.Is(err, ErrOrigin) || errors.Is(err, merkle.ErrInconsistent) {
			s.Log.Error("kurrent sealer stopped", "err", err)
			return err
		}
		if err != nil && ctx.Err() == nil {
			s.Log.Warn("kurrent sealer: will retry", "err", err)
		}
		select {
		case <-ctx.Done():
			rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			_ = s.lease.Release(rctx)
			rcancel()
			return ctx.Err()
		case err := <-grown:
			if ctx.Err() == nil {
				return err
			}
		case <-t.C:
		}
	}
}

func (s *Sealer) init() {
	if s.Holder == "" {
		host, _ := os.Hostname()
		s.Holder = host + "/" + strconv.Itoa(os.Getpid())
	}
	if s.TTL <= 0 {
		s.TTL = 10 * time.Second
	}
	if s.Interval <= 0 {
		s.Interval = merkle.DefaultInterval
	}
	if s.Log == nil {
		s.Log = slog.Default()
	}
	s.lease = s.Store.NewLease("sealer", s.Holder, s.TTL)
}

// startChain finds the ledger's first signing key: the old key of the
// first rotation published, or this instance's key if none was.
func (s *Sealer) startChain(ctx context.Context) error {
	first := s.Signer.VerifierKey()
	for from := uint64(0); ; {
		recs, err := s.Store.records(ctx, s.stream(), from)
		if err != nil {
			return err
		}
		found := false
		for _, r := range recs {
			var p published
			if json.Unmarshal(r.data, &p) != nil {
				continue // importPublished names it
			}
			if cp, err := merkle.ParseNote([]byte(p.Note)); err == nil && cp.Rotation != nil {
				first, found = cp.Rotation.Old, true
				break
			}
		}
		if found || len(recs) == 0 {
			break
		}
		from = recs[len(recs)-1].revision + 1
	}
	c, err := merkle.NewChain(first)
	if err != nil {
		return err
	}
	s.chain = c
	return nil
}

// mine reports whether this instance's key is the one checkpoints must
// now be signed by, warning once when it is not.
func (s *Sealer) mine() bool {
	if s.chain.Active().Key() == s.Signer.VerifierKey() {
		return true
	}
	if !s.warned {
		s.warned = true
		s.Log.Error("kurrent sealer: this instance's signing key was rotated out; it imports checkpoints but signs none until restarted with the new key",
			"active", s.chain.Active().Name())
	}
	return false
}

// ErrLeaseLost means another instance took the sealer lease during a
// rotation; nothing was signed, and the rotation may be run again.
var ErrLeaseLost = errors.New("kurrent: lost the sealer lease")

// ErrNotSigner means this instance's signing key is not the one the
// published checkpoints are now signed by.
var ErrNotSigner = errors.New("kurrent: this instance's key does not sign the ledger's checkpoints")

// Rotate makes next the signing key of the cluster's checkpoints. Holding
// the lease (it waits for it until ctx is done), it appends ev, the event
// that records the rotation, brings the tree to the head and publishes a
// checkpoint of the head signed by both keys that announces next; from
// then on it signs with next. Instances still holding the old key import
// the announcement and stop sealing.
func (s *Sealer) Rotate(ctx context.Context, next *merkle.Signer, ev ledger.Event) (merkle.Checkpoint, error) {
	s.init()
	if err := s.importPublished(ctx); err != nil {
		return merkle.Checkpoint{}, err
	}
	if s.chain.Active().Key() != s.Signer.VerifierKey() {
		return merkle.Checkpoint{}, ErrNotSigner
	}
	for {
		held, err := s.lease.Try(ctx)
		if err != nil {
			return merkle.Checkpoint{}, err
		}
		if held {
			break
		}
		select {
		case <-ctx.Done():
			return merkle.Checkpoint{}, ctx.Err()
		case <-time.After(s.TTL / 4):
		}
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		_ = s.lease.Release(rctx)
		cancel()
	}()
	if err := s.importPublished(ctx); err != nil {
		return merkle.Checkpoint{}, err
	}
	out, err := s.Store.Append(ctx, ledger.KeysStream, ledger.Any(), []ledger.Event{ev})
	if err != nil {
		return merkle.Checkpoint{}, err
	}
	if err := s.catchUp(ctx, out[0].Position); err != nil {
		return merkle.Checkpoint{}, err
	}
	// Renew: catching up may have taken a good part of the term.
	if held, err := s.lease.Try(ctx); err != nil || !held {
		return merkle.Checkpoint{}, errors.Join(ErrLeaseLost, err)
	}
	cp, err := s.sealWith(ctx, next)
	if err != nil {
		return merkle.Checkpoint{}, err
	}
	s.Signer = next
	return cp, nil
}

// catchUp appends to the tree every event up to the store's head, and at
// least up to position want, waiting for the store to index it.
func (s *Sealer) catchUp(ctx context.Context, want uint64) error {
	head, err := s.Store.Head(ctx)
	if err != nil {
		return err
	}
	head = max(head, want)
	for {
		size, err := s.Tree.Size()
		if err != nil || uint64(size) >= head {
			return err
		}
		evs, err := s.Store.ReadAll(ctx, uint64(size)+1, 512)
		if err != nil {
			return err
		}
		if len(evs) == 0 {
			select {
			case <-ctx.Done():
				return fmt.Errorf("kurrent: the log ends at %d, before position %d: %w", size, head, ctx.Err())
			case <-time.After(10 * time.Millisecond):
			}
			continue
		}
		leaves := make([][]byte, len(evs))
		for i := range evs {
			if leaves[i], err = evs[i].Leaf(); err != nil {
				return err
			}
		}
		if _, err := s.Tree.Append(size+1, leaves...); err != nil {
			return err
		}
	}
}

// step imports published checkpoints and checks the latest against the
// tree once the tree reaches it, then, holding the lease, seals.
func (s *Sealer) step(ctx context.Context) error {
	if err := s.importPublished(ctx); err != nil {
		return err
	}
	latest, err := s.Checkpoints.Latest()
	if err != nil && !errors.Is(err, merkle.ErrNotFound) {
		return err
	}
	if err == nil {
		if err := s.check(latest); err != nil {
			return err
		}
	}
	if !s.mine() {
		return nil // an instance whose key was rotated out leaves the lease to others
	}
	held, err := s.lease.Try(ctx)
	if err != nil || !held {
		return err
	}
	return s.seal(ctx)
}

// grow follows the store from the tree's size and appends each event's
// leaf, in batches.
func (s *Sealer) grow(ctx context.Context) error {
	size, err := s.Tree.Size()
	if err != nil {
		return err
	}
	var batch [][]byte
	first := uint64(size) + 1
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if _, err := s.Tree.Append(int64(first), batch...); err != nil {
			return err
		}
		first += uint64(len(batch))
		batch = batch[:0]
		return nil
	}
	err = s.Store.Follow(ctx, first, func(e ledger.Event) error {
		leaf, err := e.Leaf()
		if err != nil {
			return err
		}
		batch = append(batch, leaf)
		head, err := s.Store.Head(ctx)
		if err != nil {
			return err
		}
		if len(batch) >= 512 || e.Position >= head {
			return flush()
		}
		return nil
	})
	return err
}

// importPublished stores the checkpoints published since the last look,
// after checking each against the local tree where the tree reaches.
func (s *Sealer) importPublished(ctx context.Context) error {
	if s.chain == nil {
		if err := s.startChain(ctx); err != nil {
			return err
		}
	}
	recs, err := s.Store.records(ctx, s.stream(), s.next)
	if err != nil {
		return err
	}
	for _, r := range recs {
		var p published
		if err := json.Unmarshal(r.data, &p); err != nil {
			return fmt.Errorf("%w: revision %d of %s: %v", ErrOrigin, r.revision, s.stream(), err)
		}
		cp, err := s.chain.Open([]byte(p.Note))
		if err != nil || cp.Origin != s.Origin {
			return fmt.Errorf("%w: revision %d of %s", ErrOrigin, r.revision, s.stream())
		}
		if err := s.check(cp); err != nil {
			return err
		}
		latest, err := s.Checkpoints.Latest()
		if err == nil && cp.Size <= latest.Size {
			s.next = r.revision + 1
			continue
		}
		if err != nil && !errors.Is(err, merkle.ErrNotFound) {
			return err
		}
		if err := s.Checkpoints.Add(cp); err != nil {
			return err
		}
		s.next = r.revision + 1
	}
	if !slices.Contains(s.chain.Keys(), s.Signer.VerifierKey()) {
		return fmt.Errorf("%w: this instance's signing key is not among those of the published checkpoints", ErrOrigin)
	}
	return nil
}

// check verifies that the local tree, if it reaches cp's size, has cp's
// root.
func (s *Sealer) check(cp merkle.Checkpoint) error {
	size, err := s.Tree.Size()
	if err != nil || size < cp.Size {
		return err
	}
	root, err := tlog.TreeHash(cp.Size, s.Tree)
	if err != nil {
		return err
	}
	if root != cp.Root {
		return fmt.Errorf("%w: the log read from the cluster does not hash to the root signed at size %d", merkle.ErrInconsistent, cp.Size)
	}
	return nil
}

// seal signs the tree's current size if it is beyond the latest
// checkpoint, publishes it, then stores it.
func (s *Sealer) seal(ctx context.Context) error {
	if !s.mine() {
		return nil
	}
	_, err := s.sealWith(ctx, nil)
	if errors.Is(err, merkle.ErrNothingToSeal) {
		return nil
	}
	return err
}

// sealWith signs the tree's size if beyond the latest checkpoint, with a
// rotation to next if next is set; ErrNothingToSeal if there is nothing
// new to sign.
func (s *Sealer) sealWith(ctx context.Context, next *merkle.Signer) (merkle.Checkpoint, error) {
	cp, err := s.sealNote(ctx, next)
	if err != nil {
		return merkle.Checkpoint{}, err
	}
	if cp.Note == nil {
		return merkle.Checkpoint{}, merkle.ErrNothingToSeal
	}
	return cp, nil
}

func (s *Sealer) sealNote(ctx context.Context, next *merkle.Signer) (merkle.Checkpoint, error) {
	size, err := s.Tree.Size()
	if err != nil {
		return merkle.Checkpoint{}, err
	}
	latest, err := s.Checkpoints.Latest()
	switch {
	case errors.Is(err, merkle.ErrNotFound):
	case err != nil:
		return merkle.Checkpoint{}, err
	case size <= latest.Size:
		return merkle.Checkpoint{}, nil
	default:
		if err := s.check(latest); err != nil {
			return merkle.Checkpoint{}, err
		}
	}
	if size == 0 || !s.lease.Held() {
		return merkle.Checkpoint{}, nil
	}
	root, err := tlog.TreeHash(size, s.Tree)
	if err != nil {
		return merkle.Checkpoint{}, err
	}
	cp := merkle.Checkpoint{Origin: s.Origin, Size: size, Root: root}
	if next != nil {
		cp, err = s.Signer.SignRotation(cp, next)
	} else {
		cp, err = s.Signer.Sign(cp)
	}
	if err != nil {
		return merkle.Checkpoint{}, err
	}
	data, err := json.Marshal(published{Size: size, Holder: s.Holder, Note: string(cp.Note)})
	if err != nil {
		return merkle.Checkpoint{}, err
	}
	id := uuid.NewSHA1(uuid.NameSpaceURL, []byte(s.Origin+"/"+strconv.FormatInt(size, 10)))
	err = s.Store.appendRecord(ctx, s.stream(), "HeedCheckpoint", id, s.next, data)
	if errors.Is(err, ledger.ErrWrongRevision) && next == nil {
		// Another sealer published meanwhile; import it next step.
		return merkle.Checkpoint{}, nil
	}
	if err != nil {
		return merkle.Checkpoint{}, err
	}
	s.next++
	if _, err := s.chain.Open(cp.Note); err != nil {
		return merkle.Checkpoint{}, err
	}
	return cp, s.Checkpoints.Add(cp)
}

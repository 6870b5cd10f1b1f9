// Package contactindex is the projection of the log the customer's pages
// and erasure read across tenants: which tenants hold something about a
// subject, and which templates each tenant proposed.
package contactindex

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heed/heed/ledger"
)

// Index knows which tenants recorded something about each subject (in
// their contact stream, mostly), so a customer's view reads a handful of
// streams instead of scanning the log, and a customer's erasure reaches
// every tenant's key; and which flash templates each tenant proposed.
type Index struct {
	store   ledger.Store
	mu      sync.RWMutex
	tenants tenantSets    // subject → tenants
	seen    atomic.Uint64 // last log position applied
	// tmpls are the flash templates proposed so far (see review.go).
	tmpls map[Template]bool

	// With leaves, the index reads the stored leaves and picks tenant,
	// subject and stream out of their canonical prefix instead of having
	// every event decoded for it (see ledger.ReadLeafHead).
	leaves  LeafReader
	catchMu sync.Mutex
	decoded int // leaves ReadLeafHead could not read, decoded instead (under catchMu)

	// Snapshots (see Persist), touched by the applier only: under catchMu
	// with leaves, else in Run's follower.
	dir       string
	log       *slog.Logger
	loaded    chan struct{} // closed once Run has read the snapshot
	lastID    string        // the id of the event at seen
	savedAt   uint64        // the position of the last snapshot
	savedWhen time.Time
	cost      time.Duration // how long the last snapshot took
}

// LeafReader reads the log's stored canonical leaves (ledger.Event.Leaf)
// without decoding them, as ledger/bolt does.
type LeafReader interface {
	ReadLeaves(ctx context.Context, from uint64, limit int) ([][]byte, error)
}

// New returns an index of store, empty until Run follows the log. With
// leaves (ledger/bolt), it reads the stored leaves undecoded.
func New(store ledger.Store, leaves LeafReader) *Index {
	return &Index{store: store, leaves: leaves, tenants: newTenantSets(), tmpls: map[Template]bool{}, log: slog.New(slog.DiscardHandler), loaded: closed}
}

// closed is a channel closed already.
var closed = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// Template names one tenant's template.
type Template struct{ Tenant, ID string }

func (x *Index) note(e ledger.Event) {
	if kind, id, ok := ledger.ParseStream(e.Stream, e.Tenant); e.Type == ledger.TypeTemplateProposed && kind == ledger.StreamTemplate && ok {
		x.noteTemplate([]byte(e.Tenant), []byte(id))
	}
	if e.Tenant == "" || e.Subject == "" {
		return
	}
	x.noteKeys([]byte(e.Tenant), []byte(e.Subject))
}

// noteTemplate records tenant's template id.
func (x *Index) noteTemplate(tenant, id []byte) {
	if len(tenant) == 0 {
		return
	}
	k := Template{string(tenant), string(id)}
	x.mu.Lock()
	x.tmpls[k] = true
	x.mu.Unlock()
}

func (x *Index) noteKeys(tenant, subject []byte) {
	// Looked up with the bytes: no string is made for a known pair.
	x.mu.RLock()
	ok := x.tenants.has(tenant, subject)
	x.mu.RUnlock()
	if !ok {
		x.add(string(tenant), string(subject))
	}
}

func (x *Index) add(tenant, subject string) {
	x.mu.Lock()
	x.tenants.add(tenant, subject)
	x.mu.Unlock()
}

// Run keeps the index current until ctx is done, starting from its
// snapshot when Persist gave it a directory holding one that matches the
// log.
func (x *Index) Run(ctx context.Context) error {
	x.catchMu.Lock()
	err := x.load(ctx)
	x.catchMu.Unlock()
	if err != nil {
		return err
	}
	select {
	case <-x.loaded:
	default:
		close(x.loaded)
	}
	if x.leaves == nil {
		var looked time.Time
		err := x.store.Follow(ctx, x.seen.Load()+1, func(e ledger.Event) error {
			x.note(e)
			x.lastID = e.ID
			x.seen.Store(e.Position)
			if x.dir == "" || time.Since(looked) < time.Second {
				return nil
			}
			looked = time.Now()
			head, err := x.store.Head(ctx)
			if err == nil && x.saveDue(e.Position >= head) {
				x.trySave()
			}
			return nil
		})
		if x.exitSave() {
			x.trySave()
		}
		return err
	}
	// Polled, not followed: a customer's query catches up itself (see of),
	// so the poll only keeps that catch-up short.
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		err := x.catchUp(ctx)
		if ctx.Err() != nil {
			x.catchMu.Lock()
			if x.exitSave() {
				x.trySave()
			}
			x.catchMu.Unlock()
			return ctx.Err()
		}
		if err != nil {
			return err
		}
		x.catchMu.Lock()
		if x.saveDue(true) {
			x.trySave()
		}
		x.catchMu.Unlock()
		select {
		case <-ctx.Done():
		case <-t.C:
		}
	}
}

// trySave saves a snapshot; a failure only costs the next start a longer
// catch-up.
func (x *Index) trySave() {
	if err := x.save(); err != nil {
		x.log.Warn("contact index snapshot", "err", err)
	}
}

// catchUp applies the leaves stored since the last one applied.
func (x *Index) catchUp(ctx context.Context) error {
	x.catchMu.Lock()
	defer x.catchMu.Unlock()
	for {
		ls, err := x.leaves.ReadLeaves(ctx, x.seen.Load()+1, 4096)
		if err != nil || len(ls) == 0 {
			return err
		}
		for i, l := range ls {
			k, ok := ledger.ReadLeafHead(l)
			if !ok {
				x.decoded++
				e, err := ledger.ParseLeaf(l)
				if err != nil {
					return fmt.Errorf("contactindex: %w", err)
				}
				x.note(e)
				x.lastID = e.ID
				x.seen.Store(e.Position)
				continue
			}
			if i == len(ls)-1 {
				x.lastID = string(k.ID)
			}
			// A leaf that ties a tenant to its subject (what note checks on
			// a decoded event): most are in the tenant's contact stream for
			// the subject; others (a reply to the tenant's line) hold data
			// a customer's erasure at every business must reach all the
			// same.
			if len(k.Tenant) > 0 && len(k.Subject) > 0 {
				x.noteKeys(k.Tenant, k.Subject)
			} else if kind, id, ok := ledger.ParseStream(k.Stream, k.Tenant); kind == ledger.StreamTemplate && ok {
				x.noteTemplate(k.Tenant, id)
			}
			x.seen.Store(k.Position)
		}
	}
}

// Tenants returns the tenants of subject, sorted, once the index has
// caught up with the log's head (or after a short wait, with what it has).
func (x *Index) Tenants(ctx context.Context, subject string) ([]string, error) {
	if err := x.reach(ctx); err != nil {
		return nil, err
	}
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.tenants.of(subject), nil
}

// Templates returns every tenant's templates once the index has caught up
// with the log's head (or after a short wait, with what it has).
func (x *Index) Templates(ctx context.Context) ([]Template, error) {
	if err := x.reach(ctx); err != nil {
		return nil, err
	}
	x.mu.RLock()
	defer x.mu.RUnlock()
	out := make([]Template, 0, len(x.tmpls))
	for k := range x.tmpls {
		out = append(out, k)
	}
	return out, nil
}

// reach waits until the index has applied the log's head, up to a short
// while.
func (x *Index) reach(ctx context.Context) error {
	// Nothing is caught up before the snapshot is read: the catch-up would
	// start from position 1.
	select {
	case <-x.loaded:
	case <-ctx.Done():
		return ctx.Err()
	}
	head, err := x.store.Head(ctx)
	if err != nil {
		return err
	}
	if x.leaves != nil {
		if err := x.catchUp(ctx); err != nil {
			return err
		}
	}
	deadline := time.NewTimer(2 * time.Second)
	defer deadline.Stop()
	poll := time.NewTicker(5 * time.Millisecond)
	defer poll.Stop()
	for x.seen.Load() < head {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			return nil // answer with what it has
		case <-poll.C:
		}
	}
	return nil
}

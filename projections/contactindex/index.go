// Package contactindex is the projection of the log the customer's pages
// and erasure read across tenants: which tenants hold something about a
// subject, and which templates each tenant proposed.
package contactindex

import (
	"context"
	"fmt"
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
}

// LeafReader reads the log's stored canonical leaves (ledger.Event.Leaf)
// without decoding them, as ledger/bolt does.
type LeafReader interface {
	ReadLeaves(ctx context.Context, from uint64, limit int) ([][]byte, error)
}

// New returns an index of store, empty until Run follows the log. With
// leaves (ledger/bolt), it reads the stored leaves undecoded.
func New(store ledger.Store, leaves LeafReader) *Index {
	return &Index{store: store, leaves: leaves, tenants: newTenantSets(), tmpls: map[Template]bool{}}
}

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

// Run keeps the index current until ctx is done.
func (x *Index) Run(ctx context.Context) error {
	if x.leaves == nil {
		return x.store.Follow(ctx, x.seen.Load()+1, func(e ledger.Event) error {
			x.note(e)
			x.seen.Store(e.Position)
			return nil
		})
	}
	// Polled, not followed: a customer's query catches up itself (see of),
	// so the poll only keeps that catch-up short.
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		if err := x.catchUp(ctx); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
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
		for _, l := range ls {
			k, ok := ledger.ReadLeafHead(l)
			if !ok {
				x.decoded++
				e, err := ledger.ParseLeaf(l)
				if err != nil {
					return fmt.Errorf("contactindex: %w", err)
				}
				x.note(e)
				x.seen.Store(e.Position)
				continue
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

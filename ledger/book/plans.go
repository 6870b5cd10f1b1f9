package book

import (
	"context"
	"sync"

	"github.com/heed/heed/ledger"
)

// planCache remembers which plans a tenant has defined (a plan stream
// with at least one ReminderPlanDefined), for one import: a book names a
// handful of plans on a million rows.
type planCache struct {
	store  ledger.Store
	tenant string
	mu     sync.Mutex
	known  map[string]bool
}

// maxPlans bounds the cache; names past it are looked up every time.
const maxPlans = 4096

func newPlanCache(store ledger.Store, tenant string) *planCache {
	return &planCache{store: store, tenant: tenant, known: map[string]bool{}}
}

func (c *planCache) defined(ctx context.Context, plan string) (bool, error) {
	c.mu.Lock()
	known, ok := c.known[plan]
	c.mu.Unlock()
	if ok {
		return known, nil
	}
	rev, err := c.store.StreamRevision(ctx, ledger.PlanStream(c.tenant, plan))
	if err != nil {
		return false, err
	}
	known = rev > 0
	c.mu.Lock()
	if len(c.known) < maxPlans {
		c.known[plan] = known
	}
	c.mu.Unlock()
	return known, nil
}

package book

import (
	"context"
	"sync"
)

// planCache remembers which plans a tenant has, for one import: a book
// names a handful of plans on a million rows.
type planCache struct {
	plans  Plans
	tenant string
	mu     sync.Mutex
	known  map[string]bool
}

// maxPlans bounds the cache; names past it are looked up every time.
const maxPlans = 4096

func newPlanCache(p Plans, tenant string) *planCache {
	return &planCache{plans: p, tenant: tenant, known: map[string]bool{}}
}

func (c *planCache) defined(ctx context.Context, plan string) (bool, error) {
	if c.plans == nil {
		return false, nil
	}
	c.mu.Lock()
	known, ok := c.known[plan]
	c.mu.Unlock()
	if ok {
		return known, nil
	}
	known, err := c.plans.Defined(ctx, c.tenant, plan)
	if err != nil {
		return false, err
	}
	c.mu.Lock()
	if len(c.known) < maxPlans {
		c.known[plan] = known
	}
	c.mu.Unlock()
	return known, nil
}

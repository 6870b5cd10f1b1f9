package projections

import "context"

// Tenants lists the tenants whose contact streams hold events about
// subject, once the projection has caught up with the log's current head.
// A reply to a line several tenants send from reaches those of them that
// sent to the number, and this is where they are found without a scan of
// the log.
func (r *Runner) Tenants(ctx context.Context, subject string) ([]string, error) {
	head, err := r.store.Head(ctx)
	if err != nil {
		return nil, err
	}
	if err := r.WaitFor(ctx, head); err != nil {
		return nil, err
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.st.tenantsOf(subject, ""), nil
}

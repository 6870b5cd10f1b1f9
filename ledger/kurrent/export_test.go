package kurrent

// Resubscriptions returns how many times the $all subscription was
// re-established after a drop.
func (s *Store) Resubscriptions() int64 { return s.resubs.Load() }

// Retries returns how many transient failures were retried.
func (s *Store) Retries() int64 { return s.retries.Load() }

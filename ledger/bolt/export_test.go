package bolt

// SetBeforeCommit installs a hook that runs inside each write transaction
// just before it commits; nil removes it.
func SetBeforeCommit(s *Store, f func(events int) error) {
	if f == nil {
		s.beforeCommit.Store(nil)
		return
	}
	s.beforeCommit.Store(&f)
}

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

// FoldEvery makes the store fold its stream index entries into the file
// every n events instead of every 65536, so tests exercise the fold.
func FoldEvery(n int) Option { return func(o *options) { o.foldEvery = n } }

// FoldAsyncFrom sets the generation size from which a fold's entries are
// sorted off the committer (default 4096).
func FoldAsyncFrom(n int) Option { return func(o *options) { o.foldAsyncFrom = n } }

package bolt

import "go.etcd.io/bbolt"

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

// HighWater is the end of the last page the store's last commit uses.
func HighWater(s *Store) (n int64) {
	s.db.View(func(tx *bbolt.Tx) error { n = tx.Size(); return nil })
	return n
}

// AheadTarget is how much zeroed space the store keeps past a file of
// size hw.
func AheadTarget(hw int64) int64 { return aheadTarget(hw) }

// WaitLearned waits until the store has read the streams bucket into its
// filter of stream names (or given up).
func WaitLearned(s *Store) { <-s.learned }

// Learned reports whether the store trusts its filter of stream names.
func Learned(s *Store) bool {
	s.rec.mu.RLock()
	defer s.rec.mu.RUnlock()
	return s.rec.complete
}

// IDsFill is the share of the id index's leaf pages its entries fill.
func IDsFill(s *Store) (fill float64) {
	s.db.View(func(tx *bbolt.Tx) error {
		st := tx.Bucket(bucketIDs).Stats()
		fill = float64(st.LeafInuse) / float64(st.LeafPageN*s.db.Info().PageSize)
		return nil
	})
	return fill
}

// RunLevels lists the levels of the stream index's live runs, oldest
// first, and counts the run buckets in the file, live or dead.
func RunLevels(s *Store) (levels []int, buckets int) {
	s.db.View(func(tx *bbolt.Tx) error {
		runs, _ := decodeRuns(tx.Bucket(bucketMeta).Get(keyRuns))
		for _, r := range runs {
			levels = append(levels, int(r.level))
		}
		if rb := tx.Bucket(bucketRuns); rb != nil {
			rb.ForEachBucket(func([]byte) error { buckets++; return nil })
		}
		return nil
	})
	return levels, buckets
}

// RunFanout is how many runs of a level are merged into one.
const RunFanout = runFanout

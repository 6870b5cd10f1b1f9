package bolt

import (
	"os"

	"go.etcd.io/bbolt"
)

// bbolt grows its file by truncating it longer, so the pages a commit adds
// at the end land in a hole: the filesystem allocates their blocks when the
// commit's fsync writes them back, and that fsync then also commits the
// filesystem's journal. keepAhead keeps the space just past bbolt's last
// page written with zeros and synced, so that commits overwrite blocks that
// already exist and bbolt never has to grow the file.
//
// The zeros land only past the last page of the last commit, and only while
// fileMu is held, which every commit holds too: they never meet a page bbolt
// uses. Pages past the last one are free space to bbolt, which neither reads
// nor trusts them, so a file that ends in zeros opens like any other.
//
// The refills are small and each is synced at once. An fsync writes back
// every dirty page of the file, so zeros still dirty when a commit syncs
// would be written by the commit; with refills of 4 MiB the commits gained
// about half as much.
const (
	aheadMax   = 32 << 20  // the most zeroed space kept past the last page
	aheadChunk = 1 << 20   // the most zeroed after one commit, then synced
	aheadWrite = 256 << 10 // one write, and so the longest a commit waits
)

// aheadTarget is how much zeroed space to keep past a file of size hw: a
// quarter of it, so that small stores (tests, a fresh server) stay small.
func aheadTarget(hw int64) int64 {
	return min(max(hw/4, aheadWrite), aheadMax)
}

// keepAhead runs until quit closes, topping up the zeroed space after each
// commit. A failure to open or write (a full disk, say) stops it: bbolt then
// grows the file itself, as it would without it.
func (s *Store) keepAhead(path string, maxSize int64) {
	defer close(s.aheadDone)
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return
	}
	defer f.Close()
	zeros := make([]byte, aheadWrite)
	var zeroed int64 // zeros are written from the last page up to here
	for {
		select {
		case <-s.quit:
			return
		case <-s.committed:
		}
		wrote := 0
		for wrote < aheadChunk {
			n, err := s.zeroStep(f, zeros, &zeroed, maxSize, wrote > 0)
			if err != nil {
				return
			}
			if n == 0 {
				break
			}
			wrote += n
		}
		if wrote > 0 && f.Sync() != nil {
			return
		}
	}
}

// zeroStep writes zeros past the last committed page, at most len(zeros)
// of them, and reports how many it wrote. It starts a refill only once the
// zeroed space is a chunk short of the target, so that refills, and their
// syncs, come every few commits rather than after each one.
func (s *Store) zeroStep(f *os.File, zeros []byte, zeroed *int64, maxSize int64, refilling bool) (int, error) {
	s.fileMu.Lock()
	defer s.fileMu.Unlock()
	var hw int64
	if err := s.db.View(func(tx *bbolt.Tx) error { hw = tx.Size(); return nil }); err != nil {
		return 0, err
	}
	want := aheadTarget(hw)
	from := max(hw, *zeroed)
	if !refilling && from-hw > want-min(want/2, aheadChunk) {
		return 0, nil
	}
	to := hw + want
	if maxSize > 0 {
		to = min(to, maxSize)
	}
	n := int(min(to-from, int64(len(zeros))))
	if n <= 0 {
		return 0, nil
	}
	if _, err := f.WriteAt(zeros[:n], from); err != nil {
		return 0, err
	}
	*zeroed = from + int64(n)
	return n, nil
}

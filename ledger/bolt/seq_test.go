package bolt

import (
	"context"
	"path/filepath"
	"sync"
	"testing"

	"github.com/heed/heed/ledger"
	"github.com/heed/heed/ledger/storetest"
)

// TestInflightReleased checks the count the sequencer waits for drops back
// to zero, including after refused and cancelled appends; a leaked count
// would make every later batch wait out its linger.
func TestInflightReleased(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "heed.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	var wg sync.WaitGroup
	for i := range 32 {
		wg.Go(func() {
			e := storetest.Consent("a", "b", 0)
			if i%4 == 0 {
				e.Type = "Nope"
			}
			c := ctx
			if i%5 == 0 {
				cc, cancel := context.WithCancel(ctx)
				cancel()
				c = cc
			}
			s.Append(c, "st", ledger.Any(), []ledger.Event{e})
		})
	}
	wg.Wait()
	if n := s.inflight.Load(); n != 0 {
		t.Fatalf("%d appends still counted in flight", n)
	}
}

package bolt

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"

	"github.com/heed/heed/ledger"
	"github.com/heed/heed/ledger/storetest"
)

// TestInflightReleased checks the count the sequencer waits for drops back
// to zero, including after refused and cancelled appends; a leaked count
// would make every later batch wait out maxFill.
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

// TestReadersStopAtPublishedHead stands in for the moment between bbolt
// writing a commit's meta page and its fsync returning: the data is in the
// file but the head is not yet published, and no reader may see it.
func TestReadersStopAtPublishedHead(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "heed.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	for range 2 {
		if _, err := s.Append(ctx, "st", ledger.Any(), []ledger.Event{storetest.Consent("a", "b", 0)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Append(ctx, "new", ledger.Any(), []ledger.Event{storetest.Consent("a", "c", 0)}); err != nil {
		t.Fatal(err)
	}
	s.head.Store(2) // event 3 is written but, as far as readers know, not durable
	if all, _ := s.ReadAll(ctx, 1, 0); len(all) != 2 {
		t.Fatalf("ReadAll saw %d events past the published head", len(all)-2)
	}
	if l, _ := s.ReadLeaves(ctx, 1, 0); len(l) != 2 {
		t.Fatalf("ReadLeaves returned %d leaves", len(l))
	}
	if _, err := s.ReadStream(ctx, "new", 1, 0); !errors.Is(err, ledger.ErrNotFound) {
		t.Fatalf("ReadStream of an unpublished stream: %v", err)
	}
	if rev, _ := s.StreamRevision(ctx, "new"); rev != 0 {
		t.Fatalf("StreamRevision of an unpublished stream = %d", rev)
	}
	s.head.Store(1)
	if got, _ := s.ReadStream(ctx, "st", 1, 0); len(got) != 1 {
		t.Fatalf("ReadStream returned %d events with head 1", len(got))
	}
	if rev, _ := s.StreamRevision(ctx, "st"); rev != 1 {
		t.Fatalf("StreamRevision = %d with head 1", rev)
	}
	if _, err := s.ReadHashes([]int64{2}); !errors.Is(err, ledger.ErrNotFound) {
		t.Fatalf("ReadHashes past the published tree: %v", err)
	}
	s.head.Store(3)
}

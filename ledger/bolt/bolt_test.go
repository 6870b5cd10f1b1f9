package bolt_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/heed/heed/ledger"
	"github.com/heed/heed/ledger/bolt"
	"github.com/heed/heed/ledger/storetest"
)

func openTemp(t *testing.T, opts ...bolt.Option) (*bolt.Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "heed.db")
	s, err := bolt.Open(path, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return s, path
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) ledger.Store {
		s, _ := openTemp(t)
		return s
	})
}

// TestConformanceFolding runs the suite with the stream index folded into
// the file after every commit or every few events, so reads and revision
// checks meet entries in memory, in the file, and in both.
func TestConformanceFolding(t *testing.T) {
	for _, n := range []int{1, 3} {
		t.Run(fmt.Sprint("every=", n), func(t *testing.T) {
			storetest.Run(t, func(t *testing.T) ledger.Store {
				s, _ := openTemp(t, bolt.FoldEvery(n))
				return s
			})
		})
	}
}

// TestStreamsKnownAfterReopen checks that a stream stored before a reopen is
// never taken for a new one once the store trusts its filter of stream
// names, whether its index entries were folded into the file or are rebuilt
// from the events at open.
func TestStreamsKnownAfterReopen(t *testing.T) {
	for _, fold := range []int{1, 1 << 16} {
		t.Run(fmt.Sprintf("fold every %d", fold), func(t *testing.T) {
			ctx := context.Background()
			s, path := openTemp(t, bolt.FoldEvery(fold))
			const streams = 300
			for i := range streams {
				if _, err := s.Append(ctx, fmt.Sprintf("contact-%d", i), ledger.NoStream(), []ledger.Event{storetest.Consent("acme", "s", 300)}); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s, err := bolt.Open(path, bolt.FoldEvery(fold))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			bolt.WaitLearned(s)
			if !bolt.Learned(s) {
				t.Fatal("the store did not finish reading its stream names")
			}
			for i := range streams {
				_, err := s.Append(ctx, fmt.Sprintf("contact-%d", i), ledger.NoStream(), []ledger.Event{storetest.Consent("acme", "s", 300)})
				if !errors.Is(err, ledger.ErrWrongRevision) {
					t.Fatalf("append to stored stream %d as new: %v, want ErrWrongRevision", i, err)
				}
			}
			if _, err := s.Append(ctx, "contact-new", ledger.NoStream(), []ledger.Event{storetest.Consent("acme", "s", 300)}); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Append(ctx, "contact-7", ledger.Exact(1), []ledger.Event{storetest.Consent("acme", "s", 300)}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestIDIndexPacked checks that ids that keep sorting above the index's
// last key, as NewID's do, fill its pages, where bbolt's default would
// leave each split page about half empty.
func TestIDIndexPacked(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	defer s.Close()
	for b := range 40 {
		evs := make([]ledger.Event, 100)
		for i := range evs {
			evs[i] = storetest.Consent("acme", "s", 300)
			evs[i].ID = ledger.NewID()
		}
		if _, err := s.Append(ctx, fmt.Sprintf("contact-%d", b), ledger.NoStream(), evs); err != nil {
			t.Fatal(err)
		}
	}
	if fill := bolt.IDsFill(s); fill < 0.85 {
		t.Fatalf("id index pages %.0f%% full, want at least 85%%", 100*fill)
	}
}

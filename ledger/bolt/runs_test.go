package bolt_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/heed/heed/ledger"
	"github.com/heed/heed/ledger/bolt"
	"github.com/heed/heed/ledger/storetest"
)

// TestRunsStayFew appends to a store that folds every 64 events, so that
// hundreds of runs are written and merged level by level, and checks that
// few runs stay live, that the runs merges replace leave the file, and
// that every stream reads back whole and takes appends at its exact
// revision, before and after reopening mid-merge.
func TestRunsStayFew(t *testing.T) {
	const every, per = 64, 8
	opts := []bolt.Option{bolt.FoldEvery(every), bolt.FoldAsyncFrom(1 << 20)}
	s, path := openTemp(t, opts...)
	revs := map[string]uint64{}
	appendStreams(t, s, 400*every, per, revs)
	checkRevs(t, s, revs)
	levels, buckets := bolt.RunLevels(s)
	t.Logf("after %d folds: live runs at levels %v, %d run buckets", 400, levels, buckets)
	// 400 folds make four levels of merges; a level holds fewer than
	// twice the fanout runs, one merge of it in progress.
	if len(levels) > 4*(2*bolt.RunFanout-1) || levels[0] < 3 {
		t.Fatalf("live runs at levels %v: too many, or not merged", levels)
	}
	for i := 1; i < len(levels); i++ {
		if levels[i] > levels[i-1] {
			t.Fatalf("live runs at levels %v: a newer run above an older one", levels)
		}
	}
	// The runs merged away are deleted a slice per commit, runRate…
	// entries per event: a few thousand events clear them.
	if buckets > len(levels)+20 {
		t.Fatalf("%d run buckets for %d live runs: the dead ones are not deleted", buckets, len(levels))
	}
	s.Close()
	for round := range 2 {
		s, err := bolt.Open(path, opts...)
		if err != nil {
			t.Fatal(err)
		}
		checkRevs(t, s, revs)
		appendStreams(t, s, 20*every, per, revs)
		checkRevs(t, s, revs)
		if _, err := s.Append(context.Background(), "f-3", ledger.Exact(revs["f-3"]-1), []ledger.Event{storetest.Consent("t", "f-3", 0)}); !errors.Is(err, ledger.ErrWrongRevision) {
			t.Fatalf("round %d: append at a stale revision: %v, want ErrWrongRevision", round, err)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
	}
}

// TestOpensFileFromBeforeRuns opens testdata/v1.db, written by the store
// before runs (format heed-ledger-1: the stream index in one streams
// bucket, the last events unfolded): 30 streams v1-00 … v1-29 of 7 events
// each, appended in turn, ids v1-id-SS-K. Read-only, it reads the same and
// leaves the file alone; opened for writing, it moves to the new format,
// keeps every stream's revision, retries and conflicts, and folds new
// entries into runs.
func TestOpensFileFromBeforeRuns(t *testing.T) {
	ctx := context.Background()
	golden, err := os.ReadFile(filepath.Join("testdata", "v1.db"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "heed.db")
	if err := os.WriteFile(path, golden, 0o600); err != nil {
		t.Fatal(err)
	}
	revs := map[string]uint64{}
	for i := range 30 {
		revs[fmt.Sprintf("v1-%02d", i)] = 7
	}
	ro, err := bolt.Open(path, bolt.ReadOnly())
	if err != nil {
		t.Fatal(err)
	}
	checkRevs(t, ro, revs)
	ro.Close()
	if now, _ := os.ReadFile(path); !bytes.Equal(now, golden) {
		t.Fatal("a read-only open changed the file")
	}

	opts := []bolt.Option{bolt.FoldEvery(8), bolt.FoldAsyncFrom(1 << 20)}
	s, err := bolt.Open(path, opts...)
	if err != nil {
		t.Fatal(err)
	}
	checkRevs(t, s, revs)
	// A retry of a stored event is answered with it; its id with other
	// content, or in another stream, is refused.
	e := storetest.Consent("t", "v1-05", 0)
	e.ID = "v1-id-05-3"
	out, err := s.Append(ctx, "v1-05", ledger.Any(), []ledger.Event{e})
	if err != nil || !out[0].Replayed || out[0].Revision != 4 {
		t.Fatalf("retry of revision 4 of v1-05: %+v, %v", out, err)
	}
	if _, err := s.Append(ctx, "v1-06", ledger.Any(), []ledger.Event{e}); !errors.Is(err, ledger.ErrIDConflict) {
		t.Fatalf("a stored id in another stream: %v, want ErrIDConflict", err)
	}
	if _, err := s.Append(ctx, "v1-07", ledger.Exact(6), []ledger.Event{storetest.Consent("t", "v1-07", 0)}); !errors.Is(err, ledger.ErrWrongRevision) {
		t.Fatalf("append at revision 6 of a stream at 7: %v, want ErrWrongRevision", err)
	}
	if _, err := s.Append(ctx, "v1-07", ledger.NoStream(), []ledger.Event{storetest.Consent("t", "v1-07", 0)}); !errors.Is(err, ledger.ErrWrongRevision) {
		t.Fatalf("append as a new stream to a stored one: %v, want ErrWrongRevision", err)
	}
	// Enough appends to the old streams that their later revisions fold
	// into runs and merge.
	for k := range 40 {
		for i := range 30 {
			stream := fmt.Sprintf("v1-%02d", i)
			if _, err := s.Append(ctx, stream, ledger.Exact(revs[stream]), []ledger.Event{storetest.Consent("t", stream, 0)}); err != nil {
				t.Fatalf("round %d, %s: %v", k, stream, err)
			}
			revs[stream]++
		}
	}
	checkRevs(t, s, revs)
	if levels, _ := bolt.RunLevels(s); len(levels) == 0 || levels[0] == 0 {
		t.Fatalf("live runs at levels %v after 1200 appends folding every 8", levels)
	}
	s.Close()
	s, err = bolt.Open(path, opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	checkRevs(t, s, revs)
}

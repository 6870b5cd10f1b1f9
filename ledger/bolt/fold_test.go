package bolt_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/heed/heed/ledger"
	"github.com/heed/heed/ledger/bolt"
	"github.com/heed/heed/ledger/storetest"
)

// appendStreams appends to streams "f-0", "f-1", … in turn, perEvent
// events a call, until n events are in; it returns each stream's revision.
func appendStreams(t *testing.T, s *bolt.Store, n, per int, revs map[string]uint64) {
	t.Helper()
	ctx := context.Background()
	for i := 0; i < n; i += per {
		stream := fmt.Sprintf("f-%d", (i/per)%97)
		evs := make([]ledger.Event, per)
		for j := range evs {
			evs[j] = storetest.Consent("t", stream, 0)
		}
		out, err := s.Append(ctx, stream, ledger.Exact(revs[stream]), evs)
		if err != nil {
			t.Fatal(err)
		}
		revs[stream] = out[len(out)-1].Revision
	}
}

// checkRevs reads every stream back whole and checks its revisions
// run 1..n in position order, as recorded in revs.
func checkRevs(t *testing.T, s *bolt.Store, revs map[string]uint64) {
	t.Helper()
	ctx := context.Background()
	for stream, want := range revs {
		got, err := s.ReadStream(ctx, stream, 1, 0)
		if err != nil {
			t.Fatalf("%s: %v", stream, err)
		}
		if uint64(len(got)) != want {
			t.Fatalf("%s: %d events, want %d", stream, len(got), want)
		}
		for i, e := range got {
			if e.Revision != uint64(i+1) || (i > 0 && e.Position <= got[i-1].Position) {
				t.Fatalf("%s: event %d has revision %d position %d", stream, i, e.Revision, e.Position)
			}
		}
		if rev, err := s.StreamRevision(ctx, stream); err != nil || rev != want {
			t.Fatalf("%s: revision %d, %v; want %d", stream, rev, err, want)
		}
	}
}

// TestFoldSpreadsOverCommits checks that a fold writes its entries a slice
// per commit, not all in one (which stalled every appender for 100–200 ms
// at the default size), whether the entries are sorted by the committer or
// off it, and that streams read back whole throughout.
func TestFoldSpreadsOverCommits(t *testing.T) {
	const every, per = 2048, 8
	for _, tc := range []struct {
		name  string
		async int
	}{{"sorted by the committer", 1 << 20}, {"sorted off the committer", 1}} {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := openTemp(t, bolt.FoldEvery(every), bolt.FoldAsyncFrom(tc.async))
			defer s.Close()
			revs := map[string]uint64{}
			appendStreams(t, s, 3*every, per, revs)
			checkRevs(t, s, revs)
			st := s.Stats()
			if st.Folded < every {
				t.Fatalf("folded %d entries after %d events, want at least %d", st.Folded, 3*every, every)
			}
			// A generation of `every` entries spread over every events,
			// per events a commit: about 8 entries a commit.
			if limit := int64(2 * every * per / every); st.FoldMax > limit {
				t.Fatalf("one commit folded %d entries, want at most %d", st.FoldMax, limit)
			}
		})
	}
}

// TestReopenMidFold closes the store while a fold is part-way through, so
// the bucket holds some of the generation's entries and memory the rest,
// then reopens it, reads every stream, appends at exact revisions and
// reopens again.
func TestReopenMidFold(t *testing.T) {
	const every, per = 2048, 8
	opts := []bolt.Option{bolt.FoldEvery(every), bolt.FoldAsyncFrom(1 << 20)}
	s, path := openTemp(t, opts...)
	revs := map[string]uint64{}
	// The first fold starts when the head reaches every and takes every
	// events to finish; the second starts there: stop an eighth of the
	// way through it.
	appendStreams(t, s, 2*every+every/8, per, revs)
	st := s.Stats()
	if st.Folded <= every || st.Folded >= 2*every {
		t.Fatalf("folded %d entries: not part-way through the second fold", st.Folded)
	}
	s.Close()
	for round := range 2 {
		s, err := bolt.Open(path, opts...)
		if err != nil {
			t.Fatal(err)
		}
		checkRevs(t, s, revs)
		appendStreams(t, s, every/2, per, revs)
		checkRevs(t, s, revs)
		if err := s.Close(); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
	}
}

// TestRetryAfterReopen: a retried append is recognised by its ids after a
// restart, with the stream index folded into the file or rebuilt in
// memory from the events, Lookup finds the ids, and a reused id with other
// content is refused.
func TestRetryAfterReopen(t *testing.T) {
	ctx := context.Background()
	for _, every := range []int{4, 1 << 16} {
		t.Run(fmt.Sprint("fold every ", every), func(t *testing.T) {
			opts := []bolt.Option{bolt.FoldEvery(every)}
			s, path := openTemp(t, opts...)
			var batches [][]ledger.Event
			var first [][]ledger.Event
			for b := range 5 {
				evs := make([]ledger.Event, 4)
				for i := range evs {
					evs[i] = storetest.Consent("t", "s", 0)
				}
				out, err := s.Append(ctx, fmt.Sprint("r-", b), ledger.NoStream(), evs)
				if err != nil {
					t.Fatal(err)
				}
				batches, first = append(batches, evs), append(first, out)
			}
			s.Close()
			s, err := bolt.Open(path, opts...)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			head, _ := s.Head(ctx)
			for b, evs := range batches {
				again, err := s.Append(ctx, fmt.Sprint("r-", b), ledger.Any(), evs)
				if err != nil {
					t.Fatalf("retry of batch %d: %v", b, err)
				}
				for i := range again {
					if again[i].Position != first[b][i].Position || again[i].ID != first[b][i].ID {
						t.Fatalf("retry of batch %d: event %d at %d, first at %d", b, i, again[i].Position, first[b][i].Position)
					}
				}
				got, found, err := s.Lookup(ctx, evs[0].ID)
				if err != nil || !found || got.Position != first[b][0].Position {
					t.Fatalf("Lookup of batch %d's first id: %v %v %v", b, got.Position, found, err)
				}
			}
			if h, _ := s.Head(ctx); h != head {
				t.Fatalf("retries moved the head from %d to %d", head, h)
			}
			other := storetest.Consent("t", "s", 0)
			other.ID = batches[2][1].ID
			if _, err := s.Append(ctx, "elsewhere", ledger.Any(), []ledger.Event{other}); !errors.Is(err, ledger.ErrIDConflict) {
				t.Fatalf("a reused id with other content: %v, want ErrIDConflict", err)
			}
		})
	}
}

package bolt_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/google/uuid"
	"go.etcd.io/bbolt"

	"github.com/heed/heed/ledger"
	"github.com/heed/heed/ledger/bolt"
	"github.com/heed/heed/ledger/storetest"
)

// TestRandomIDs appends events whose ids sort anywhere (as ids derived from
// content do: an imported contract, a timer, an INVITE) through enough
// folds and merges that their id entries are spread over memory, runs of
// several levels and a reopen, and checks that every one is still known:
// a retry in its stream is answered with the stored event, the same id in
// another stream or with other content is refused, and Lookup finds it.
func TestRandomIDs(t *testing.T) {
	ctx := context.Background()
	const n = 2000
	opts := []bolt.Option{bolt.FoldEvery(64), bolt.FoldAsyncFrom(1 << 20)}
	s, path := openTemp(t, opts...)
	stored := make([]ledger.Event, 0, n)
	appendSome := func(s *bolt.Store, from, to int) {
		for i := from; i < to; i++ {
			e := storetest.Consent("t", fmt.Sprintf("s%d", i%50), 0)
			e.ID = uuid.NewString()
			out, err := s.Append(ctx, fmt.Sprintf("r-%d", i%50), ledger.Any(), []ledger.Event{e})
			if err != nil {
				t.Fatal(err)
			}
			stored = append(stored, out[0])
		}
	}
	check := func(s *bolt.Store, when string) {
		t.Helper()
		for i, e := range stored {
			retry := e
			retry.Revision, retry.Position, retry.RecordedAt, retry.Replayed = 0, 0, retry.RecordedAt.AddDate(0, 0, 1), false
			out, err := s.Append(ctx, e.Stream, ledger.Any(), []ledger.Event{retry})
			if err != nil || !out[0].Replayed || out[0].Position != e.Position {
				t.Fatalf("%s: retry of event %d: %+v, %v", when, i, out, err)
			}
			if i%7 == 0 {
				if _, err := s.Append(ctx, "other", ledger.Any(), []ledger.Event{retry}); !errors.Is(err, ledger.ErrIDConflict) {
					t.Fatalf("%s: id of event %d in another stream: %v, want ErrIDConflict", when, i, err)
				}
				changed := retry
				changed.Subject = "someone else"
				if _, err := s.Append(ctx, e.Stream, ledger.Any(), []ledger.Event{changed}); !errors.Is(err, ledger.ErrIDConflict) {
					t.Fatalf("%s: id of event %d with other content: %v, want ErrIDConflict", when, i, err)
				}
			}
			got, found, err := s.Lookup(ctx, e.ID)
			if err != nil || !found || got.Position != e.Position {
				t.Fatalf("%s: Lookup of event %d: position %d, %v, %v", when, i, got.Position, found, err)
			}
		}
		if _, found, err := s.Lookup(ctx, uuid.NewString()); err != nil || found {
			t.Fatalf("%s: Lookup of an id never stored: %v, %v", when, found, err)
		}
	}
	appendSome(s, 0, n/2)
	check(s, "before reopening")
	s.Close()
	s, err := bolt.Open(path, opts...)
	if err != nil {
		t.Fatal(err)
	}
	appendSome(s, n/2, n)
	check(s, "after reopening")
	if levels, _ := bolt.RunLevels(s); len(levels) < 2 || levels[0] < 1 {
		t.Fatalf("runs at levels %v: the ids never reached merged runs", levels)
	}
	s.Close()
	s, err = bolt.Open(path, bolt.ReadOnly())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i, e := range stored {
		if got, found, err := s.Lookup(ctx, e.ID); err != nil || !found || got.Position != e.Position {
			t.Fatalf("read-only: Lookup of event %d: %v, %v", i, found, err)
		}
	}
}

// TestIDStreamNamesRefused: the id index's pseudo-streams start with a NUL
// byte, which no stream name may.
func TestIDStreamNamesRefused(t *testing.T) {
	s, _ := openTemp(t)
	defer s.Close()
	if _, err := s.Append(context.Background(), "\x00"+uuid.NewString(), ledger.Any(), []ledger.Event{storetest.Consent("t", "s", 0)}); !errors.Is(err, ledger.ErrInvalid) {
		t.Fatalf("append to a stream named with a NUL byte: %v, want ErrInvalid", err)
	}
}

// TestFileOfFormat2MovesToFormat3: a file written before ids out of order
// went to the stream index (format heed-ledger-2, every id in the ids
// bucket) keeps answering retries, and its first writable open marks it
// heed-ledger-3, so that older code, which would not find such ids, no
// longer opens it; a read-only open leaves it alone.
func TestFileOfFormat2MovesToFormat3(t *testing.T) {
	ctx := context.Background()
	s, path := openTemp(t)
	first, err := s.Append(ctx, "st", ledger.NoStream(), []ledger.Event{storetest.Consent("t", "s", 0)})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	format := func(set string) string {
		t.Helper()
		db, err := bbolt.Open(path, 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var got string
		if err := db.Update(func(tx *bbolt.Tx) error {
			m := tx.Bucket([]byte("meta"))
			got = string(m.Get([]byte("format")))
			if set != "" {
				return m.Put([]byte("format"), []byte(set))
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := format("heed-ledger-2"); got != "heed-ledger-3" {
		t.Fatalf("a new file has format %q, want heed-ledger-3", got)
	}
	ro, err := bolt.Open(path, bolt.ReadOnly())
	if err != nil {
		t.Fatal(err)
	}
	ro.Close()
	if got := format(""); got != "heed-ledger-2" {
		t.Fatalf("a read-only open changed the format to %q", got)
	}
	s, err = bolt.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	again, err := s.Append(ctx, "st", ledger.NoStream(), first)
	if err != nil || !again[0].Replayed {
		t.Fatalf("retry in a file of format 2: %+v, %v", again, err)
	}
	s.Close()
	if got := format(""); got != "heed-ledger-3" {
		t.Fatalf("after a writable open the format is %q, want heed-ledger-3", got)
	}
	format("heed-ledger-4")
	if _, err := bolt.Open(path); !errors.Is(err, bolt.ErrCorrupt) {
		t.Fatalf("a file of an unknown format: %v, want ErrCorrupt", err)
	}
}

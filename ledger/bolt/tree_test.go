package bolt_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"testing"

	"go.etcd.io/bbolt"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/heed/heed/ledger"
	"github.com/heed/heed/ledger/bolt"
	"github.com/heed/heed/ledger/storetest"
)

// TestTreeOneValuePerLeafStillReads: files written before a batch's tree
// hashes became one value kept one value per leaf. Such a file opens, its
// tree hashes read back the same, and appends on top of it build the same
// tree as on a new file.
func TestTreeOneValuePerLeafStillReads(t *testing.T) {
	ctx := context.Background()
	appendBatches := func(s *bolt.Store, from, batches int) {
		t.Helper()
		for b := range batches {
			evs := make([]ledger.Event, 7)
			for i := range evs {
				evs[i] = storetest.Consent("t", "s", 0)
			}
			if _, err := s.Append(ctx, fmt.Sprintf("st-%d", from+b), ledger.NoStream(), evs); err != nil {
				t.Fatal(err)
			}
		}
	}
	roots := func(s *bolt.Store) []tlog.Hash {
		t.Helper()
		head, err := s.Head(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var out []tlog.Hash
		for n := int64(1); n <= int64(head); n++ {
			h, err := tlog.TreeHash(n, s)
			if err != nil {
				t.Fatalf("tree hash at %d: %v", n, err)
			}
			out = append(out, h)
		}
		return out
	}

	s, path := openTemp(t)
	appendBatches(s, 0, 5)
	want := roots(s)
	s.Close()

	// Rewrite the tree bucket one value per leaf, as older files have it.
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte("tree"))
		type kv struct {
			k uint64
			v []byte
		}
		var batches []kv
		if err := b.ForEach(func(k, v []byte) error {
			batches = append(batches, kv{binary.BigEndian.Uint64(k), append([]byte(nil), v...)})
			return nil
		}); err != nil {
			return err
		}
		if len(batches) != 5 {
			return fmt.Errorf("%d tree values for 5 batches", len(batches))
		}
		for _, bt := range batches {
			for leaf, off := int64(bt.k), int64(0); off < int64(len(bt.v)); leaf++ {
				n := (tlog.StoredHashCount(leaf+1) - tlog.StoredHashCount(leaf)) * tlog.HashSize
				k := binary.BigEndian.AppendUint64(nil, uint64(leaf))
				if err := b.Put(k, bt.v[off:off+n]); err != nil {
					return err
				}
				off += n
			}
		}
		return nil
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}

	s, err = bolt.Open(path)
	if err != nil {
		t.Fatalf("a file with one tree value per leaf: %v", err)
	}
	got := roots(s)
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("tree hash at size %d changed after the rewrite", i+1)
		}
	}
	if _, err := checkLog(s); err != nil {
		t.Fatal(err)
	}
	// New batches on top of the old layout: the tree must be the one the
	// leaves make, recomputed without the store (checkLog).
	appendBatches(s, 5, 3)
	if _, err := checkLog(s); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = bolt.Open(path)
	if err != nil {
		t.Fatalf("reopen after appending to a rewritten file: %v", err)
	}
	defer s.Close()
	if _, err := checkLog(s); err != nil {
		t.Fatal(err)
	}
}

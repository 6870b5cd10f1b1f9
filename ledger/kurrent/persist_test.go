package kurrent_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/heed/heed/ledger"
	"github.com/heed/heed/ledger/kurrent"
	"github.com/heed/heed/ledger/kurrent/fake"
	"github.com/heed/heed/ledger/ledgertest"
	"github.com/heed/heed/ledger/storetest"
)

func openIndexed(t *testing.T, srv *fake.Server, path string) *kurrent.Store {
	t.Helper()
	s, err := kurrent.Open(context.Background(), srv.URL(), kurrent.Options{Backoff: 5 * time.Millisecond, IndexPath: path})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func leaves(t *testing.T, s *kurrent.Store) []string {
	t.Helper()
	all, err := s.ReadAll(context.Background(), 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, len(all))
	for i, e := range all {
		l, err := e.Leaf()
		if err != nil {
			t.Fatal(err)
		}
		out[i] = string(l)
	}
	return out
}

func sameLeaves(t *testing.T, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d events, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("position %d differs:\n%s\n%s", i+1, got[i], want[i])
		}
	}
}

// TestIndexResumes: a restart loads the index from its file and reads only
// what $all gained meanwhile, and ends with the index a fresh start builds.
func TestIndexResumes(t *testing.T) {
	ctx := context.Background()
	srv, other := ledgertest.Kurrent(t)
	path := filepath.Join(t.TempDir(), "kurrent-index.db")
	a := openIndexed(t, srv, path)
	for range 20 {
		raw(t, srv, "other")
		if _, err := a.Append(ctx, "contact-acme-a", ledger.Any(), consents(3)); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	// Written while the instance was down, through another one.
	for range 5 {
		raw(t, srv, "other")
		if _, err := other.Append(ctx, "contact-acme-b", ledger.Any(), consents(2)); err != nil {
			t.Fatal(err)
		}
	}
	before := srv.AllReadEvents()
	b := openIndexed(t, srv, path)
	defer b.Close()
	read := srv.AllReadEvents() - before
	t.Logf("restart read %d events of $all", read)
	// The tail check reads 1 event, the catch-up what came after the file's
	// last position: 5 foreign and 10 heed events (and the last one again).
	if st := b.Stats(); st.Loaded != 60 || st.Indexed != 70 {
		t.Fatalf("loaded %d, indexed %d; want 60 from the file, 70 in all", st.Loaded, st.Indexed)
	}
	if read > 20 {
		t.Fatalf("the restart read %d events of $all; with the index file it needs ~17 of 95", read)
	}
	fresh, err := kurrent.Open(ctx, srv.URL(), kurrent.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	want := leaves(t, fresh)
	sameLeaves(t, leaves(t, b), want)
	// Appends after the restart continue the positions.
	out, err := b.Append(ctx, "contact-acme-a", ledger.Any(), consents(1))
	if err != nil || out[0].Position != 71 {
		t.Fatalf("append after restart at %v, %v; want position 71", out, err)
	}
}

// TestIndexFromAnotherCluster: an index file whose last event the server
// does not have (another cluster, or a wiped one) is discarded and the
// index rebuilt from $all.
func TestIndexFromAnotherCluster(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "kurrent-index.db")
	srv1, _ := ledgertest.Kurrent(t)
	a := openIndexed(t, srv1, path)
	if _, err := a.Append(ctx, "contact-acme-a", ledger.Any(), consents(4)); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	srv2, other := ledgertest.Kurrent(t)
	for range 3 {
		raw(t, srv2, "other")
		if _, err := other.Append(ctx, "contact-acme-z", ledger.Any(), consents(2)); err != nil {
			t.Fatal(err)
		}
	}
	b := openIndexed(t, srv2, path)
	if st := b.Stats(); st.Loaded != 0 || st.Indexed != 6 {
		t.Fatalf("loaded %d, indexed %d; want 0 from the stale file, 6 from $all", st.Loaded, st.Indexed)
	}
	sameLeaves(t, leaves(t, b), leaves(t, other))
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	// The rebuilt file is the new cluster's.
	c := openIndexed(t, srv2, path)
	defer c.Close()
	if st := c.Stats(); st.Loaded != 6 {
		t.Fatalf("after the rebuild, loaded %d from the file, want 6", st.Loaded)
	}
}

// TestConformanceFakeIndexFile runs the conformance suite with the index
// kept in a file, flushed every millisecond so flushes interleave with the
// suite's appends and follows.
func TestConformanceFakeIndexFile(t *testing.T) {
	storetest.Run(t, func(t *testing.T) ledger.Store {
		srv, err := fake.Start()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(srv.Close)
		s, err := kurrent.Open(context.Background(), srv.URL(), kurrent.Options{Backoff: 5 * time.Millisecond,
			IndexPath: filepath.Join(t.TempDir(), "index.db"), IndexFlush: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

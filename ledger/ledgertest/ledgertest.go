// Package ledgertest opens the three stores for tests that must hold on
// each of them: the in-memory store, the embedded bbolt store, and
// KurrentDB through its in-process fake. Every store it opens is empty and
// closed when the test ends.
package ledgertest

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/heed/heed/ledger"
	"github.com/heed/heed/ledger/bolt"
	"github.com/heed/heed/ledger/kurrent"
	"github.com/heed/heed/ledger/kurrent/fake"
	"github.com/heed/heed/ledger/mem"
)

// Opener opens a new, empty store.
type Opener func(t testing.TB) ledger.Store

// Stores are the three stores, by name: "mem", "bolt" and "kurrent".
var Stores = map[string]Opener{
	"mem":     func(t testing.TB) ledger.Store { return Mem(t) },
	"bolt":    func(t testing.TB) ledger.Store { return Bolt(t) },
	"kurrent": func(t testing.TB) ledger.Store { _, s := Kurrent(t); return s },
}

// Mem opens an in-memory store.
func Mem(t testing.TB) *mem.Store {
	s := mem.New()
	t.Cleanup(func() { s.Close() })
	return s
}

// Bolt opens an embedded bbolt store in a temporary directory.
func Bolt(t testing.TB) *bolt.Store {
	t.Helper()
	s, err := bolt.Open(filepath.Join(t.TempDir(), "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Kurrent starts a fake KurrentDB and opens a store on it; it returns
// both, so that a test can reach the server (stop it, open a second
// instance on it).
func Kurrent(t testing.TB) (*fake.Server, *kurrent.Store) {
	t.Helper()
	srv, err := fake.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := kurrent.Open(ctx, srv.URL(), kurrent.Options{Backoff: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return srv, s
}

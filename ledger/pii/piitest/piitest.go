// Package piitest checks that a pii.KeyStore behaves as pii relies on,
// so every implementation runs the same checks.
package piitest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/heed/heed/ledger/pii"
)

// Run checks the KeyStore that open returns; open is called once per
// subtest and may return the same store (subjects differ per subtest).
// The stores under test hold opaque bytes, so the keys here need not be
// wrapped.
func Run(t *testing.T, open func(t *testing.T) pii.KeyStore) {
	ctx := context.Background()
	t.Run("PutIfAbsentKeepsTheFirst", func(t *testing.T) {
		s := open(t)
		if w, err := s.Get(ctx, "put"); err != nil || w != nil {
			t.Fatalf("Get of an unknown subject = %q, %v; want nil, nil", w, err)
		}
		if _, ok, err := s.Erased(ctx, "put"); err != nil || ok {
			t.Fatalf("Erased of an unknown subject = %v, %v", ok, err)
		}
		got, err := s.PutIfAbsent(ctx, "put", []byte("first"))
		if err != nil || string(got) != "first" {
			t.Fatalf("first PutIfAbsent = %q, %v", got, err)
		}
		got, err = s.PutIfAbsent(ctx, "put", []byte("second"))
		if err != nil || string(got) != "first" {
			t.Fatalf("second PutIfAbsent = %q, %v; want the first key", got, err)
		}
		if w, err := s.Get(ctx, "put"); err != nil || string(w) != "first" {
			t.Fatalf("Get = %q, %v", w, err)
		}
	})
	t.Run("DeleteDestroysAndRecords", func(t *testing.T) {
		s := open(t)
		if _, err := s.PutIfAbsent(ctx, "del", []byte("old")); err != nil {
			t.Fatal(err)
		}
		at, err := s.Delete(ctx, "del")
		if err != nil {
			t.Fatal(err)
		}
		if w, err := s.Get(ctx, "del"); err != nil || w != nil {
			t.Fatalf("Get after Delete = %q, %v; want nothing", w, err)
		}
		if when, ok, err := s.Erased(ctx, "del"); err != nil || !ok || !when.Equal(at) {
			t.Fatalf("Erased = %v, %v, %v; want %v", when, ok, err, at)
		}
		again, err := s.Delete(ctx, "del")
		if err != nil || !again.Equal(at) {
			t.Fatalf("repeated Delete = %v, %v; want the recorded %v", again, err, at)
		}
		// A new key after erasure; erasing it is a new erasure.
		got, err := s.PutIfAbsent(ctx, "del", []byte("new"))
		if err != nil || string(got) != "new" {
			t.Fatalf("PutIfAbsent after Delete = %q, %v", got, err)
		}
		if w, err := s.Get(ctx, "del"); err != nil || string(w) != "new" {
			t.Fatalf("Get of the new key = %q, %v", w, err)
		}
		later, err := s.Delete(ctx, "del")
		if err != nil || later.Before(at) {
			t.Fatalf("second erasure = %v, %v; want at or after %v", later, err, at)
		}
		if w, err := s.Get(ctx, "del"); err != nil || w != nil {
			t.Fatalf("Get after the second Delete = %q, %v", w, err)
		}
		if when, ok, err := s.Erased(ctx, "del"); err != nil || !ok || !when.Equal(later) {
			t.Fatalf("Erased after the second erasure = %v, %v, %v; want %v", when, ok, err, later)
		}
	})
	t.Run("DeleteWithoutKey", func(t *testing.T) {
		s := open(t)
		at, err := s.Delete(ctx, "never")
		if err != nil {
			t.Fatal(err)
		}
		if when, ok, err := s.Erased(ctx, "never"); err != nil || !ok || !when.Equal(at) {
			t.Fatalf("Erased = %v, %v, %v; want %v", when, ok, err, at)
		}
	})
	t.Run("RacingPutsLeaveOneKey", func(t *testing.T) {
		s := open(t)
		const n = 8
		got := make([][]byte, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got[i], errs[i] = s.PutIfAbsent(ctx, "race", []byte(fmt.Sprintf("key-%d", i)))
			}()
		}
		wg.Wait()
		for i := range n {
			if errs[i] != nil {
				t.Fatal(errs[i])
			}
			if !bytes.Equal(got[i], got[0]) {
				t.Fatalf("racing PutIfAbsent: %q and %q both won", got[0], got[i])
			}
		}
		if w, err := s.Get(ctx, "race"); err != nil || !bytes.Equal(w, got[0]) {
			t.Fatalf("Get = %q, %v; want the winner %q", w, err, got[0])
		}
	})
	t.Run("ConcurrentSubjectsKeepTheirKeys", func(t *testing.T) {
		// A bulk import puts many subjects' keys at once, twice each.
		s := open(t)
		const n = 64
		got := make([][]byte, 2*n)
		errs := make([]error, 2*n)
		var wg sync.WaitGroup
		for i := range 2 * n {
			wg.Go(func() {
				got[i], errs[i] = s.PutIfAbsent(ctx, fmt.Sprintf("s-%d", i%n), []byte(fmt.Sprintf("key-%d", i)))
			})
		}
		wg.Wait()
		for i := range n {
			if errs[i] != nil || errs[i+n] != nil {
				t.Fatal(errors.Join(errs[i], errs[i+n]))
			}
			if !bytes.Equal(got[i], got[i+n]) || !bytes.Equal(got[i], []byte(fmt.Sprintf("key-%d", i))) && !bytes.Equal(got[i], []byte(fmt.Sprintf("key-%d", i+n))) {
				t.Fatalf("subject %d: %q and %q", i, got[i], got[i+n])
			}
			if w, err := s.Get(ctx, fmt.Sprintf("s-%d", i)); err != nil || !bytes.Equal(w, got[i]) {
				t.Fatalf("Get s-%d = %q, %v; want %q", i, w, err, got[i])
			}
		}
	})
}

package kurrent

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/heed/heed/ledger/kurrent/fake"
)

// TestEraseFinishesAfterCrash: an erasure recorded, then a crash before
// the key stream was tombstoned. The key is already out of reach, and the
// retried erasure tombstones it and returns the recorded time.
func TestEraseFinishesAfterCrash(t *testing.T) {
	srv, err := fake.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ctx := context.Background()
	s, err := Open(ctx, srv.URL(), Options{Backoff: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	k := NewKeyStore(s)
	if _, err := k.PutIfAbsent(ctx, "s", []byte("wrapped")); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 27, 4, 0, 0, 0, time.UTC)
	data, _ := json.Marshal(erasure{At: at})
	if err := s.appendRecord(ctx, k.erasureStream("s"), "heed-key-erased", uuid.New(), 0, data); err != nil {
		t.Fatal(err)
	}
	// The crash: recorded, not tombstoned.
	if w, err := k.Get(ctx, "s"); err != nil || w != nil {
		t.Fatalf("Get after the recorded erasure = %q, %v; want nothing", w, err)
	}
	if srv.Deleted(k.keyStream("s", 0)) {
		t.Fatal("set-up: already tombstoned")
	}
	got, err := k.Delete(ctx, "s")
	if err != nil || !got.Equal(at) {
		t.Fatalf("retried Delete = %v, %v; want the recorded %v", got, err, at)
	}
	if !srv.Deleted(k.keyStream("s", 0)) {
		t.Fatal("the retried erasure left the key stream readable")
	}
}

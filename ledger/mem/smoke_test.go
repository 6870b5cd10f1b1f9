package mem_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/heed/heed/ledger"
	"github.com/heed/heed/ledger/mem"
)

func consent(t *testing.T) ledger.Event {
	t.Helper()
	e, err := ledger.NewEvent("acme", "s1", time.Unix(1700000000, 0), &ledger.ConsentGranted{
		Purposes: []string{"service"}, Channels: []string{"sms"}, Source: "web_form",
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestTreeMatchesLeaves checks the tree the store keeps is the RFC 6962 tree
// of the leaves it returns, so checkpoints signed over it verify offline.
func TestTreeMatchesLeaves(t *testing.T) {
	ctx := context.Background()
	s := mem.New()
	for i := 0; i < 7; i++ {
		if _, err := s.Append(ctx, "st", ledger.Any(), []ledger.Event{consent(t)}); err != nil {
			t.Fatal(err)
		}
	}
	all, err := s.ReadAll(ctx, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	var recomputed []tlog.Hash
	rd := tlog.HashReaderFunc(func(ix []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(ix))
		for i, x := range ix {
			out[i] = recomputed[x]
		}
		return out, nil
	})
	for i := range all {
		leaf, err := all[i].Leaf()
		if err != nil {
			t.Fatal(err)
		}
		hs, err := tlog.StoredHashes(int64(i), leaf, rd)
		if err != nil {
			t.Fatal(err)
		}
		recomputed = append(recomputed, hs...)
	}
	want, _ := tlog.TreeHash(int64(len(all)), rd)
	got, err := tlog.TreeHash(int64(len(all)), s)
	if err != nil || got != want {
		t.Fatalf("tree hash %v, %v; want %v", got, err, want)
	}
}

func TestRetryReturnsOriginal(t *testing.T) {
	ctx := context.Background()
	s := mem.New()
	e := consent(t)
	first, err := s.Append(ctx, "st", ledger.NoStream(), []ledger.Event{e})
	if err != nil {
		t.Fatal(err)
	}
	again, err := s.Append(ctx, "st", ledger.NoStream(), []ledger.Event{e})
	if err != nil || again[0].Position != first[0].Position {
		t.Fatalf("retry: %v %+v", err, again)
	}
	e.Actor = "someone else"
	if _, err := s.Append(ctx, "st", ledger.Any(), []ledger.Event{e}); !errors.Is(err, ledger.ErrIDConflict) {
		t.Fatalf("changed content: %v", err)
	}
}

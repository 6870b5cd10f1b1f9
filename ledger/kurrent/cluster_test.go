package kurrent_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/heed/heed/ledger"
	"github.com/heed/heed/ledger/kurrent"
	"github.com/heed/heed/ledger/kurrent/fake"
)

// TestClusterLeaderChanges connects through gossip seeds to a three-node
// fake cluster, as deploy/kurrent/compose.yml does, and moves the leader
// twice: once by an election that leaves the old leader answering
// not-leader, once by the leader dying. Appends carry on, each written
// once, and a follower sees the whole log in order.
func TestClusterLeaderChanges(t *testing.T) {
	nodes, err := fake.StartCluster(3)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, n := range nodes {
			n.Close()
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := kurrent.Open(ctx, fake.ClusterURL(nodes), kurrent.Options{Backoff: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	var want []ledger.Event
	appendSome := func(rev uint64) {
		t.Helper()
		out, err := s.Append(ctx, "contact-acme-c", ledger.Exact(rev), consents(2))
		if err != nil {
			t.Fatalf("append at revision %d: %v", rev, err)
		}
		want = append(want, out...)
	}
	appendSome(0)
	nodes[1].MakeLeader() // node 0 is alive but no longer leads
	appendSome(2)
	nodes[1].Close() // the leader dies; node 2 is elected
	nodes[2].MakeLeader()
	appendSome(4)

	if n := nodes[0].Events(); n != len(want) {
		t.Fatalf("cluster holds %d events for %d appended", n, len(want))
	}
	var got []ledger.Event
	err = s.Follow(ctx, 1, func(e ledger.Event) error {
		got = append(got, e)
		if len(got) == len(want) {
			return errStop
		}
		return nil
	})
	if !errors.Is(err, errStop) {
		t.Fatalf("followed %d of %d: %v", len(got), len(want), err)
	}
	for i := range got {
		if got[i].ID != want[i].ID || got[i].Position != uint64(i+1) {
			t.Fatalf("position %d: %s, want %s", i+1, got[i].ID, want[i].ID)
		}
	}
	if s.Stats().Retries == 0 {
		t.Fatal("no retry counted across two leader changes")
	}
}

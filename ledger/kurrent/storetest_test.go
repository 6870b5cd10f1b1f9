package kurrent_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/heed/heed/ledger"
	"github.com/heed/heed/ledger/kurrent"
	"github.com/heed/heed/ledger/ledgertest"
	"github.com/heed/heed/ledger/storetest"
)

// TestConformanceFake runs the store conformance suite against the
// in-process fake server; it always runs, in CI too.
func TestConformanceFake(t *testing.T) {
	storetest.Run(t, func(t *testing.T) ledger.Store {
		_, s := ledgertest.Kurrent(t)
		return s
	})
}

// TestConformanceFakeNoStreamPositions runs the suite against a fake that,
// like some server versions, sends stream reads without commit positions.
func TestConformanceFakeNoStreamPositions(t *testing.T) {
	storetest.Run(t, func(t *testing.T) ledger.Store {
		srv, s := ledgertest.Kurrent(t)
		srv.OmitStreamPositions(true)
		return s
	})
}

// TestConformanceServer runs the suite against a real KurrentDB or
// EventStoreDB node or cluster named by HEED_KURRENTDB_URL, e.g.
// kurrentdb://127.0.0.1:2113?tls=false. Each subtest gets its own stream
// prefix, so the server need not be empty. This is the only check of the
// server's own behaviour (its idempotence, ordering and subscriptions);
// everything else here runs against the fake.
func TestConformanceServer(t *testing.T) {
	url := os.Getenv("HEED_KURRENTDB_URL")
	if url == "" {
		t.Skip("HEED_KURRENTDB_URL is not set: the conformance suite did NOT run against a real KurrentDB server (only against the in-process fake); see ledger/kurrent/README.md")
	}
	storetest.Run(t, func(t *testing.T) ledger.Store {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		s, err := kurrent.Open(ctx, url, kurrent.Options{Prefix: "heedtest-" + ledger.NewID() + "-"})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

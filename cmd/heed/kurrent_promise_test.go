package main

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/heed/heed/ledger"
	"github.com/heed/heed/ledger/kurrent"
	"github.com/heed/heed/ledger/kurrent/fake"
	"github.com/heed/heed/ledger/storetest"
)

// TestKurrentBehindRefused: with the log in KurrentDB, serve refuses a
// cluster holding fewer events than the data directory signed over
// (an emptied or old cluster), and accepts one that holds them all.
func TestKurrentBehindRefused(t *testing.T) {
	ctx := context.Background()
	srv, err := fake.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ks, err := kurrent.Open(ctx, srv.URL(), kurrent.Options{IndexPath: t.TempDir() + "/index.db"})
	if err != nil {
		t.Fatal(err)
	}
	defer ks.Close()
	d, err := openData(copyDir(t, realDir(t, 0)), "", "", false)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	err = d.checkHead(ctx, "the KurrentDB cluster", ks)
	if !errors.Is(err, ledger.ErrBehind) || !strings.Contains(err.Error(), "the KurrentDB cluster holds 0 events, but") {
		t.Fatalf("empty cluster: %v", err)
	}
	evs := make([]ledger.Event, sealedEvents)
	for i := range evs {
		evs[i] = storetest.Consent("acme", "s", 300)
	}
	if _, err := ks.Append(ctx, "st", ledger.Any(), evs); err != nil {
		t.Fatal(err)
	}
	if err := d.checkHead(ctx, "the KurrentDB cluster", ks); err != nil {
		t.Fatalf("cluster holding every signed event: %v", err)
	}
}

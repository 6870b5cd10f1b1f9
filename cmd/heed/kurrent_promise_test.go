package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/heed/heed/ledger"
	"github.com/heed/heed/ledger/kurrent"
	"github.com/heed/heed/ledger/kurrent/fake"
	"github.com/heed/heed/ledger/merkle"
	"github.com/heed/heed/ledger/storetest"
)

// TestKurrentPromise: with the log in KurrentDB the checkpoints promise
// the cluster's log, not ledger.db's (which stays empty): the data dir
// opens, serve refuses a cluster holding fewer events than signed (an
// emptied or old cluster), and accepts one that holds them all.
func TestKurrentPromise(t *testing.T) {
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

	// A data dir as serve --store leaves it: a signed checkpoint over
	// the cluster's first 40 events, and the local tree.
	dir := filepath.Join(t.TempDir(), "data")
	d, err := openDataFor(dir, "", "", false, true)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := d.Signer.Sign(merkle.Checkpoint{Origin: d.Origin, Size: 40})
	if err == nil {
		err = d.Checkpoints.Add(cp)
	}
	d.Close()
	if err != nil {
		t.Fatal(err)
	}
	if d, err := openData(dir, "", "", false); !errors.Is(err, ledger.ErrBehind) {
		if err == nil {
			d.Close()
		}
		t.Fatalf("embedded open of a KurrentDB data dir without its tree: %v (the checkpoints do not promise ledger.db)", err)
	}
	os.WriteFile(filepath.Join(dir, treeFile), nil, 0o600)
	for _, external := range []bool{true, false} { // false: told by tree.db
		d, err := openDataFor(dir, "", "", false, external)
		if err != nil {
			t.Fatalf("open (external %v): %v", external, err)
		}
		d.Close()
	}

	d, err = openDataFor(dir, "", "", false, true)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	err = d.checkHead(ctx, "the KurrentDB cluster", ks)
	if !errors.Is(err, ledger.ErrBehind) || !strings.Contains(err.Error(), "the KurrentDB cluster holds 0 events, but") {
		t.Fatalf("empty cluster: %v", err)
	}
	evs := make([]ledger.Event, 40)
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

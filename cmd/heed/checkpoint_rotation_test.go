package main

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/heed/heed/api"
	"github.com/heed/heed/ledger/merkle"
	"github.com/heed/heed/ledger/secrets"
)

// TestServedCheckpointCarriesRotations: after the signing key rotated, the
// checkpoint heed serve answers lists the announcement, so a browser that
// pinned the first key follows it to the key that signs the latest one.
func TestServedCheckpointCarriesRotations(t *testing.T) {
	ctx := context.Background()
	dir := newLedger(t, 12)
	first := readLine(t, filepath.Join(dir, secrets.VerifierFile))
	for range 2 {
		if code := run([]string{"keys", "rotate-signing", "--data", dir}); code != 0 {
			t.Fatalf("rotate-signing exit %d", code)
		}
		appendEvents(t, dir, 3)
	}
	d, err := openData(dir, "", "", false)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	a := api.LedgerAuditor{Store: d.Store, Hashes: d.Store, Checkpoints: d.Checkpoints, Seal: d.Sealer().Seal}
	cp, err := a.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(cp.Rotations) != 2 {
		t.Fatalf("%d rotations served, want 2", len(cp.Rotations))
	}
	chain, err := merkle.NewChain(first)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := chain.Active().Open([]byte(cp.Note)); err == nil {
		t.Fatal("the latest checkpoint verifies with the first key, which rotated away")
	}
	for i, r := range cp.Rotations {
		if _, err := chain.Open([]byte(r)); err != nil {
			t.Fatalf("rotation %d: %v", i, err)
		}
	}
	if got, err := chain.Open([]byte(cp.Note)); err != nil || got.Size != cp.Size {
		t.Fatalf("the latest checkpoint through the chain: size %d, %v; served size %d", got.Size, err, cp.Size)
	}
}

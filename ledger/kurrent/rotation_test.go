package kurrent_test

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/heed/heed/ledger"
	"github.com/heed/heed/ledger/bundle"
	"github.com/heed/heed/ledger/kurrent"
	"github.com/heed/heed/ledger/kurrent/fake"
	"github.com/heed/heed/ledger/merkle"
)

// TestSealerRotatesSigningKey: with the instances stopped, a rotation
// publishes a checkpoint signed by the old and the new key; restarted, the
// instance with the new key seals on, the one left with the old key
// imports but signs nothing, and bundles from either verify with only the
// original key.
func TestSealerRotatesSigningKey(t *testing.T) {
	srv, err := fake.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	ctx := context.Background()
	old, next := newSigner(t), newSigner(t)
	a := start(t, srv, "a", old)
	if _, err := a.store.Append(ctx, "contact-acme-s", ledger.Any(), consents(10)); err != nil {
		t.Fatal(err)
	}
	waitSealed(t, a, 10)
	a.stop()

	// The rotation, as `heed keys rotate-signing --store` runs it.
	dir := t.TempDir()
	cps, err := merkle.OpenCheckpoints(filepath.Join(dir, "checkpoints.db"), false)
	if err != nil {
		t.Fatal(err)
	}
	defer cps.Close()
	c, err := kurrent.OpenCluster(ctx, srv.URL(), dir, cps, old, "heed.example/l-kurrent-test", kurrent.Options{Backoff: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	c.Sealer.Holder, c.Sealer.TTL = "rotate", 5*time.Second
	ev, err := ledger.NewEvent("", "", time.Now(), &ledger.SigningKeyRotated{Old: old.VerifierKey(), New: next.VerifierKey(), Reason: "test"})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	rot, err := c.Sealer.Rotate(rctx, next, ev)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if rot.Size != 11 || rot.Rotation == nil || rot.Rotation.New != next.VerifierKey() {
		t.Fatalf("rotation checkpoint %+v", rot)
	}

	b := start(t, srv, "b", next)    // given the new key
	stale := start(t, srv, "s", old) // still holding the old one
	if _, err := b.store.Append(ctx, "contact-acme-s", ledger.Any(), consents(5)); err != nil {
		t.Fatal(err)
	}
	waitSealed(t, b, 16)
	waitSealed(t, stale, 16)
	for _, p := range publishers(t, srv) {
		if p == "s" {
			t.Fatal("the instance with the retired key published a checkpoint")
		}
	}
	for _, in := range []*instance{b, stale} {
		var list []merkle.Checkpoint
		if err := in.cps.List(1, 16, func(c merkle.Checkpoint) error { list = append(list, c); return nil }); err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := bundle.Export(ctx, &buf, in.store, "heed.example/l-kurrent-test", in.sealer.Signer.VerifierKey(), list, bundle.ExportOptions{Size: 16}); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(buf.String(), "heed-key-rotation") {
			t.Fatal("the bundle lacks the rotation announcement")
		}
		rep, err := bundle.Verify(ctx, &buf, bundle.Options{TrustedKey: old.VerifierKey()})
		if err != nil {
			t.Fatalf("bundle verified with the original key: %v", err)
		}
		if rep.Key != next.VerifierKey() {
			t.Fatalf("last checkpoint signed by %s, want the new key", bundle.KeyID(rep.Key))
		}
	}
}

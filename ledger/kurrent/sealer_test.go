package kurrent_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/kurrent-io/KurrentDB-Client-Go/kurrentdb"
	"golang.org/x/mod/sumdb/note"

	"github.com/heed/heed/ledger"
	"github.com/heed/heed/ledger/bundle"
	"github.com/heed/heed/ledger/kurrent"
	"github.com/heed/heed/ledger/kurrent/fake"
	"github.com/heed/heed/ledger/ledgertest"
	"github.com/heed/heed/ledger/merkle"
)

func TestLeaseExclusive(t *testing.T) {
	_, s := ledgertest.Kurrent(t)
	ctx := context.Background()
	const ttl = 300 * time.Millisecond
	a, b := s.NewLease("test", "a", ttl), s.NewLease("test", "b", ttl)
	try := func(l *kurrent.Lease, name string, want bool) {
		t.Helper()
		got, err := l.Try(ctx)
		if err != nil || got != want {
			t.Fatalf("%s.Try = %v, %v; want %v", name, got, err, want)
		}
	}
	try(a, "a", true)
	try(b, "b", false)
	time.Sleep(ttl / 2)
	try(a, "a", true) // renewed
	time.Sleep(ttl / 2)
	try(b, "b", false) // a renewed within the term: b starts counting again
	time.Sleep(ttl + ttl/3)
	try(b, "b", true) // a stopped renewing: b takes over
	try(a, "a", false)
	if a.Held() {
		t.Fatal("a still believes it holds the lease")
	}
	if err := b.Release(ctx); err != nil {
		t.Fatal(err)
	}
	try(a, "a", true) // released: no wait
}

func newSigner(t *testing.T) *merkle.Signer {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, "heed.example/l-kurrent-test")
	if err != nil {
		t.Fatal(err)
	}
	sg, err := merkle.NewSigner(skey, vkey)
	if err != nil {
		t.Fatal(err)
	}
	return sg
}

type instance struct {
	store  *kurrent.Store
	sealer *kurrent.Sealer
	cps    *merkle.Checkpoints
	stop   context.CancelFunc
	done   chan error
}

func start(t *testing.T, srv *fake.Server, name string, sg *merkle.Signer) *instance {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	cps, err := merkle.OpenCheckpoints(filepath.Join(dir, "checkpoints.db"), false)
	if err != nil {
		t.Fatal(err)
	}
	c, err := kurrent.OpenCluster(ctx, srv.URL(), dir, cps, sg, "heed.example/l-kurrent-test", kurrent.Options{Backoff: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	c.Sealer.Holder, c.Sealer.TTL, c.Sealer.Interval = name, 300*time.Millisecond, 30*time.Millisecond
	in := &instance{store: c.Store, sealer: c.Sealer, cps: cps, done: make(chan error, 1)}
	rctx, cancel := context.WithCancel(ctx)
	in.stop = cancel
	go func() { in.done <- in.sealer.Run(rctx) }()
	t.Cleanup(func() {
		cancel()
		<-in.done
		c.Close()
		cps.Close()
	})
	return in
}

// waitSealed waits until in's checkpoint list covers size events.
func waitSealed(t *testing.T, in *instance, size int64) merkle.Checkpoint {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if cp, err := in.cps.Latest(); err == nil && cp.Size >= size {
			return cp
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no checkpoint of size %d within 10s", size)
	return merkle.Checkpoint{}
}

// publishers returns who published each checkpoint in the cluster.
func publishers(t *testing.T, srv *fake.Server) []string {
	t.Helper()
	cfg, _ := kurrentdb.ParseConnectionString(srv.URL())
	cfg.Logger = kurrentdb.NoopLogging()
	c, err := kurrentdb.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rs, err := c.ReadStream(context.Background(), "checkpoints:heed-log", kurrentdb.ReadStreamOptions{}, 1000)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	var out []string
	for {
		ev, err := rs.Recv()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		var p struct{ Holder string }
		json.Unmarshal(ev.Event.Data, &p)
		out = append(out, p.Holder)
	}
}

// TestSealerFailover runs two instances' sealers on one cluster: one seals
// at a time, the other imports its checkpoints; when the sealing instance
// dies, the other takes over within the lease term and extends the same
// history, and a bundle exported from it verifies.
func TestSealerFailover(t *testing.T) {
	srv, err := fake.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	sg := newSigner(t)
	a := start(t, srv, "a", sg)
	b := start(t, srv, "b", sg)
	ctx := context.Background()
	for i := range 10 {
		w := []*instance{a, b}[i%2].store
		if _, err := w.Append(ctx, "contact-acme-s", ledger.Any(), consents(2)); err != nil {
			t.Fatal(err)
		}
	}
	cpA, cpB := waitSealed(t, a, 20), waitSealed(t, b, 20)
	if cpA.Root != cpB.Root || !bytes.Equal(cpA.Note, cpB.Note) {
		t.Fatal("the two instances hold different checkpoints of the same size")
	}
	first := publishers(t, srv)
	for _, p := range first {
		if p != first[0] {
			t.Fatalf("checkpoints published by %v: two sealers at once", first)
		}
	}
	leader, other := a, b
	if first[0] == "b" {
		leader, other = b, a
	}
	// The leader dies without releasing the lease.
	leader.store.Close()
	leader.stop()
	died := time.Now()
	if _, err := other.store.Append(ctx, "contact-acme-s", ledger.Any(), consents(10)); err != nil {
		t.Fatal(err)
	}
	cp := waitSealed(t, other, 30)
	// The dead leader renewed at most one interval (30 ms) before dying,
	// so the term ran out at least 270 ms later; half the term leaves
	// room for a slow machine and still fails a takeover without waiting.
	if took := time.Since(died); took < 150*time.Millisecond {
		t.Fatalf("took over after %v, without waiting for the lease term", took)
	}
	all := publishers(t, srv)
	if last := all[len(all)-1]; last == first[0] {
		t.Fatalf("checkpoint of size %d published by the dead instance %s", cp.Size, last)
	}

	var cps []merkle.Checkpoint
	if err := other.cps.List(1, cp.Size, func(c merkle.Checkpoint) error { cps = append(cps, c); return nil }); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := bundle.Export(ctx, &buf, other.store, "heed.example/l-kurrent-test", sg.VerifierKey(), cps, bundle.ExportOptions{}); err != nil {
		t.Fatal(err)
	}
	rep, err := bundle.Verify(ctx, &buf, bundle.Options{TrustedKey: sg.VerifierKey()})
	if err != nil {
		t.Fatalf("bundle from the surviving instance does not verify: %v", err)
	}
	t.Logf("verified: %+v", rep)
}

// TestSealerRefusesForgedHistory publishes, with the right key, a
// checkpoint whose root is not the log's. Every instance must stop with
// merkle.ErrInconsistent once its tree reaches that size, rather than
// carry on sealing past it.
func TestSealerRefusesForgedHistory(t *testing.T) {
	srv, err := fake.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	sg := newSigner(t)
	a := start(t, srv, "a", sg)
	ctx := context.Background()
	if _, err := a.store.Append(ctx, "st", ledger.Any(), consents(3)); err != nil {
		t.Fatal(err)
	}
	waitSealed(t, a, 3)
	forged, err := sg.Sign(merkle.Checkpoint{Origin: "heed.example/l-kurrent-test", Size: 5, Root: [32]byte{1, 2, 3}})
	if err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(map[string]any{"size": 5, "holder": "mallory", "note": string(forged.Note)})
	cfg, _ := kurrentdb.ParseConnectionString(srv.URL())
	cfg.Logger = kurrentdb.NoopLogging()
	c, err := kurrentdb.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.AppendToStream(ctx, "checkpoints:heed-log", kurrentdb.AppendToStreamOptions{},
		kurrentdb.EventData{EventID: uuid.New(), EventType: "HeedCheckpoint", ContentType: kurrentdb.ContentTypeJson, Data: data}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.store.Append(ctx, "st", ledger.Any(), consents(2)); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-a.done:
		a.done <- err // for the cleanup
		if !errors.Is(err, merkle.ErrInconsistent) {
			t.Fatalf("sealer stopped with %v, want ErrInconsistent", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("sealer carried on past a forged checkpoint")
	}
}

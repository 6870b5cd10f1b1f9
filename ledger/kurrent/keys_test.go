package kurrent_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/heed/heed/ledger"
	"github.com/heed/heed/ledger/kurrent"
	"github.com/heed/heed/ledger/kurrent/fake"
	"github.com/heed/heed/ledger/ledgertest"
	"github.com/heed/heed/ledger/pii"
	"github.com/heed/heed/ledger/pii/piitest"
)

func TestKeyStoreConformance(t *testing.T) {
	piitest.Run(t, func(t *testing.T) pii.KeyStore {
		_, s := ledgertest.Kurrent(t)
		return kurrent.NewKeyStore(s)
	})
}

var kek = bytes.Repeat([]byte{7}, 32)

// twoInstances returns the pii keys of two heed instances on one fake
// cluster, each with its own connection.
func twoInstances(t *testing.T) (*fake.Server, *kurrent.Store, *pii.Keys, *pii.Keys) {
	t.Helper()
	srv, a := ledgertest.Kurrent(t)
	b, err := kurrent.Open(context.Background(), srv.URL(), kurrent.Options{Backoff: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	ka, err := pii.New(kurrent.NewKeyStore(a), kek)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := pii.New(kurrent.NewKeyStore(b), kek)
	if err != nil {
		t.Fatal(err)
	}
	return srv, a, ka, kb
}

func TestKeysSharedBetweenInstances(t *testing.T) {
	srv, a, ka, kb := twoInstances(t)
	const subject = "5f1c0a"
	fields := map[string]string{"number": "+8613800138000"}
	sealed, err := ka.Seal(subject, fields)
	if err != nil {
		t.Fatal(err)
	}
	for name, k := range map[string]*pii.Keys{"sealing instance": ka, "other instance": kb} {
		got, err := k.Open(subject, sealed)
		if err != nil || got["number"] != fields["number"] {
			t.Fatalf("%s: Open = %v, %v", name, got, err)
		}
	}
	// The key streams are outside heed's positioned log.
	if h, err := a.Head(context.Background()); err != nil || h != 0 {
		t.Fatalf("head after sealing = %d, %v; want 0: key events entered the log", h, err)
	}

	// Erasure through B reaches A.
	at, err := kb.Erase(subject)
	if err != nil {
		t.Fatal(err)
	}
	for name, k := range map[string]*pii.Keys{"erasing instance": kb, "other instance": ka} {
		if _, err := k.Open(subject, sealed); !errors.Is(err, pii.ErrErased) {
			t.Fatalf("%s: Open after erasure = %v, want ErrErased", name, err)
		}
		if when, ok, err := k.Erased(subject); err != nil || !ok || !when.Equal(at) {
			t.Fatalf("%s: Erased = %v, %v, %v; want %v", name, when, ok, err, at)
		}
	}
	if !srv.Deleted("key:heed-" + subject + ".0") {
		t.Fatal("the erased key's stream was not tombstoned")
	}
	// A retry through A is the same erasure.
	if again, err := ka.Erase(subject); err != nil || !again.Equal(at) {
		t.Fatalf("repeated erasure through the other instance = %v, %v; want %v", again, err, at)
	}
	// New data after the erasure gets a new key, shared again; the old
	// data stays shut.
	fresh, err := kb.Seal(subject, fields)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ka.Open(subject, fresh); err != nil {
		t.Fatalf("new data through the other instance: %v", err)
	}
	if _, err := ka.Open(subject, sealed); !errors.Is(err, pii.ErrErased) {
		t.Fatalf("old data after a new key: %v", err)
	}
}

func TestRacingFirstSealsShareOneKey(t *testing.T) {
	srv, _, ka, kb := twoInstances(t)
	const subject = "9a77e0"
	const n = 6
	sealed := make([][]byte, 2*n)
	errs := make([]error, 2*n)
	var wg sync.WaitGroup
	for i := range 2 * n {
		k := []*pii.Keys{ka, kb}[i%2]
		wg.Add(1)
		go func() {
			defer wg.Done()
			sealed[i], errs[i] = k.Seal(subject, map[string]string{"i": string(rune('a' + i))})
		}()
	}
	wg.Wait()
	for i := range sealed {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		for _, k := range []*pii.Keys{ka, kb} {
			if got, err := k.Open(subject, sealed[i]); err != nil || got["i"] != string(rune('a'+i)) {
				t.Fatalf("seal %d: %v, %v", i, got, err)
			}
		}
	}
	if keys := srv.Data("key:heed-" + subject + ".0"); len(keys) != 1 {
		t.Fatalf("%d keys stored for one subject, want 1", len(keys))
	}
}

// TestKeyCreatedOnceDespiteLostAck: the server commits the new key but the
// acknowledgement is lost; the retry must not leave the caller with a key
// other than the stored one.
func TestKeyCreatedOnceDespiteLostAck(t *testing.T) {
	srv, _, ka, kb := twoInstances(t)
	const subject = "03bb1d"
	srv.FailAppends(fake.LostAck)
	sealed, err := ka.Seal(subject, map[string]string{"n": "1"})
	if err != nil {
		t.Fatal(err)
	}
	if srv.PendingFaults() != 0 {
		t.Fatal("the fault was not injected")
	}
	if _, err := kb.Open(subject, sealed); err != nil {
		t.Fatalf("Open through the other instance: %v", err)
	}
	if keys := srv.Data("key:heed-" + subject + ".0"); len(keys) != 1 {
		t.Fatalf("%d keys stored, want 1", len(keys))
	}
}

// TestEraseSubjectAcrossInstances runs pii's whole erasure (key, then
// SubjectErased in the log) through one instance and checks the other:
// events written through a's sealing store under two tenants' keys, one
// tenant erased through b, then every tenant.
func TestEraseSubjectAcrossInstances(t *testing.T) {
	_, a, ka, kb := twoInstances(t)
	ctx := context.Background()
	const subject = "c0ffee"
	sealing := pii.Seal(a, ka)
	stored := map[string]ledger.Event{}
	for _, tenant := range []string{"acme", "globex"} {
		e, err := ledger.NewEvent(tenant, subject, time.Now(), ledger.ComplaintReceived{Source: "customer", Reason: "called at 23:00 by " + tenant})
		if err != nil {
			t.Fatal(err)
		}
		out, err := sealing.Append(ctx, ledger.ContactStream(tenant, subject), ledger.Any(), []ledger.Event{e})
		if err != nil {
			t.Fatal(err)
		}
		if len(out[0].PII) == 0 || bytes.Contains(out[0].Data, []byte("23:00")) {
			t.Fatalf("%s's complaint was not sealed: %s", tenant, out[0].Data)
		}
		stored[tenant] = out[0]
	}
	opens := func(k *pii.Keys, tenant string) error {
		e := stored[tenant]
		_, err := k.OpenEvent(ctx, &e)
		return err
	}
	ev, err := pii.EraseSubject(ctx, a, kb, subject, "acme", "test", "customer_request")
	if err != nil {
		t.Fatal(err)
	}
	if ev.Type != ledger.TypeSubjectErased || ev.Stream != ledger.ContactStream("acme", subject) {
		t.Fatalf("erasure event %s in %s", ev.Type, ev.Stream)
	}
	for name, k := range map[string]*pii.Keys{"erasing instance": kb, "other instance": ka} {
		if err := opens(k, "acme"); !errors.Is(err, pii.ErrErased) {
			t.Fatalf("%s: acme's data after acme's erasure = %v, want ErrErased", name, err)
		}
		if err := opens(k, "globex"); err != nil {
			t.Fatalf("%s: globex's data after acme's erasure = %v", name, err)
		}
	}
	if _, err := pii.EraseEverywhere(ctx, a, ka, subject, []string{"acme", "globex"}, "customer", "customer_request"); err != nil {
		t.Fatal(err)
	}
	for name, k := range map[string]*pii.Keys{"erasing instance": ka, "other instance": kb} {
		if err := opens(k, "globex"); !errors.Is(err, pii.ErrErased) {
			t.Fatalf("%s: globex's data after erasing everywhere = %v, want ErrErased", name, err)
		}
	}
}

// TestSealedRetryIsANoOp: the same sealed write sent twice to the cluster
// stores one event, because SealEvent is deterministic per id and content.
func TestSealedRetryIsANoOp(t *testing.T) {
	_, a, ka, _ := twoInstances(t)
	ctx := context.Background()
	sealing := pii.Seal(a, ka)
	e, err := ledger.NewEvent("acme", "beef", time.Now(), ledger.ConsentWithdrawn{All: true, Via: "sms_keyword", RawText: "TD 张伟"})
	if err != nil {
		t.Fatal(err)
	}
	first, err := sealing.Append(ctx, ledger.ContactStream("acme", "beef"), ledger.Any(), []ledger.Event{e})
	if err != nil {
		t.Fatal(err)
	}
	again, err := sealing.Append(ctx, ledger.ContactStream("acme", "beef"), ledger.Any(), []ledger.Event{e})
	if err != nil || again[0].Position != first[0].Position {
		t.Fatalf("retry = %v, %v; want position %d", again, err, first[0].Position)
	}
	if h, _ := a.Head(ctx); h != 1 {
		t.Fatalf("head %d after a retried append, want 1", h)
	}
}

// TestKeyStoreServer runs the key store checks against the real KurrentDB
// named by HEED_KURRENTDB_URL, the only check of the server's own NoStream
// race and tombstones; each run uses a fresh prefix.
func TestKeyStoreServer(t *testing.T) {
	url := os.Getenv("HEED_KURRENTDB_URL")
	if url == "" {
		t.Skip("HEED_KURRENTDB_URL is not set: the key store checks did NOT run against a real KurrentDB server (only against the in-process fake); see ledger/kurrent/README.md")
	}
	piitest.Run(t, func(t *testing.T) pii.KeyStore {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		s, err := kurrent.Open(ctx, url, kurrent.Options{Prefix: "heedtest-" + ledger.NewID() + "-"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return kurrent.NewKeyStore(s)
	})
}

// TestEraseWithoutKeyLeavesNoSlot: erasing a subject that never had a key
// still tombstones its key stream (the server will not tombstone a stream
// never written, so a placeholder goes first), so a seal that began before
// the erasure cannot store a key there afterwards.
func TestEraseWithoutKeyLeavesNoSlot(t *testing.T) {
	srv, s := ledgertest.Kurrent(t)
	ctx := context.Background()
	k := kurrent.NewKeyStore(s)
	if _, err := k.Delete(ctx, "late"); err != nil {
		t.Fatal(err)
	}
	if !srv.Deleted("key:heed-late.0") {
		t.Fatal("key stream 0 of a subject erased without a key was left open")
	}
	for _, d := range srv.Data("key:heed-late.0") {
		if string(d) != "{}" {
			t.Fatalf("the placeholder holds %q", d)
		}
	}
	// The next key goes to the next stream.
	if w, err := k.PutIfAbsent(ctx, "late", []byte("k")); err != nil || string(w) != "k" {
		t.Fatalf("PutIfAbsent after the erasure = %q, %v", w, err)
	}
	if got := srv.Data("key:heed-late.1"); len(got) != 1 {
		t.Fatalf("%d events in key stream 1, want 1", len(got))
	}
}

package pii

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/mod/sumdb/note"

	"github.com/heed/heed/ledger"
	"github.com/heed/heed/ledger/mem"
	"github.com/heed/heed/ledger/merkle"
)

func key(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

func TestPseudonym(t *testing.T) {
	a := Pseudonym(key(1), "+8613800138000")
	if len(a) != 64 || strings.Contains(a, "8613800138000") {
		t.Fatalf("pseudonym %q", a)
	}
	if a != Pseudonym(key(1), "+8613800138000") {
		t.Fatal("not deterministic")
	}
	if a == Pseudonym(key(2), "+8613800138000") {
		t.Fatal("key does not matter")
	}
	if a == Pseudonym(key(1), "+8613800138001") {
		t.Fatal("neighbouring numbers collide")
	}
}

func openKeys(t *testing.T) (*Keys, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "keys.db")
	k, err := OpenKeys(path, key(9))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Close() })
	return k, path
}

func TestSealOpen(t *testing.T) {
	k, path := openKeys(t)
	fields := map[string]string{"number": "+8613800138000", "name": "张三"}
	sealed, err := k.Seal("s1", fields)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("138001")) {
		t.Fatal("sealed data contains the number in clear")
	}
	got, err := k.Open("s1", sealed)
	if err != nil || got["number"] != fields["number"] || got["name"] != fields["name"] {
		t.Fatalf("Open = %v, %v", got, err)
	}
	// Each subject has its own key: s1's data does not open as s2's.
	if _, err := k.Seal("s2", fields); err != nil {
		t.Fatal(err)
	}
	if _, err := k.Open("s2", sealed); err == nil {
		t.Fatal("s1's data opened under s2")
	}
	if _, err := k.Open("nobody", sealed); !errors.Is(err, ErrNoKey) {
		t.Fatalf("unknown subject: %v", err)
	}
	flipped := bytes.Clone(sealed)
	flipped[len(flipped)-1] ^= 1
	if _, err := k.Open("s1", flipped); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("flipped bit: %v", err)
	}
	k.Close()
	// The wrong key-encryption key cannot unwrap the data keys.
	wrong, err := OpenKeys(path, key(8))
	if err != nil {
		t.Fatal(err)
	}
	defer wrong.Close()
	if _, err := wrong.Open("s1", sealed); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("wrong KEK: %v", err)
	}
}

func TestEraseDestroysKeyAndCompactRemovesIt(t *testing.T) {
	k, path := openKeys(t)
	sealed, err := k.Seal("s1", map[string]string{"number": "+8613800138000"})
	if err != nil {
		t.Fatal(err)
	}
	var wrapped []byte
	k.store.(*BoltStore).db.View(func(tx *bolt.Tx) error {
		wrapped = bytes.Clone(tx.Bucket(bucketSubject).Get([]byte("s1")))
		return nil
	})
	at, err := k.Erase("s1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.Open("s1", sealed); !errors.Is(err, ErrErased) {
		t.Fatalf("Open after erase: %v", err)
	}
	again, err := k.Erase("s1")
	if err != nil || !again.Equal(at) {
		t.Fatalf("second Erase = %v, %v; want the first time %v", again, err, at)
	}
	if when, ok, err := k.Erased("s1"); err != nil || !ok || !when.Equal(at) {
		t.Fatalf("Erased = %v %v %v", when, ok, err)
	}
	// New data after erasure gets a new key; the old data stays shut.
	fresh, err := k.Seal("s1", map[string]string{"number": "+8613800138000"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.Open("s1", fresh); err != nil {
		t.Fatalf("new data: %v", err)
	}
	if _, err := k.Open("s1", sealed); !errors.Is(err, ErrErased) {
		t.Fatalf("old data under the new key: %v", err)
	}
	if did, err := k.CompactIfErased(); err != nil || !did {
		t.Fatalf("CompactIfErased after an erasure = %v, %v", did, err)
	}
	if did, err := k.CompactIfErased(); err != nil || did {
		t.Fatalf("CompactIfErased with nothing erased since = %v, %v", did, err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, wrapped) {
		t.Fatal("the destroyed key's bytes are still in the key file after Compact")
	}
	if _, err := k.Open("s1", fresh); err != nil {
		t.Fatalf("after Compact: %v", err)
	}
}

// failingOnce fails the first append, as a crash between the two steps of
// an erasure would.
type failingOnce struct {
	ledger.Store
	failed bool
}

func (f *failingOnce) Append(ctx context.Context, stream string, exp ledger.Expected, evs []ledger.Event) ([]ledger.Event, error) {
	if !f.failed {
		f.failed = true
		return nil, errors.New("power cut")
	}
	return f.Store.Append(ctx, stream, exp, evs)
}

func TestEraseSubjectKeepsSuppressionAndTree(t *testing.T) {
	ctx := context.Background()
	store := mem.New()
	defer store.Close()
	keys, _ := openKeys(t)
	pkey := key(7)
	const number = "+8613800138000"
	subject := Pseudonym(pkey, number)

	sealed, err := keys.Seal(Owner("acme", subject), map[string]string{"number": number})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	consent, _ := ledger.NewEvent("acme", subject, now, ledger.ConsentGranted{
		Purposes: []string{"service"}, Channels: []string{"sms"}, Source: "web_form"})
	consent.PII = sealed
	optOut, _ := ledger.NewEvent("", subject, now, ledger.SuppressionListed{Scope: "global", List: "national"})
	if _, err := store.Append(ctx, ledger.ContactStream("acme", subject), ledger.Any(), []ledger.Event{consent}); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Append(ctx, ledger.SubjectStream(subject), ledger.Any(), []ledger.Event{optOut}); err != nil {
		t.Fatal(err)
	}

	skey, vkey, _ := note.GenerateKey(rand.Reader, "o")
	signer, err := merkle.NewSigner(skey, vkey)
	if err != nil {
		t.Fatal(err)
	}
	cps, err := merkle.OpenCheckpoints(filepath.Join(t.TempDir(), "checkpoints.db"), false)
	if err != nil {
		t.Fatal(err)
	}
	defer cps.Close()
	sealer := &merkle.Sealer{Source: store, Signer: signer, Origin: "o", Checkpoints: cps}
	before, err := sealer.Seal(ctx)
	if err != nil {
		t.Fatal(err)
	}

	// A crash after the key is destroyed but before the event is written;
	// the retry writes exactly one SubjectErased.
	flaky := &failingOnce{Store: store}
	if _, err := EraseSubject(ctx, flaky, keys, subject, "acme", "api:key-1", "customer request"); err == nil {
		t.Fatal("EraseSubject hid the failed append")
	}
	if _, err := keys.Open(Owner("acme", subject), sealed); !errors.Is(err, ErrErased) {
		t.Fatalf("key survived the interrupted erasure: %v", err)
	}
	ev, err := EraseSubject(ctx, flaky, keys, subject, "acme", "api:key-1", "customer request")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := EraseSubject(ctx, store, keys, subject, "acme", "api:key-1", "customer request"); err != nil {
		t.Fatal(err)
	}
	evs, err := store.ReadStream(ctx, ledger.ContactStream("acme", subject), 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 || evs[1].Type != ledger.TypeSubjectErased || evs[1].ID != ev.ID {
		t.Fatalf("the tenant's contact stream after erasure: %d events", len(evs))
	}

	// The PII is gone; the pseudonym of the number still finds the
	// suppression entry.
	all, _ := store.ReadAll(ctx, 1, 0)
	if _, err := keys.OpenEvent(ctx, &all[0]); !errors.Is(err, ErrErased) {
		t.Fatalf("sealed PII still opens: %v", err)
	}
	again := Pseudonym(pkey, number)
	listed, err := store.ReadStream(ctx, ledger.SubjectStream(again), 1, 0)
	if err != nil || listed[0].Type != ledger.TypeSuppressionListed {
		t.Fatalf("suppression lookup by pseudonym after erasure: %v", err)
	}

	// The tree still verifies: the new checkpoint extends the old one, and
	// the events as read back hash to it.
	after, err := sealer.Seal(ctx)
	if err != nil {
		t.Fatal(err)
	}
	proof, err := merkle.Consistency(store, before.Size, after.Size)
	if err != nil {
		t.Fatal(err)
	}
	if err := merkle.CheckConsistency(proof, before, after); err != nil {
		t.Fatal(err)
	}
	var tree merkle.Tree
	for _, e := range all {
		leaf, err := e.Leaf()
		if err != nil {
			t.Fatal(err)
		}
		tree.Append(leaf)
	}
	root, _ := tree.Root(after.Size)
	if root != after.Root || after.Size != int64(len(all)) {
		t.Fatal("events no longer hash to the signed root after erasure")
	}
}

func TestConcurrentFirstSealsShareOneKey(t *testing.T) {
	k, _ := openKeys(t)
	const n = 8
	sealed := make([][]byte, n)
	errs := make(chan error, n)
	for i := range n {
		go func() {
			var err error
			sealed[i], err = k.Seal("s", map[string]string{"i": string(rune('a' + i))})
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for i, s := range sealed {
		got, err := k.Open("s", s)
		if err != nil || got["i"] != string(rune('a'+i)) {
			t.Fatalf("seal %d: %v, %v", i, got, err)
		}
	}
}

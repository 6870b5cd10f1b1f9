package auth

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/heed/heed/ledger"
	"github.com/heed/heed/ledger/mem"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func openKeys(t *testing.T, path string, c *clock) *Keys {
	t.Helper()
	k, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if c != nil {
		k.Now = c.now
	}
	t.Cleanup(func() { k.Close() })
	return k
}

func TestRevokeTakesEffectAtOnceAndSurvivesReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "apikeys.db")
	k := openKeys(t, path, nil)
	_, admin, _ := k.Create(RoleAdmin, "")
	tok, biz, err := k.Create(RoleBusiness, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.Lookup(tok); err != nil {
		t.Fatal(err)
	}
	got, did, err := k.Revoke(Revocation{ID: biz.ID, By: admin.ID, Reason: "leaked"})
	if err != nil || !did || got.Revoked.IsZero() || got.RevokedBy != admin.ID || got.Reason != "leaked" {
		t.Fatalf("Revoke = %+v, %v, %v", got, did, err)
	}
	if _, err := k.Lookup(tok); !errors.Is(err, ErrRevoked) {
		t.Fatalf("Lookup right after revoke: %v, want ErrRevoked", err)
	}
	// A retry changes nothing and says so.
	again, did, err := k.Revoke(Revocation{ID: biz.ID, By: "someone else", Reason: "other"})
	if err != nil || did || again.RevokedBy != admin.ID || !again.Revoked.Equal(got.Revoked) {
		t.Fatalf("second Revoke = %+v, %v, %v; want the first revocation unchanged", again, did, err)
	}
	if _, _, err := k.Revoke(Revocation{ID: "key_nope"}); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("Revoke(unknown) = %v", err)
	}
	if err := k.Close(); err != nil {
		t.Fatal(err)
	}
	k = openKeys(t, path, nil)
	if _, err := k.Lookup(tok); !errors.Is(err, ErrRevoked) {
		t.Fatalf("Lookup after reopen: %v, want ErrRevoked", err)
	}
	if n := len(k.List()); n != 2 {
		t.Fatalf("List has %d keys, want 2 (revoked ones stay listed)", n)
	}
}

func TestLastAdminCannotBeRevoked(t *testing.T) {
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	k := openKeys(t, filepath.Join(t.TempDir(), "apikeys.db"), c)
	_, a1, _ := k.Create(RoleAdmin, "")
	_, a2, _ := k.Issue(Spec{Role: RoleAdmin, Expires: c.now().Add(time.Hour)})
	if _, _, err := k.Revoke(Revocation{ID: a1.ID}); err != nil {
		t.Fatalf("revoking one of two admins: %v", err)
	}
	if _, _, err := k.Revoke(Revocation{ID: a2.ID}); !errors.Is(err, ErrLastAdmin) {
		t.Fatalf("revoking the last admin: %v, want ErrLastAdmin", err)
	}
	// An expired admin key does not count as the one left.
	_, a3, _ := k.Create(RoleAdmin, "")
	c.add(2 * time.Hour)
	if _, _, err := k.Revoke(Revocation{ID: a3.ID}); !errors.Is(err, ErrLastAdmin) {
		t.Fatalf("revoking the last unexpired admin: %v, want ErrLastAdmin", err)
	}
	if _, did, err := k.Revoke(Revocation{ID: a3.ID, Force: true}); err != nil || !did {
		t.Fatalf("forced revoke: %v %v", did, err)
	}
}

func TestExpiry(t *testing.T) {
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	k := openKeys(t, filepath.Join(t.TempDir(), "apikeys.db"), c)
	if _, _, err := k.Issue(Spec{Role: RoleAuditor, Expires: c.now()}); !errors.Is(err, ErrInvalidExpiry) {
		t.Fatalf("Issue expiring now: %v, want ErrInvalidExpiry", err)
	}
	tok, key, err := k.Issue(Spec{Role: RoleAuditor, Expires: c.now().Add(90 * time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		after time.Duration
		want  error
	}{{0, nil}, {89 * time.Second, nil}, {time.Second, ErrExpired}, {time.Hour, ErrExpired}} {
		c.add(tc.after)
		got, err := k.Lookup(tok)
		if !errors.Is(err, tc.want) {
			t.Fatalf("at %s: Lookup err = %v, want %v", c.now().Format(time.TimeOnly), err, tc.want)
		}
		if got.ID != key.ID {
			t.Fatalf("Lookup returned %q, want the key (its expiry is shown to the caller)", got.ID)
		}
	}
}

func TestParseLifetime(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{{"90d", 90 * 24 * time.Hour, true}, {"720h", 720 * time.Hour, true}, {"1h30m", 90 * time.Minute, true},
		{"0d", 0, false}, {"-1h", 0, false}, {"d", 0, false}, {"1.5d", 0, false}, {"soon", 0, false}, {"", 0, false}} {
		got, err := ParseLifetime(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseLifetime(%q) = %v, %v", tc.in, got, err)
		}
	}
}

// TestLastUsedIsKeptInMemoryAndFlushed: lookups write nothing to the file;
// Flush writes the times in one transaction, and Close flushes.
func TestLastUsedIsKeptInMemoryAndFlushed(t *testing.T) {
	c := &clock{t: time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC)}
	path := filepath.Join(t.TempDir(), "apikeys.db")
	k := openKeys(t, path, c)
	tok, key, _ := k.Create(RoleBusiness, "acme")
	_, other, _ := k.Create(RoleAuditor, "")
	writes := fileWrites(k)
	for range 1000 {
		if _, err := k.Lookup(tok); err != nil {
			t.Fatal(err)
		}
		c.add(time.Millisecond)
	}
	if w := fileWrites(k); w != writes {
		t.Fatalf("1000 lookups wrote %d pages to the file, want none", w-writes)
	}
	lastUse := c.now().Add(-time.Millisecond).Truncate(time.Second)
	byID := func(ks []Key) map[string]Key {
		m := map[string]Key{}
		for _, k := range ks {
			m[k.ID] = k
		}
		return m
	}
	listed := byID(k.List())
	if !listed[key.ID].LastUsed.Equal(lastUse) || !listed[other.ID].LastUsed.IsZero() {
		t.Fatalf("List last used = %v and %v, want %v and never", listed[key.ID].LastUsed, listed[other.ID].LastUsed, lastUse)
	}
	if err := k.Close(); err != nil {
		t.Fatal(err)
	}
	k = openKeys(t, path, c)
	if got := byID(k.List())[key.ID].LastUsed; !got.Equal(lastUse) {
		t.Fatalf("last used after close and reopen = %v, want %v", got, lastUse)
	}
	// A flush with nothing new writes nothing.
	writes = fileWrites(k)
	if err := k.Flush(); err != nil {
		t.Fatal(err)
	}
	if w := fileWrites(k); w != writes {
		t.Fatal("an idle flush wrote to the file")
	}
}

// TestFollowerHonoursRevocationsFromTheLog: two instances share a copy of
// the key file and the log; a key revoked on one is refused by the other
// once it has caught up with the log.
func TestFollowerHonoursRevocationsFromTheLog(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	a := openKeys(t, filepath.Join(dir, "a.db"), nil)
	_, admin, _ := a.Create(RoleAdmin, "")
	tok, biz, _ := a.Create(RoleBusiness, "acme")
	copyFile(t, filepath.Join(dir, "a.db"), filepath.Join(dir, "b.db"))
	b := openKeys(t, filepath.Join(dir, "b.db"), nil)
	log := mem.New()
	defer log.Close()
	for _, k := range []Key{admin, biz} {
		ev, err := CreatedEvent(k, "test", "")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Record(ctx, log, ev); err != nil {
			t.Fatal(err)
		}
	}
	f := &Follower{Keys: b, Log: log}
	if n, err := f.CatchUp(ctx); err != nil || n != 0 {
		t.Fatalf("CatchUp before any revocation = %d, %v", n, err)
	}
	key, _, err := a.Revoke(Revocation{ID: biz.ID, By: admin.ID, Reason: "leaked"})
	if err != nil {
		t.Fatal(err)
	}
	ev, err := RevokedEvent(key)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // a retried record appends nothing new
		if _, err := Record(ctx, log, ev); err != nil {
			t.Fatal(err)
		}
	}
	if rev, _ := log.StreamRevision(ctx, ledger.KeysStream); rev != 3 {
		t.Fatalf("keys stream at revision %d, want 3 (two creations, one revocation)", rev)
	}
	if _, err := b.Lookup(tok); err != nil {
		t.Fatalf("instance b before catching up: %v", err)
	}
	if n, err := f.CatchUp(ctx); err != nil || n != 1 {
		t.Fatalf("CatchUp = %d, %v; want 1", n, err)
	}
	if _, err := b.Lookup(tok); !errors.Is(err, ErrRevoked) {
		t.Fatalf("instance b after catching up: %v, want ErrRevoked", err)
	}
	got, _ := b.Get(biz.ID)
	if got.RevokedBy != admin.ID || got.Reason != "leaked" || !got.Revoked.Equal(key.Revoked) {
		t.Fatalf("instance b's record of the revocation = %+v, want %+v", got, key)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkLookup is the cost a request pays to authenticate: hash, map
// read, expiry check and last-used stamp.
func BenchmarkLookup(b *testing.B) {
	k, err := Open(filepath.Join(b.TempDir(), "apikeys.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer k.Close()
	toks := make([]string, 64)
	for i := range toks {
		toks[i], _, _ = k.Create(RoleBusiness, "acme")
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, err := k.Lookup(toks[i%len(toks)]); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}

// fileWrites counts the page writes of the key file so far.
func fileWrites(k *Keys) int64 {
	s := k.db.Stats()
	return s.TxStats.GetWrite()
}

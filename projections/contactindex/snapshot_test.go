package contactindex

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/heed/heed/ledger"
	"github.com/heed/heed/ledger/bolt"
)

// fill appends n events to st for subjects hex and not, some with a
// template, from event number first on.
func fill(t *testing.T, st ledger.Store, first, n int) {
	t.Helper()
	ctx := context.Background()
	for i := first; i < first+n; i++ {
		tenant := fmt.Sprint("t", i%6)
		subject := fmt.Sprint("s", i%40)
		if i%2 == 0 {
			sum := sha256.Sum256([]byte(subject))
			subject = hex.EncodeToString(sum[:])
		}
		var p any = ledger.ContactMade{Channel: ledger.ChannelFlash, Purpose: ledger.PurposeService, Line: "1069"}
		stream := ledger.ContactStream(tenant, subject)
		if i%9 == 0 {
			p, stream, subject = ledger.TemplateProposed{TemplateID: fmt.Sprint("tpl", i), Version: 1, Purpose: ledger.PurposeService, Signature: "平安保险", Text: "您好"}, ledger.TemplateStream(tenant, fmt.Sprint("tpl", i)), ""
		}
		e, err := ledger.NewEvent(tenant, subject, time.Now(), p)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Append(ctx, stream, ledger.Any(), []ledger.Event{e}); err != nil {
			t.Fatal(err)
		}
	}
}

func openBolt(t *testing.T) *bolt.Store {
	t.Helper()
	st, err := bolt.Open(filepath.Join(t.TempDir(), "log.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// counting records where each read of leaves starts.
type counting struct {
	*bolt.Store
	from []uint64
}

func (c *counting) ReadLeaves(ctx context.Context, from uint64, limit int) ([][]byte, error) {
	c.from = append(c.from, from)
	return c.Store.ReadLeaves(ctx, from, limit)
}

// run runs x until it has caught up with st's head, then stops it.
func run(t *testing.T, x *Index, st ledger.Store) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- x.Run(ctx) }()
	if _, err := x.Tenants(ctx, "s1"); err != nil {
		t.Fatal(err)
	}
	head, _ := st.Head(ctx)
	for x.seen.Load() < head {
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-done
}

// same fails unless x holds what a replay of st from position 1 holds.
func same(t *testing.T, x *Index, st *bolt.Store) {
	t.Helper()
	fresh := New(st, st)
	run(t, fresh, st)
	if a, b := x.tenants.dump(), fresh.tenants.dump(); len(b) == 0 || !maps.EqualFunc(a, b, slices.Equal) {
		t.Fatalf("index %v\nreplayed %v", a, b)
	}
	if !maps.Equal(x.tmpls, fresh.tmpls) || len(fresh.tmpls) == 0 {
		t.Fatalf("templates %v, replayed %v", x.tmpls, fresh.tmpls)
	}
}

func TestRestartReadsFromTheSnapshot(t *testing.T) {
	st := openBolt(t)
	dir := t.TempDir()
	fill(t, st, 0, 120)
	x := New(st, st)
	x.Persist(dir, nil)
	run(t, x, st) // saves on its way out
	saved, _ := st.Head(context.Background())
	fill(t, st, 120, 60)

	c := &counting{Store: st}
	again := New(st, c)
	again.Persist(dir, nil)
	run(t, again, st)
	if len(c.from) == 0 || c.from[0] != saved+1 {
		t.Fatalf("the restart read leaves from %v, want from %d on", c.from, saved+1)
	}
	same(t, again, st)
}

func TestSnapshotTheLogDoesNotHoldIsSetAside(t *testing.T) {
	for _, c := range []struct {
		name   string
		damage func(t *testing.T, path string)
	}{
		{"another log", func(*testing.T, string) {}},
		{"damaged", func(t *testing.T, path string) {
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			b[len(b)-40] ^= 1
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			long := openBolt(t)
			fill(t, long, 0, 200)
			x := New(long, long)
			x.Persist(dir, nil)
			run(t, x, long)
			path := filepath.Join(dir, snapshotFile)
			c.damage(t, path)

			st := long
			if c.name == "another log" {
				// A shorter log, as a ledger restored from an older backup:
				// the snapshot is ahead of it.
				st = openBolt(t)
				fill(t, st, 1000, 50)
			}
			again := New(st, st)
			again.Persist(dir, nil)
			run(t, again, st)
			if _, err := os.Stat(path + ".bad"); err != nil {
				t.Errorf("the snapshot was not set aside: %v", err)
			}
			same(t, again, st)
		})
	}
}

// TestStopWhileReadingTheSnapshot: a stop while the snapshot is read ends
// the read at once, and leaves the snapshot for the next start.
func TestStopWhileReadingTheSnapshot(t *testing.T) {
	st := openBolt(t)
	dir := t.TempDir()
	fill(t, st, 0, 50)
	x := New(st, st)
	x.Persist(dir, nil)
	run(t, x, st)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	again := New(st, st)
	again.Persist(dir, nil)
	if err := again.Run(ctx); err == nil {
		t.Fatal("Run read on after its stop")
	}
	if again.seen.Load() != 0 {
		t.Errorf("a stopped read applied the snapshot (at %d)", again.seen.Load())
	}
	if _, err := os.Stat(filepath.Join(dir, snapshotFile)); err != nil {
		t.Errorf("the snapshot is gone after a stopped read: %v", err)
	}
}

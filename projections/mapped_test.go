package projections

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/heed/heed/ledger"
	"github.com/heed/heed/ledger/ledgertest"
)

// logStore serves a fixed log of events, positions 1 to n; Follow returns
// once it has handed out the log and done is closed.
type logStore struct {
	ledger.Store
	evs  []ledger.Event
	done chan struct{}
}

func (l *logStore) Head(context.Context) (uint64, error) { return uint64(len(l.evs)), nil }

func (l *logStore) ReadAll(_ context.Context, from uint64, limit int) ([]ledger.Event, error) {
	if from < 1 || from > uint64(len(l.evs)) {
		return nil, nil
	}
	out := l.evs[from-1:]
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return append([]ledger.Event(nil), out...), nil
}

func (l *logStore) Follow(ctx context.Context, from uint64, fn func(ledger.Event) error) error {
	for p := max(from, 1); p <= uint64(len(l.evs)); p++ {
		if err := fn(l.evs[p-1]); err != nil {
			return err
		}
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-l.done:
		return nil
	}
}

// synthLog is a log of n synthetic subjects: several record pages, a
// partial last page, and an index that grows after a restore.
func synthLog(n int) []ledger.Event {
	s := newSynth(7, base)
	var evs []ledger.Event
	for i := range n {
		evs = s.subject(i, evs)
	}
	return evs
}

func replayed(t *testing.T, evs []ledger.Event) *State {
	t.Helper()
	st := NewState(Default())
	for i := range evs {
		if err := st.Apply(&evs[i]); err != nil {
			t.Fatal(err)
		}
	}
	return st
}

// mapped restores dir's snapshot as a runner does: mapped, unverified.
func mapped(t *testing.T, dir string) *State {
	t.Helper()
	st, sf, err := restore(dir, Default())
	if err != nil {
		t.Fatal(err)
	}
	if err := sf.verify(context.Background()); err != nil {
		t.Fatal(err)
	}
	sf.close()
	return st
}

// sameState fails unless a and b hold the same projection.
func sameState(t *testing.T, a, b *State) {
	t.Helper()
	if a.pos != b.pos || a.posID != b.posID || !a.recorded.Equal(b.recorded) || a.recs.n != b.recs.n || a.subjects.n != b.subjects.n {
		t.Fatalf("states differ: at %d/%s/%d records/%d keys, and %d/%s/%d/%d", a.pos, a.posID, a.recs.n, a.subjects.n, b.pos, b.posID, b.recs.n, b.subjects.n)
	}
	for i := range a.recs.n {
		if *a.recs.at(i) != *b.recs.at(i) {
			t.Fatalf("record %d differs: %+v and %+v", i, *a.recs.at(i), *b.recs.at(i))
		}
	}
	if !slicesEqual(a.subjects.slots, b.subjects.slots) {
		t.Fatal("subject indexes differ")
	}
	same := func(x, y any) bool {
		vx, vy := reflect.ValueOf(x), reflect.ValueOf(y)
		if vx.Kind() == reflect.Map && vx.Len() == 0 && vy.Len() == 0 {
			return true
		}
		return reflect.DeepEqual(x, y)
	}
	for _, c := range []struct {
		name string
		x, y any
	}{
		{"more", a.more, b.more}, {"exps", a.exps, b.exps}, {"globals", a.globals, b.globals},
		{"complaints", a.complaints, b.complaints}, {"erased", a.erased, b.erased}, {"spill", a.spill, b.spill},
		{"tenants", a.tenants, b.tenants}, {"lists", a.lists, b.lists}, {"regions", a.regions, b.regions}, {"lines", a.lines, b.lines},
	} {
		if !same(c.x, c.y) {
			t.Errorf("%s differ", c.name)
		}
	}
}

func slicesEqual(a, b []slot) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestMappedStateAppliesAndSavesAsReplayed(t *testing.T) {
	evs := synthLog(3*pageSize + 100)
	half := len(evs) / 2
	first := replayed(t, evs[:half])
	dir := t.TempDir()
	if err := first.Save(dir); err != nil {
		t.Fatal(err)
	}
	st := mapped(t, dir)
	sameState(t, st, first)
	// The rest of the log lands on mapped pages (copied on write), on the
	// last page (moved to the heap) and on new pages, and grows the index.
	for i := half; i < len(evs); i++ {
		if err := st.Apply(&evs[i]); err != nil {
			t.Fatal(err)
		}
	}
	want := replayed(t, evs)
	sameState(t, st, want)
	again := t.TempDir()
	if err := st.Save(again); err != nil {
		t.Fatal(err)
	}
	sameState(t, mapped(t, again), want)
	// The file mapped first is unchanged by the writes to its pages.
	sameState(t, mapped(t, dir), first)

	for i := range 200 {
		q := Query{Tenant: benchTenant(i), Subject: benchSubject(i), Number: number, Channel: "call", Purpose: "marketing", At: base}
		d1, err1 := st.Decide(q, base)
		d2, err2 := want.Decide(q, base)
		if err1 != nil || err2 != nil || !reflect.DeepEqual(d1, d2) {
			t.Fatalf("subject %d: mapped %+v %v, replayed %+v %v", i, d1, err1, d2, err2)
		}
	}
}

// withdrawnAt is a log whose last event withdraws every consent of the
// first subject, which is then denied everything.
func withdrawnLog(n int) []ledger.Event {
	evs := synthLog(n)
	last := evs[len(evs)-1]
	stream := ledger.ContactStream(benchTenant(0), benchSubject(0))
	var rev uint64
	for _, e := range evs {
		if e.Stream == stream {
			rev = e.Revision
		}
	}
	w := ledger.Event{ID: "opt-out", Type: ledger.TypeConsentWithdrawn, Tenant: benchTenant(0), Subject: benchSubject(0), Stream: stream,
		Revision: rev + 1, Position: last.Position + 1, OccurredAt: base, RecordedAt: base, Schema: 1,
		Data: []byte(`{"all":true,"via":"api"}`)}
	return append(evs, w)
}

func optedOut(t *testing.T, r *Runner) {
	t.Helper()
	d, err := r.Decide(context.Background(), Query{Tenant: benchTenant(0), Subject: benchSubject(0), Number: number, Channel: "call", Purpose: "service"})
	if err != nil {
		t.Fatal(err)
	}
	if !d.Denied(RuleWithdrawal) {
		t.Fatalf("the opt-out is forgotten: %+v", d)
	}
}

func TestSnapshotTheLogDoesNotHoldIsRefused(t *testing.T) {
	full := withdrawnLog(300)
	for _, c := range []struct {
		name string
		log  func() []ledger.Event // the log the runner restarts over
	}{
		// A log restored from a backup older than the snapshot.
		{"ahead of the log", func() []ledger.Event { return full[:100] }},
		// Another log as long: the event at the snapshot's position differs.
		{"another log", func() []ledger.Event {
			evs := append([]ledger.Event(nil), full...)
			evs[len(evs)-2].ID = "other"
			return evs
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			// The snapshot is taken at the position before the opt-out.
			if err := replayed(t, full[:len(full)-1]).Save(dir); err != nil {
				t.Fatal(err)
			}
			evs := c.log()
			if len(evs) < len(full) {
				// The opt-out comes at a position the snapshot covers.
				w := full[len(full)-1]
				w.Position = uint64(len(evs) + 1)
				evs = append(evs, w)
			}
			r, err := NewRunner(&logStore{evs: evs}, Default(), Options{Dir: dir})
			if err != nil {
				t.Fatal(err)
			}
			if r.Position() != 0 {
				t.Fatalf("restored at %d from a snapshot the log does not hold", r.Position())
			}
			if _, err := os.Stat(filepath.Join(dir, snapshotFile+".bad")); err != nil {
				t.Errorf("the refused snapshot was not set aside: %v", err)
			}
			if err := r.CatchUp(context.Background()); err != nil {
				t.Fatal(err)
			}
			optedOut(t, r)
		})
	}
}

func TestDamagedSnapshotIsRebuiltFromTheLog(t *testing.T) {
	evs := withdrawnLog(3 * pageSize)
	for _, c := range []struct {
		name string
		at   func(size int64) int64 // the offset of the damaged byte
		lazy bool                   // found by the check after the start
	}{
		{"header", func(int64) int64 { return int64(len(snapshotMagic) + 10) }, false},
		{"records", func(int64) int64 { return align + 3 }, true},
		{"remainder", func(size int64) int64 { return size - int64(trailerSize) - 5 }, false},
		{"trailer", func(size int64) int64 { return size - 2 }, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			// The snapshot covers the opt-out: damaged, it must not be used.
			if err := replayed(t, evs).Save(dir); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, snapshotFile)
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			b[c.at(int64(len(b)))] ^= 0x40
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := Restore(dir, Default()); !errors.Is(err, ErrSnapshot) {
				t.Errorf("Restore: %v, want ErrSnapshot", err)
			}
			store := &logStore{evs: evs, done: make(chan struct{})}
			r, err := NewRunner(store, Default(), Options{Dir: dir})
			if err != nil {
				t.Fatal(err)
			}
			if want := uint64(0); !c.lazy && r.Position() != want {
				t.Fatalf("restored at %d from a damaged snapshot", r.Position())
			}
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			wg.Go(func() { _ = r.Run(ctx) })
			deadline := time.Now().Add(10 * time.Second)
			for r.unverified.Load() != nil || r.Rebuilding() || r.Position() < uint64(len(evs)) {
				if time.Now().After(deadline) {
					t.Fatal("the projection did not recover from the damaged snapshot")
				}
				time.Sleep(time.Millisecond)
			}
			optedOut(t, r)
			cancel()
			wg.Wait()
			if _, err := os.Stat(path + ".bad"); err != nil {
				t.Errorf("the damaged snapshot was not set aside: %v", err)
			}
			// The snapshot saved on the way out is whole and holds the log.
			sameState(t, mapped(t, dir), replayed(t, evs))
		})
	}
}

func TestSnapshotUnchangedIsNotRewritten(t *testing.T) {
	evs := synthLog(50)
	dir := t.TempDir()
	r, err := NewRunner(&logStore{evs: evs}, Default(), Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.CatchUp(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := r.Snapshot(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, snapshotFile)
	before, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Snapshot(); err != nil {
		t.Fatal(err)
	}
	after, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(before, after) {
		t.Error("a snapshot at the same position was written again")
	}
}

func TestCostlySnapshotIsSkippedOnExitWhenTheReplayIsShort(t *testing.T) {
	evs := synthLog(20)
	for _, c := range []struct {
		name  string
		cost  time.Duration
		saved bool
	}{
		{"cheap", time.Millisecond, true},
		{"costly", 2 * time.Second, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			store := &logStore{evs: evs[:len(evs)-1], done: make(chan struct{})}
			r, err := NewRunner(store, Default(), Options{Dir: dir})
			if err != nil {
				t.Fatal(err)
			}
			if err := r.CatchUp(context.Background()); err != nil {
				t.Fatal(err)
			}
			if err := r.Snapshot(); err != nil {
				t.Fatal(err)
			}
			r.cost.Store(int64(c.cost))
			store.evs = evs
			close(store.done)
			if err := r.Run(context.Background()); err != nil {
				t.Fatal(err)
			}
			st, err := Restore(dir, Default())
			if err != nil {
				t.Fatal(err)
			}
			if saved := st.Position() == uint64(len(evs)); saved != c.saved {
				t.Errorf("saved on exit at %d: %v, want %v", st.Position(), saved, c.saved)
			}
		})
	}
}

// TestSnapshotOnEveryStore: on each store, a restart resumes from the
// snapshot and reads the opt-out recorded after it, and a snapshot taken
// over another log of the same kind is refused.
func TestSnapshotOnEveryStore(t *testing.T) {
	ctx := context.Background()
	for name, open := range ledgertest.Stores {
		t.Run(name, func(t *testing.T) {
			st := open(t)
			app := func(st ledger.Store, p any) {
				t.Helper()
				e, err := ledger.NewEvent(benchTenant(0), benchSubject(0), base, p)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := st.Append(ctx, ledger.ContactStream(benchTenant(0), benchSubject(0)), ledger.Any(), []ledger.Event{e}); err != nil {
					t.Fatal(err)
				}
			}
			grant := ledger.ConsentGranted{Purposes: []string{"service"}, Channels: []string{"call"}, Source: "web_form",
				Evidence: ledger.Evidence{URL: "https://example.com/form", ContentHash: "sha256:00"}}
			for range 3 {
				app(st, grant)
			}
			dir := t.TempDir()
			r, err := NewRunner(st, Default(), Options{Dir: dir})
			if err != nil {
				t.Fatal(err)
			}
			if err := r.CatchUp(ctx); err != nil {
				t.Fatal(err)
			}
			if err := r.Snapshot(); err != nil {
				t.Fatal(err)
			}
			app(st, ledger.ConsentWithdrawn{All: true, Via: "api"})
			again, err := NewRunner(st, Default(), Options{Dir: dir})
			if err != nil {
				t.Fatal(err)
			}
			if again.Position() != 3 {
				t.Fatalf("restored at %d, want 3", again.Position())
			}
			optedOut(t, again)

			other := open(t)
			for range 4 {
				app(other, grant)
			}
			app(other, ledger.ConsentWithdrawn{All: true, Via: "api"})
			fresh, err := NewRunner(other, Default(), Options{Dir: dir})
			if err != nil {
				t.Fatal(err)
			}
			if fresh.Position() != 0 {
				t.Fatalf("restored at %d from another log's snapshot", fresh.Position())
			}
			optedOut(t, fresh)
		})
	}
}

// TestReachingTheHeadAfterALongReplaySaves: once a replay of many events
// reaches the head of a quiet log, a snapshot is saved at once, not at the
// next event nor minutes later.
func TestReachingTheHeadAfterALongReplaySaves(t *testing.T) {
	defer func(n uint64) { caughtUpSave = n }(caughtUpSave)
	caughtUpSave = 3
	evs := synthLog(30)
	dir := t.TempDir()
	r, err := NewRunner(&logStore{evs: evs, done: make(chan struct{})}, Default(), Options{Dir: dir, SnapshotEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = r.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if st, err := Restore(dir, Default()); err == nil && st.Position() == uint64(len(evs)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no snapshot at the head of the log")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

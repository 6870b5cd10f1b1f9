package projections

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/heed/heed/ledger"
)

// churnLog is a log of n synthetic subjects followed by more events: most
// to subjects already there, which change their records, and a fifth to
// new subjects, which add records and index slots.
func churnLog(n, more int) (evs []ledger.Event, first int) {
	s := newSynth(11, base)
	for i := range n {
		evs = s.subject(i, evs)
	}
	first = len(evs)
	for j := range more {
		i := j * 7919 % n
		if j%5 == 0 {
			i = n + j
		}
		evs = s.subject(i, evs)
	}
	return evs, first
}

// applyingLock stands for the appliers a snapshot shares the state with:
// each time the writer takes the lock, per more events are applied first.
type applyingLock struct {
	t    *testing.T
	st   *State
	evs  []ledger.Event
	next int
	per  int
}

func (l *applyingLock) Lock() {
	for k := 0; k < l.per && l.next < len(l.evs); k++ {
		if err := l.st.Apply(&l.evs[l.next]); err != nil {
			l.t.Fatal(err)
		}
		l.next++
	}
}

func (l *applyingLock) Unlock() {}

// TestSnapshotHoldsTheStateOfItsStartWhileEventsApply: events applied
// between the chunks a snapshot copies change neither the records nor the
// index it writes. The snapshot restores to exactly the state of a replay
// up to the position it names, and the live state goes on unharmed.
func TestSnapshotHoldsTheStateOfItsStartWhileEventsApply(t *testing.T) {
	evs, first := churnLog(20_000, 40_000)
	st := replayed(t, evs[:first])
	lock := &applyingLock{t: t, st: st, evs: evs[first:], per: 500}
	dir := t.TempDir()
	f, err := os.Create(filepath.Join(dir, snapshotFile))
	if err != nil {
		t.Fatal(err)
	}
	pos, err := st.writeTo(f, lock)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if want := uint64(first + lock.per); pos != want {
		t.Fatalf("snapshot at %d, want %d: the state at its first lock", pos, want)
	}
	if during := lock.next - lock.per; during < 5_000 {
		t.Fatalf("only %d events applied while the snapshot was written; the test needs changes to records and slots", during)
	}
	sameState(t, replayed(t, evs[:pos]), mapped(t, dir))

	if st.frozen != nil || st.subjects.frozen != nil {
		t.Fatal("the state stays frozen after the snapshot")
	}
	for i := first + lock.next; i < len(evs); i++ {
		if err := st.Apply(&evs[i]); err != nil {
			t.Fatal(err)
		}
	}
	sameState(t, replayed(t, evs), st)
}

// TestRunnerSnapshotsWhileFollowing saves snapshots while the runner
// applies a log as fast as it is served (run under -race): each one
// restores to a replay up to its position.
func TestRunnerSnapshotsWhileFollowing(t *testing.T) {
	evs, _ := churnLog(5_000, 30_000)
	store := &logStore{evs: evs, done: make(chan struct{})}
	dir := t.TempDir()
	r, err := NewRunner(store, Default(), Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- r.Run(ctx) }()
	checked := 0
	for r.Position() < uint64(len(evs)) {
		if err := r.Snapshot(); err != nil {
			t.Fatal(err)
		}
		got := mapped(t, dir)
		if got.pos == 0 || got.pos == uint64(len(evs)) {
			continue
		}
		sameState(t, replayed(t, evs[:got.pos]), got)
		checked++
	}
	close(store.done)
	cancel()
	<-ran
	t.Logf("%d snapshots taken mid-log", checked)
	if checked == 0 {
		t.Fatal("no snapshot was taken while the runner applied the log")
	}
}

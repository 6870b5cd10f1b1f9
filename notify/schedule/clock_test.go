package schedule

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/heed/heed/ledger"
	"github.com/heed/heed/ledger/atomicfile"
)

// TestDueTicksNeverEarly checks the index's due times: a timer is handed
// out no earlier than its due time, and less than a tick after it, so a
// reminder due within a second goes then and not at the second's end.
func TestDueTicksNeverEarly(t *testing.T) {
	base := time.Date(2027, 3, 1, 10, 0, 0, 0, time.UTC)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 100_000 {
		due := base.Add(time.Duration(r.Int64N(int64(48 * time.Hour))))
		if i%10 == 0 {
			due = due.Truncate(time.Second)
		}
		at := dueTicks(sec(due), metaOf(7, leadOf(due)))
		if out := instantTicks(at); out.Before(due) || out.Sub(due) >= tick {
			t.Fatalf("due %s is handed out at %s", due.Format(time.RFC3339Nano), out.Format(time.RFC3339Nano))
		}
		if ticks(due.Add(tick)) < at {
			t.Fatalf("due %s: not handed out a tick after its due time", due.Format(time.RFC3339Nano))
		}
		if ticks(due.Add(-tick)) >= at {
			t.Fatalf("due %s: handed out a tick early", due.Format(time.RFC3339Nano))
		}
	}
}

// TestCollectWithinTheSecond checks that of two timers due in the same
// second, the dispatcher's scan hands out the first at its time and the
// second only at its own.
func TestCollectWithinTheSecond(t *testing.T) {
	x := newIndex(4)
	s := time.Date(2027, 3, 1, 10, 0, 0, 0, time.UTC)
	early, late := s.Add(200*time.Millisecond), s.Add(700*time.Millisecond)
	x.put(1, 10, sec(early), metaOf(3, leadOf(early)))
	x.put(2, 11, sec(late), metaOf(3, leadOf(late)))
	got, next, _ := x.collect(ticks(s.Add(100*time.Millisecond)), ticks(s.Add(100*time.Millisecond)), 10)
	if len(got) != 0 || instantTicks(next).Before(early) || instantTicks(next).Sub(early) >= tick {
		t.Fatalf("at 10:00:00.1: handed out %v, next %s", got, instantTicks(next))
	}
	got, next, _ = x.collect(ticks(s.Add(300*time.Millisecond)), ticks(s.Add(300*time.Millisecond)), 10)
	if len(got) != 1 || got[0].key != 1 || got[0].plan != 3 || instantTicks(next).Before(late) {
		t.Fatalf("at 10:00:00.3: handed out %v, next %s", got, instantTicks(next))
	}
	if got, _, _ = x.collect(ticks(s.Add(999*time.Millisecond)), ticks(s.Add(999*time.Millisecond)), 10); len(got) != 1 || got[0].key != 2 {
		t.Fatalf("at 10:00:00.999: handed out %v", got)
	}
}

// TestVersion1SnapshotRead: a snapshot saved before the index kept due
// times finer than a second is read back, not set aside for a rebuild
// from the whole log.
func TestVersion1SnapshotRead(t *testing.T) {
	for name, open := range stores {
		t.Run(name, func(t *testing.T) {
			r := newRig(t, open(t), nil, tomorrow())
			r.plan(motor("30d", "7d"))
			for i := range 3 {
				r.relate(cnNum, fmt.Sprintf("P-%d", i), tomorrow().Add(40*24*time.Hour), "motor")
			}
			r.start(nil)
			r.settled()
			want := r.s.Stats()
			r.stop()
			path := filepath.Join(r.dir, snapshotFile)
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			body := append([]byte(snapshotMagicV1), b[len(snapshotMagic):len(b)-4]...)
			b = binary.LittleEndian.AppendUint32(body, crc32.Checksum(body, atomicfile.Castagnoli))
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
			s, err := New(context.Background(), Config{Store: r.st, Dir: r.dir})
			if err != nil {
				t.Fatal(err)
			}
			if got := s.Stats(); got.Pending != want.Pending || got.Position != want.Position || want.Pending != 6 {
				t.Errorf("read back %d timers at %d, want %d at %d", got.Pending, got.Position, want.Pending, want.Position)
			}
			if _, err := os.Stat(path + ".bad"); err == nil {
				t.Error("the version 1 snapshot was set aside")
			}
		})
	}
}

// TestMovedWhileHeldIsHandedOutAgain: a timer the log sets to a new due
// time while a worker holds it (a plan change in the second before it
// was due) is handed out again at the new time, whether the worker is
// done before the index reads the change or after.
func TestMovedWhileHeldIsHandedOutAgain(t *testing.T) {
	due := time.Date(2027, 3, 1, 10, 0, 0, 0, time.UTC)
	later := due.Add(time.Hour)
	scheduled := func(pos uint64, at time.Time) *ledger.Event {
		e, err := ledger.NewEvent(tenant, "s1", due, &ledger.ReminderScheduled{ReminderID: "plan-1", ContractRef: "P-1", PlanID: "motor",
			PlanVersion: 1, Offset: "1d", ExpiresAt: due.Add(24 * time.Hour), DueAt: at})
		if err != nil {
			t.Fatal(err)
		}
		e.Stream, e.Position = ledger.ContactStream(tenant, "s1"), pos
		return &e
	}
	for _, workerFirst := range []bool{true, false} {
		s, err := New(context.Background(), Config{Store: stores["mem"](t)})
		if err != nil {
			t.Fatal(err)
		}
		s.apply(scheduled(10, due))
		// The dispatcher hands it out, as dispatch does.
		got, _, _ := s.idx.collect(ticks(due), ticks(due), 10)
		if len(got) != 1 {
			t.Fatalf("handed out %d timers at their due time, want 1", len(got))
		}
		s.held[got[0].key]++
		if workerFirst {
			// The worker derived the new due time, and is done before
			// the index reads it.
			s.done(got[0], true, nil)
			s.apply(scheduled(20, later))
		} else {
			// A deriver moved it; the worker read it, not yet due.
			s.apply(scheduled(20, later))
			s.done(got[0], false, nil)
		}
		if again, _, _ := s.idx.collect(ticks(later), ticks(later), 10); len(again) != 1 || again[0].pos != 20 {
			t.Errorf("worker done first %v: at the new due time handed out %v, want the timer set at 20", workerFirst, again)
		}
	}
}

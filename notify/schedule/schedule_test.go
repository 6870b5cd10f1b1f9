package schedule

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/heed/heed/ledger"
	"github.com/heed/heed/ledger/ledgertest"
	"github.com/heed/heed/ledger/pii"
	"github.com/heed/heed/notify"
)

var shanghai = must(time.LoadLocation("Asia/Shanghai"))

// tomorrow returns 09:00 tomorrow in Shanghai: ahead of the real clock,
// as the rig's clock must be.
func tomorrow() time.Time {
	y, m, d := time.Now().In(shanghai).Date()
	return time.Date(y, m, d+1, 9, 0, 0, 0, shanghai)
}

func motor(offsets ...string) ledger.ReminderPlanDefined {
	return ledger.ReminderPlanDefined{Version: 1, Offsets: offsets, Window: ledger.SendWindow{Start: "10:00", End: "18:00"}}
}

// TestPlannedRemindersFireOnce: a relationship with a plan gets one timer
// per offset, due at the window's opening that many local days before
// its expiry; each fires once when due, with the template filled from the
// relationship, and a restart from the snapshot fires none again.
func TestPlannedRemindersFireOnce(t *testing.T) {
	for name, open := range stores {
		t.Run(name, func(t *testing.T) {
			day0 := tomorrow()
			r := newRig(t, open(t), nil, day0)
			r.plan(motor("30d", "7d", "1d"))
			y, m, d := day0.Date()
			exp := time.Date(y, m, d+40, 0, 0, 0, 0, shanghai)
			r.start(nil)
			r.relate(cnNum, "P-1", exp, "motor")
			r.eventually("three timers", func() bool { return len(r.timers(cnNum)) == 3 })
			r.settled()
			ts := r.timers(cnNum)
			for i, days := range []int{30, 7, 1} {
				want := time.Date(y, m, d+40-days, 10, 0, 0, 0, shanghai)
				if !ts[i].DueAt.Equal(want) || ts[i].Scheduled.Offset != []string{"30d", "7d", "1d"}[i] || !ts[i].Pending() {
					t.Fatalf("timer %d: due %s offset %s pending %v, want due %s", i, ts[i].DueAt, ts[i].Scheduled.Offset, ts[i].Pending(), want)
				}
			}
			if got := r.s.Stats().Pending; got != 3 || r.sender.count() != 0 {
				t.Fatalf("pending %d, sent %d before anything was due", got, r.sender.count())
			}

			r.clock.set(ts[0].DueAt.Add(time.Minute))
			r.eventually("the 30-day reminder", func() bool { return r.sender.count() == 1 })
			wantText := "【平安保险】您的保单P-1将于" + exp.Format(time.DateOnly) + "到期"
			if got := r.sender.texts()[0]; got != wantText {
				t.Fatalf("sent %q, want %q", got, wantText)
			}
			r.eventually("the index to drop the fired timer", func() bool { return r.s.Stats().Pending == 2 })

			// A restart reads the snapshot back: two timers pending, the
			// fired one not fired again.
			r.stop()
			s := r.start(nil)
			if st := s.Stats(); st.Pending != 2 {
				t.Fatalf("after a restart %d pending, want 2", st.Pending)
			}
			r.clock.set(ts[1].DueAt.Add(time.Minute))
			r.eventually("the 7-day reminder", func() bool { return r.sender.count() == 2 })
			r.clock.set(ts[2].DueAt.Add(time.Minute))
			r.eventually("the 1-day reminder", func() bool { return r.sender.count() == 3 })
			r.eventually("every reminder submitted", func() bool {
				for _, tm := range r.timers(cnNum) {
					if tm.State != notify.StateSubmitted {
						return false
					}
				}
				return true
			})
			r.settled()
			if r.s.Stats().Pending != 0 || r.sender.count() != 3 {
				t.Fatalf("pending %d, sent %d", r.s.Stats().Pending, r.sender.count())
			}
		})
	}
}

// TestTimersCancelled: whatever stops a relationship's reminders cancels
// its pending timers, with the reason, and nothing is sent when they
// would have been due.
func TestTimersCancelled(t *testing.T) {
	tests := []struct {
		name   string
		act    func(r *rig)
		reason string
	}{
		{"opt-out", func(r *rig) {
			r.contact(cnNum, &ledger.ConsentWithdrawn{Via: "sms_keyword", Channels: []string{ledger.ChannelSMS}})
		}, ledger.CancelOptedOut},
		{"opt-out of everything", func(r *rig) {
			r.contact(cnNum, &ledger.ConsentWithdrawn{Via: "api", All: true})
		}, ledger.CancelOptedOut},
		{"tenant suppression", func(r *rig) {
			r.contact(cnNum, &ledger.SuppressionListed{Scope: "tenant", List: "dnc"})
		}, ledger.CancelSuppressed},
		{"relationship ended", func(r *rig) {
			r.contact(cnNum, &ledger.RelationshipEnded{ContractRef: "P-1", EndedAt: r.clock.now()})
		}, ledger.CancelEnded},
		{"erasure", func(r *rig) {
			if _, err := pii.EraseSubject(context.Background(), r.base, r.keys, pseudo(cnNum), tenant, "test", "asked"); err != nil {
				r.t.Fatal(err)
			}
		}, ledger.CancelErased},
	}
	for name, open := range stores {
		for _, tt := range tests {
			t.Run(name+"/"+tt.name, func(t *testing.T) {
				day0 := tomorrow()
				r := newRig(t, open(t), nil, day0)
				r.plan(motor("7d", "1d"))
				exp := day0.AddDate(0, 0, 20)
				r.start(nil)
				r.relate(cnNum, "P-1", exp, "motor")
				r.eventually("two timers", func() bool { return pending(r.timers(cnNum)) == 2 })
				tt.act(r)
				r.eventually("the timers cancelled", func() bool { return pending(r.timers(cnNum)) == 0 })
				for _, tm := range r.timers(cnNum) {
					if tm.Cancelled == nil || tm.Cancelled.Reason != tt.reason {
						t.Fatalf("timer %s: cancelled %+v, want reason %s", tm.Scheduled.Offset, tm.Cancelled, tt.reason)
					}
				}
				r.eventually("the index to drop them", func() bool { return r.s.Stats().Pending == 0 })
				r.clock.set(exp.Add(-time.Hour))
				r.settled()
				if r.sender.count() != 0 {
					t.Fatalf("%d sent after a cancellation", r.sender.count())
				}
			})
		}
	}
}

// TestOptOutBeforeFiring: an opt-out recorded while the scheduler is down
// cancels the timer when it comes back, and nothing is sent though the
// timer is long due.
func TestOptOutBeforeFiring(t *testing.T) {
	day0 := tomorrow()
	r := newRig(t, stores["bolt"](t), nil, day0)
	r.plan(motor("7d"))
	exp := day0.AddDate(0, 0, 10)
	r.start(nil)
	r.relate(cnNum, "P-1", exp, "motor")
	r.eventually("a timer", func() bool { return pending(r.timers(cnNum)) == 1 })
	r.settled()
	r.stop()
	r.contact(cnNum, &ledger.ConsentWithdrawn{Via: "sms_keyword"})
	r.clock.set(r.timers(cnNum)[0].DueAt.Add(time.Hour))
	r.start(nil)
	r.eventually("the timer cancelled", func() bool { return pending(r.timers(cnNum)) == 0 })
	r.settled()
	if tm := r.timers(cnNum)[0]; tm.Cancelled == nil || tm.Cancelled.Reason != ledger.CancelOptedOut || tm.State != "" {
		t.Fatalf("timer: %+v", tm)
	}
	if r.sender.count() != 0 {
		t.Fatal("sent after an opt-out")
	}
}

// TestPlanChangeBeforeFiring: a plan's new version moves the timers not
// yet fired (new offsets, new window) and cancels those of offsets it
// dropped; a fired one is not fired again.
func TestPlanChangeBeforeFiring(t *testing.T) {
	for name, open := range stores {
		t.Run(name, func(t *testing.T) {
			day0 := tomorrow()
			r := newRig(t, open(t), nil, day0)
			r.plan(motor("14d", "7d", "1d"))
			y, m, d := day0.Date()
			exp := time.Date(y, m, d+20, 0, 0, 0, 0, shanghai)
			r.start(nil)
			r.relate(cnNum, "P-1", exp, "motor")
			r.eventually("three timers", func() bool { return pending(r.timers(cnNum)) == 3 })
			first := r.timers(cnNum)[0]
			r.clock.set(first.DueAt.Add(time.Minute))
			r.eventually("the 14-day reminder", func() bool { return r.sender.count() == 1 })

			v2 := motor("14d", "5d", "1d")
			v2.Version, v2.Window = 2, ledger.SendWindow{Start: "09:00", End: "12:00"}
			r.plan(v2)
			r.eventually("the timers moved to version 2", func() bool {
				n := 0
				for _, tm := range r.timers(cnNum) {
					if tm.Pending() && tm.Scheduled.PlanVersion == 2 {
						n++
					}
				}
				return n == 2
			})
			r.settled()
			byOffset := map[string]*Timer{}
			for _, tm := range r.timers(cnNum) {
				byOffset[tm.Scheduled.Offset] = tm
			}
			if tm := byOffset["7d"]; tm.Cancelled == nil || tm.Cancelled.Reason != ledger.CancelPlanChanged {
				t.Fatalf("dropped offset: %+v", tm)
			}
			if tm := byOffset["14d"]; tm.State != notify.StateSubmitted || tm.Scheduled.PlanVersion != 1 {
				t.Fatalf("fired timer: %+v", tm)
			}
			for _, o := range []string{"5d", "1d"} {
				days := map[string]int{"5d": 5, "1d": 1}[o]
				want := time.Date(y, m, d+20-days, 9, 0, 0, 0, shanghai)
				if tm := byOffset[o]; tm == nil || !tm.DueAt.Equal(want) || !tm.Pending() {
					t.Fatalf("offset %s: %+v, want due %s", o, tm, want)
				}
			}
			if st := r.s.Stats(); st.Pending != 2 {
				t.Fatalf("index holds %d, want 2", st.Pending)
			}
			r.clock.set(byOffset["1d"].DueAt.Add(time.Minute))
			r.eventually("the two reminders of version 2", func() bool { return r.sender.count() == 3 })
			r.settled()
			if r.sender.count() != 3 {
				t.Fatalf("%d sent, want 3", r.sender.count())
			}
		})
	}
}

// TestRenewalMovesTimers: a renewal cancels the timers planned from the
// old expiry and plans new ones from the new expiry.
func TestRenewalMovesTimers(t *testing.T) {
	for name, open := range stores {
		t.Run(name, func(t *testing.T) {
			day0 := tomorrow()
			r := newRig(t, open(t), nil, day0)
			r.plan(motor("7d", "1d"))
			y, m, d := day0.Date()
			exp := time.Date(y, m, d+20, 0, 0, 0, 0, shanghai)
			r.start(nil)
			r.relate(cnNum, "P-1", exp, "motor")
			r.eventually("two timers", func() bool { return pending(r.timers(cnNum)) == 2 })
			renewed := exp.AddDate(1, 0, 0)
			r.contact(cnNum, &ledger.RelationshipRenewed{ContractRef: "P-1", ExpiresAt: renewed})
			r.eventually("the new timers", func() bool { return len(r.timers(cnNum)) == 4 && pending(r.timers(cnNum)) == 2 })
			r.settled()
			for i, tm := range r.timers(cnNum) {
				if i < 2 {
					if tm.Cancelled == nil || tm.Cancelled.Reason != ledger.CancelRenewed || !tm.Scheduled.ExpiresAt.Equal(exp) {
						t.Fatalf("old timer %d: %+v", i, tm)
					}
					continue
				}
				days := map[string]int{"7d": 7, "1d": 1}[tm.Scheduled.Offset]
				ry, rm, rd := renewed.In(shanghai).Date()
				want := time.Date(ry, rm, rd-days, 10, 0, 0, 0, shanghai)
				if !tm.Pending() || !tm.DueAt.Equal(want) || !tm.Scheduled.ExpiresAt.Equal(renewed) {
					t.Fatalf("new timer %d: %+v, want due %s", i, tm, want)
				}
			}
			r.clock.set(exp.Add(time.Hour))
			r.settled()
			if r.sender.count() != 0 || r.s.Stats().Pending != 2 {
				t.Fatalf("sent %d, pending %d after the old expiry", r.sender.count(), r.s.Stats().Pending)
			}
		})
	}
}

// TestClockBackwardsFiresNothingTwice: once fired, a timer is gone from
// the log's point of view; a clock set back before its due time and
// forward again fires nothing more.
func TestClockBackwardsFiresNothingTwice(t *testing.T) {
	day0 := tomorrow()
	r := newRig(t, stores["bolt"](t), nil, day0)
	r.plan(motor("7d", "1d"))
	exp := day0.AddDate(0, 0, 20)
	r.start(nil)
	r.relate(cnNum, "P-1", exp, "motor")
	r.eventually("two timers", func() bool { return pending(r.timers(cnNum)) == 2 })
	first := r.timers(cnNum)[0]
	r.clock.set(first.DueAt.Add(time.Minute))
	r.eventually("the first reminder", func() bool { return r.sender.count() == 1 })
	r.settled()
	r.clock.set(first.DueAt.Add(-time.Hour))
	r.stop()
	r.start(nil)
	r.settled()
	r.clock.set(first.DueAt.Add(2 * time.Minute))
	second := r.timers(cnNum)[1]
	r.clock.set(second.DueAt.Add(time.Minute))
	r.eventually("the second reminder", func() bool { return r.sender.count() == 2 })
	r.settled()
	if got := r.sender.count(); got != 2 {
		t.Fatalf("%d sent, want 2", got)
	}
}

// TestRevokedTemplateDenies: a rule that can never pass denies for good:
// the reminder is recorded as denied, not deferred.
func TestRevokedTemplateDenies(t *testing.T) {
	day0 := tomorrow()
	r := newRig(t, stores["mem"](t), nil, day0)
	r.plan(motor("7d"))
	exp := day0.AddDate(0, 0, 20)
	r.start(nil)
	r.relate(cnNum, "P-1", exp, "motor")
	r.eventually("a timer", func() bool { return pending(r.timers(cnNum)) == 1 })
	r.append(ledger.TemplateStream(tenant, "renewal"), ledger.Any(), "", &ledger.TemplateRevoked{TemplateID: "renewal", Version: 1, Reason: "misused"})
	r.clock.set(r.timers(cnNum)[0].DueAt.Add(time.Minute))
	r.eventually("the reminder denied", func() bool { return r.timers(cnNum)[0].State == notify.StateDenied })
	r.settled()
	if tm := r.timers(cnNum)[0]; len(tm.Deferrals) != 0 || r.sender.count() != 0 || r.s.Stats().Pending != 0 {
		t.Fatalf("timer %+v, sent %d", tm, r.sender.count())
	}
}

func TestRetryAfterFailedReceipt(t *testing.T) {
	day0 := tomorrow()
	r := newRig(t, stores["mem"](t), nil, day0)
	p := motor("7d")
	p.Retry = &ledger.PlanRetry{After: "2h", Attempts: 1}
	r.plan(p)
	exp := day0.AddDate(0, 0, 20)
	r.start(nil)
	r.relate(cnNum, "P-1", exp, "motor")
	r.eventually("a timer", func() bool { return pending(r.timers(cnNum)) == 1 })
	due := r.timers(cnNum)[0].DueAt
	r.clock.set(due.Add(time.Minute))
	r.eventually("the reminder", func() bool { return r.sender.count() == 1 })
	r.eventually("submitted", func() bool { return r.timers(cnNum)[0].State == notify.StateSubmitted })
	if err := r.n.OnReceipt(context.Background(), notify.Receipt{MessageID: "1", Status: "UNDELIV"}); err != nil {
		t.Fatal(err)
	}
	r.eventually("a retry", func() bool { return len(r.timers(cnNum)) == 2 })
	retry := r.timers(cnNum)[1]
	if retry.Scheduled.Retry != 1 || !strings.HasSuffix(retry.ReminderID, "-r1") || retry.DueAt.Before(due.Add(2*time.Hour)) {
		t.Fatalf("retry %+v", retry)
	}
	r.clock.set(retry.DueAt.Add(time.Minute))
	r.eventually("the retry sent", func() bool { return r.sender.count() == 2 })
	if err := r.n.OnReceipt(context.Background(), notify.Receipt{MessageID: "2", Status: "UNDELIV"}); err != nil {
		t.Fatal(err)
	}
	r.eventually("the retry failed", func() bool { return r.timers(cnNum)[1].State == notify.StateFailed })
	r.settled()
	if len(r.timers(cnNum)) != 2 {
		t.Fatalf("%d timers: a second retry beyond the plan's one", len(r.timers(cnNum)))
	}
}

// TestCatchUpIsSavedOnceLive: an index that read a long stretch of the
// log at start is saved as soon as it is live, not minutes later, so a
// crash after it does not read that stretch again.
func TestCatchUpIsSavedOnceLive(t *testing.T) {
	defer func(n uint64) { catchUpSave = n }(catchUpSave)
	catchUpSave = 3
	for name, open := range stores {
		t.Run(name, func(t *testing.T) {
			r := newRig(t, open(t), nil, tomorrow())
			r.plan(motor("7d"))
			for i := range 3 {
				r.relate(cnNum, fmt.Sprintf("P-%d", i), tomorrow().Add(40*24*time.Hour), "motor")
			}
			head, err := r.st.Head(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			r.start(func(c *Config) { c.SnapshotEvery = time.Hour })
			r.eventually("the index saved", func() bool {
				_, err := os.Stat(filepath.Join(r.dir, snapshotFile))
				return err == nil
			})
			s, err := New(context.Background(), Config{Store: r.st, Dir: r.dir})
			if err != nil {
				t.Fatal(err)
			}
			if got := s.Stats().Position; got < head {
				t.Errorf("the index saved at %d, before the head %d it caught up with", got, head)
			}
		})
	}
}

// TestLeafCatchUpEqualsFollow: an index brought up from the stored leaves,
// decoding only the events it reads, equals one brought up by following
// the decoded log, position and event id included.
func TestLeafCatchUpEqualsFollow(t *testing.T) {
	base := ledgertest.Bolt(t)
	r := newRig(t, base, nil, tomorrow())
	r.plan(motor("30d", "7d"))
	r.start(nil)
	for i := range 4 {
		r.relate(cnNum, fmt.Sprintf("P-%d", i), tomorrow().Add(40*24*time.Hour), "motor")
	}
	r.eventually("eight timers", func() bool { return r.s.Stats().Pending == 8 })
	r.settled()
	r.stop()
	index := func(leaves notify.LeafReader) (map[slot]bool, Stats, string) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		s, err := New(ctx, Config{Store: r.st, Leaves: leaves, Notifier: r.n, Decider: notify.Projections(r.runner), Keys: r.keys, Now: r.clock.now})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx) }()
		<-s.Ready()
		s.mu.Lock()
		out := map[slot]bool{}
		s.idx.each(func(sl slot) { out[sl] = true })
		id := s.posID
		s.mu.Unlock()
		st := s.Stats()
		cancel()
		<-done
		return out, st, id
	}
	byLeaves, lst, lid := index(base)
	byEvents, est, eid := index(nil)
	if len(byLeaves) != 8 || !reflect.DeepEqual(byLeaves, byEvents) || lst.Position != est.Position || lid != eid {
		t.Fatalf("from leaves %d timers at %d (%s), from events %d at %d (%s)", len(byLeaves), lst.Position, lid, len(byEvents), est.Position, eid)
	}
}

// stalling hands out two leaves, then waits for the end of ctx.
type stalling struct {
	notify.LeafReader
	calls int
}

func (s *stalling) ReadLeaves(ctx context.Context, from uint64, limit int) ([][]byte, error) {
	s.calls++
	if s.calls > 1 {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	ls, err := s.LeafReader.ReadLeaves(ctx, from, 2)
	return ls, err
}

// TestStopDuringCatchUpKeepsWhatWasRead: a scheduler stopped while its
// index catches up with the log saves what it read, so the next start
// resumes there instead of at position 1.
func TestStopDuringCatchUpKeepsWhatWasRead(t *testing.T) {
	base := ledgertest.Bolt(t)
	r := newRig(t, base, nil, tomorrow())
	r.plan(motor("7d"))
	ctx, cancel := context.WithCancel(context.Background())
	s, err := New(ctx, Config{Store: r.st, Leaves: &stalling{LeafReader: base}, Notifier: r.n, Decider: notify.Projections(r.runner),
		Keys: r.keys, Now: r.clock.now, Dir: r.dir})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	r.eventually("two events read", func() bool { return s.Stats().Position == 2 })
	cancel()
	<-done
	again, err := New(context.Background(), Config{Store: r.st, Dir: r.dir})
	if err != nil {
		t.Fatal(err)
	}
	if got := again.Stats().Position; got != 2 {
		t.Fatalf("restarted at %d, want 2", got)
	}
}

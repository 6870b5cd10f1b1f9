package schedule

import (
	"testing"
	"time"

	"github.com/heed/heed/ledger"
	"github.com/heed/heed/projections"
)

// nextTransition returns a local date in loc, after tomorrow, whose next
// day has another UTC offset (daylight saving starts or ends that night).
func nextTransition(t *testing.T, loc *time.Location) time.Time {
	y, m, d := time.Now().In(loc).Date()
	for i := 2; i < 400; i++ {
		a := time.Date(y, m, d+i, 12, 0, 0, 0, loc)
		b := time.Date(y, m, d+i+1, 12, 0, 0, 0, loc)
		_, oa := a.Zone()
		if _, ob := b.Zone(); oa != ob {
			return time.Date(y, m, d+i, 0, 0, 0, 0, loc)
		}
	}
	t.Fatal("no daylight saving change within a year")
	return time.Time{}
}

// TestDeferral: a due timer that meets a rule which passes later is
// deferred, with the rule, to the first moment the rules allow, in the
// callee's own time zone; nothing is sent until then.
func TestDeferral(t *testing.T) {
	newYork := must(time.LoadLocation("America/New_York"))
	allDay := ledger.SendWindow{Start: "00:00", End: "24:00"}
	quietTill10 := func(c *projections.Config) { c.QuietHours.Start, c.QuietHours.End = "21:00", "10:00" }
	at := func(day time.Time, hh, mm int) time.Time {
		y, m, d := day.Date()
		return time.Date(y, m, d, hh, mm, 0, 0, day.Location())
	}
	tests := []struct {
		name   string
		number string
		rules  func(*projections.Config)
		window ledger.SendWindow
		offset string
		// when returns the expiry, the moment the scheduler looks at the
		// due timer, and the deferral's next time.
		when  func(r *rig) (expires, look time.Time)
		setup func(r *rig)
		rule  string
		// check checks the deferral's next time against the due time.
		check func(t *testing.T, r *rig, due, next time.Time)
	}{
		{
			name: "quiet hours: due 23:30, next 10:00 local", number: cnNum, rules: quietTill10, window: allDay, offset: "1h",
			when: func(r *rig) (time.Time, time.Time) {
				exp := at(tomorrow().AddDate(0, 0, 2), 0, 30)
				return exp, exp.Add(-time.Hour)
			},
			rule: projections.RuleQuietHours,
			check: func(t *testing.T, r *rig, due, next time.Time) {
				if lt := due.In(shanghai); lt.Hour() != 23 || lt.Minute() != 30 {
					t.Fatalf("due %s, want 23:30 local", lt)
				}
				if want := at(due.In(shanghai).AddDate(0, 0, 1), 10, 0); !next.Equal(want) {
					t.Fatalf("next %s, want %s", next.In(shanghai), want)
				}
			},
		},
		{
			name: "send window: looked at 23:30, next opening 10:00", number: cnNum, window: ledger.SendWindow{Start: "10:00", End: "18:00"}, offset: "7h",
			when: func(r *rig) (time.Time, time.Time) {
				exp := at(tomorrow().AddDate(0, 0, 2), 0, 30) // due 17:30 the day before
				return exp, exp.Add(-time.Hour)
			},
			rule: RuleSendWindow,
			check: func(t *testing.T, r *rig, due, next time.Time) {
				if want := at(due.In(shanghai).AddDate(0, 0, 1), 10, 0); !next.Equal(want) {
					t.Fatalf("next %s, want %s", next.In(shanghai), want)
				}
			},
		},
		{
			name: "daylight saving change in New York", number: "+12125550100", rules: quietTill10, window: allDay, offset: "1h",
			when: func(r *rig) (time.Time, time.Time) {
				eve := nextTransition(r.t, newYork)
				exp := at(eve.AddDate(0, 0, 1), 0, 30)
				return exp, exp.Add(-time.Hour)
			},
			rule: projections.RuleQuietHours,
			check: func(t *testing.T, r *rig, due, next time.Time) {
				lt := due.In(newYork)
				if lt.Hour() != 23 || lt.Minute() != 30 {
					t.Fatalf("due %s, want 23:30 in New York", lt)
				}
				want := at(lt.AddDate(0, 0, 1), 10, 0)
				if !next.Equal(want) || next.In(newYork).Hour() != 10 {
					t.Fatalf("next %s, want %s", next.In(newYork), want)
				}
				// The night is an hour shorter or longer than 10h30.
				if d := next.Sub(due); d != 10*time.Hour+30*time.Minute+time.Hour && d != 10*time.Hour+30*time.Minute-time.Hour {
					t.Fatalf("deferred by %s across a daylight saving change", d)
				}
			},
		},
		{
			name: "frequency cap spent: next day the cap allows", number: cnNum, window: ledger.SendWindow{Start: "10:00", End: "18:00"}, offset: "1d",
			rules: func(c *projections.Config) { c.Frequency.Service = projections.Limit{Max: 1, Days: 7} },
			when: func(r *rig) (time.Time, time.Time) {
				exp := at(tomorrow().AddDate(0, 0, 3), 0, 0)
				return exp, at(exp.AddDate(0, 0, -1), 10, 1)
			},
			setup: func(r *rig) {
				r.contact(cnNum, &ledger.ContactMade{Line: line, Channel: ledger.ChannelFlash, Purpose: ledger.PurposeService})
			},
			rule: projections.RuleFrequency,
			check: func(t *testing.T, r *rig, due, next time.Time) {
				contact := r.lastContact(cnNum)
				free := contact.Truncate(time.Minute).Add(7 * 24 * time.Hour)
				lt := next.In(shanghai)
				if lt.Hour() != 10 || lt.Minute() != 0 || next.Before(free) || !next.AddDate(0, 0, -1).Before(free) {
					t.Fatalf("next %s; the contact leaves the 7-day window at %s", lt, free.In(shanghai))
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rules := projections.Default()
			if tt.rules != nil {
				tt.rules(rules)
				if err := rules.Validate(); err != nil {
					t.Fatal(err)
				}
			}
			r := newRig(t, stores["mem"](t), rules, tomorrow())
			r.plan(ledger.ReminderPlanDefined{Version: 1, Offsets: []string{tt.offset}, Window: tt.window})
			exp, look := tt.when(r)
			if tt.setup != nil {
				tt.setup(r)
			}
			r.start(nil)
			r.relate(tt.number, "P-1", exp, "motor")
			r.eventually("a timer", func() bool { return pending(r.timers(tt.number)) == 1 })
			due := r.timers(tt.number)[0].DueAt
			r.clock.set(look)
			r.eventually("a deferral", func() bool { return len(r.timers(tt.number)[0].Deferrals) == 1 })
			d := r.timers(tt.number)[0].Deferrals[0]
			if d.Rule != tt.rule || !d.DueAt.Equal(due) {
				t.Fatalf("deferred by %q from %s, want %q from %s", d.Rule, d.DueAt, tt.rule, due)
			}
			tt.check(t, r, due, d.NextAt)
			r.eventually("the index to move the timer", func() bool { return r.s.Stats().Pending == 1 })
			r.settled()
			if r.sender.count() != 0 {
				t.Fatal("sent while deferred")
			}
			// At the next time it goes.
			r.clock.set(d.NextAt.Add(time.Second))
			r.eventually("the deferred reminder sent", func() bool { return r.sender.count() == 1 })
			if tm := r.timers(tt.number)[0]; len(tm.Deferrals) != 1 {
				t.Fatalf("deferred %d times", len(tm.Deferrals))
			}
		})
	}
}

package report

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/heed/heed/ledger"
	"github.com/heed/heed/ledger/ledgertest"
)

// stores opens each store a report must work on.
var stores = ledgertest.Stores

// base is the business time of the histories; each fact is minutes after it.
var base = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

// fact is one event of a history: who, when (minutes after base) and what.
type fact struct {
	tenant, subject string
	min             int
	payload         any
}

func contact(tenant, subject string, min int, line, channel, purpose string) fact {
	return fact{tenant, subject, min, &ledger.ContactMade{Line: line, Channel: channel, Purpose: purpose}}
}

func deny(rules ...string) []ledger.Reason {
	var out []ledger.Reason
	for _, r := range rules {
		out = append(out, ledger.Reason{Rule: r, Effect: "deny", Text: r})
	}
	return append(out, ledger.Reason{Rule: "service-basis", Effect: "allow", Text: "has a contract"})
}

// reminder is the events of one reminder, from its request to outcome.
func reminder(tenant, subject string, min int, id, line string, outcome ...any) []fact {
	fs := []fact{{tenant, subject, min, &ledger.ReminderRequested{ReminderID: id, ContractRef: "P-1", ContentHash: "h", Line: line}}}
	for i, p := range outcome {
		fs = append(fs, fact{tenant, subject, min + i + 1, p})
	}
	return fs
}

func timer(tenant, subject, id string) fact {
	return fact{tenant, subject, 0, &ledger.ReminderScheduled{ReminderID: id, ContractRef: "P-1", PlanID: "renewal", PlanVersion: 1, Offset: "30d",
		ExpiresAt: base.AddDate(0, 1, 0), DueAt: base}}
}

func dispatched(id, line string) *ledger.ReminderDispatched {
	return &ledger.ReminderDispatched{ReminderID: id, ContractRef: "P-1", ContentHash: "h", Line: line, RulesVersion: "t"}
}

func submitted(id string) *ledger.ReminderSubmitted {
	return &ledger.ReminderSubmitted{ReminderID: id, MessageIDs: []string{"m-" + id}, Parts: 1}
}

func write(t *testing.T, st ledger.Store, facts ...[]fact) []ledger.Event {
	t.Helper()
	var out []ledger.Event
	for _, fs := range facts {
		for _, f := range fs {
			e, err := ledger.NewEvent(f.tenant, f.subject, base.Add(time.Duration(f.min)*time.Minute), f.payload)
			if err != nil {
				t.Fatal(err)
			}
			stored, err := st.Append(context.Background(), ledger.ContactStream(f.tenant, f.subject), ledger.Any(), []ledger.Event{e})
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, stored...)
		}
	}
	return out
}

var rules = Rules{Threshold: 0.2, MinContacts: 4, WindowDays: 30}

// all is a period that holds every event of a test.
var all = [2]time.Time{time.Now().Add(-time.Hour), time.Now().Add(time.Hour)}

func TestReportFiguresOnEveryStore(t *testing.T) {
	cases := []struct {
		name    string
		history [][]fact
		check   func(t *testing.T, r Report)
	}{{
		name: "contacts per line and channel",
		history: [][]fact{
			{contact("a", "s1", 0, "L1", "call", "service"), contact("a", "s2", 1, "L1", "call", "marketing"),
				contact("a", "s1", 2, "L1", "call", "service"), contact("a", "s1", 3, "L1", "sms", "service"),
				contact("b", "s3", 4, "L2", "call", "service"), contact("b", "s3", 5, "L2", "call", "service")},
			reminder("a", "s1", 10, "r1", "L1", dispatched("r1", "L1"), submitted("r1")),
			// Dispatched, then denied before the submit: never sent.
			reminder("a", "s2", 20, "r2", "L1", dispatched("r2", "L1"), &ledger.ReminderDenied{ReminderID: "r2", Reasons: deny("withdrawal"), RulesVersion: "t"}),
		},
		check: func(t *testing.T, r Report) {
			want := []Contacts{{"a", "L1", "call", 3}, {"a", "L1", "sms", 1}, {"a", "L1", "flash", 1}, {"b", "L2", "call", 2}}
			if !reflect.DeepEqual(r.Contacts, want) {
				t.Errorf("contacts %+v, want %+v", r.Contacts, want)
			}
		},
	}, {
		name: "denials by rule",
		history: [][]fact{
			reminder("a", "s1", 0, "r1", "L1", &ledger.ReminderDenied{ReminderID: "r1", Reasons: deny("withdrawal", "quiet-hours"), RulesVersion: "t"}),
			reminder("a", "s2", 5, "r2", "L1", &ledger.ReminderDenied{ReminderID: "r2", Reasons: deny("withdrawal"), RulesVersion: "t"}),
			{{"a", "s3", 9, &ledger.CallRefused{Line: "L1", Purpose: "marketing", CallID: "c1", Trunk: "t1", Reasons: deny("frequency"), RulesVersion: "t"}},
				{"a", "s3", 10, &ledger.CallRefused{Line: "L1", Purpose: "marketing", CallID: "c2", Trunk: "t1", Reasons: deny("withdrawal"), RulesVersion: "t"}}},
		},
		check: func(t *testing.T, r Report) {
			want := []Denials{{"withdrawal", 2, 1}, {"frequency", 0, 1}, {"quiet-hours", 1, 0}}
			if !reflect.DeepEqual(r.Denials, want) {
				t.Errorf("denials %+v, want %+v", r.Denials, want)
			}
		},
	}, {
		name: "complaint rate per line against the threshold",
		history: [][]fact{
			{contact("a", "s1", 0, "L1", "call", "service"), contact("a", "s1", 1, "L1", "call", "service"),
				contact("a", "s2", 2, "L1", "sms", "service"), contact("a", "s2", 3, "L1", "call", "service"),
				{"a", "s1", 4, &ledger.ComplaintReceived{Line: "L1", Channel: "call", Source: "customer"}},
				{"a", "", 5, &ledger.LineSuspended{Line: "L1", Rule: "line-suspended", Contacts: 4, Complaints: 1, Rate: 0.25, WindowDays: 30}}},
			{contact("a", "s3", 6, "L3", "call", "service"), contact("a", "s3", 7, "L3", "call", "service"),
				{"a", "s3", 8, &ledger.ComplaintReceived{Line: "L3", Source: "operator"}}},
			{contact("b", "s4", 9, "L2", "sms", "service"), contact("b", "s4", 10, "L2", "sms", "service"),
				contact("b", "s4", 11, "L2", "sms", "service"), contact("b", "s4", 12, "L2", "sms", "service"),
				contact("b", "s4", 13, "L2", "sms", "service"),
				{"b", "s4", 14, &ledger.ComplaintReceived{Line: "L2", Source: "regulator"}},
				{"b", "s5", 15, &ledger.ComplaintReceived{Source: "customer"}}},
		},
		check: func(t *testing.T, r Report) {
			want := []LineRate{
				{Tenant: "a", Line: "L1", Contacts: 4, Complaints: 1, Rate: 0.25, AtThreshold: true, Over: true, Suspensions: 1},
				// At the rate, short of the contacts the rule needs.
				{Tenant: "a", Line: "L3", Contacts: 2, Complaints: 1, Rate: 0.5, AtThreshold: true},
				{Tenant: "b", Line: "", Complaints: 1},
				{Tenant: "b", Line: "L2", Contacts: 5, Complaints: 1, Rate: 0.2, AtThreshold: true, Over: true},
			}
			if !reflect.DeepEqual(r.Complaints, want) {
				t.Errorf("complaints\n%+v\nwant\n%+v", r.Complaints, want)
			}
		},
	}, {
		name: "opt-outs and the contacts after them",
		history: [][]fact{
			{{"a", "s1", 0, &ledger.ConsentWithdrawn{Channels: []string{"sms"}, Purposes: []string{"marketing"}, Via: "sms_keyword"}},
				// Covered, after it: counted, twice; the gap runs to the last.
				contact("a", "s1", 5, "L1", "sms", "marketing"), contact("a", "s1", 65, "L1", "sms", "marketing"),
				// Not covered: another channel, or another purpose.
				contact("a", "s1", 70, "L1", "call", "marketing"), contact("a", "s1", 71, "L1", "sms", "service"),
				// Recorded after the opt-out, made before it.
				contact("a", "s1", -3, "L1", "sms", "marketing"),
				// Another business, and another number.
				contact("b", "s1", 72, "L2", "sms", "marketing"), contact("a", "s9", 72, "L1", "sms", "marketing"),
				// A new consent allows them again.
				{"a", "s1", 80, &ledger.ConsentGranted{Channels: []string{"sms"}, Purposes: []string{"marketing"}, Source: "web_form"}},
				contact("a", "s1", 90, "L1", "sms", "marketing")},
			{{"a", "s2", 100, &ledger.ConsentWithdrawn{All: true, Via: "call"}}},
			// Every business: a call by b after it counts.
			{{"", "s3", 110, &ledger.ConsentWithdrawn{Via: "web"}}, contact("b", "s3", 130, "L2", "call", "service")},
		},
		check: func(t *testing.T, r Report) {
			if len(r.OptOuts) != 3 {
				t.Fatalf("%d opt-outs, want 3: %+v", len(r.OptOuts), r.OptOuts)
			}
			got := func(i int) (int, float64, string) {
				o := r.OptOuts[i]
				at := ""
				if o.LastContactAt != nil {
					at = o.LastContactAt.Format("15:04")
				}
				return o.ContactsAfter, o.GapSeconds, at
			}
			for i, want := range []struct {
				n   int
				gap float64
				at  string
				via string
			}{{2, 65 * 60, "11:05", "sms_keyword"}, {0, 0, "", "call"}, {1, 20 * 60, "12:10", "web"}} {
				n, gap, at := got(i)
				if n != want.n || gap != want.gap || at != want.at || r.OptOuts[i].Via != want.via {
					t.Errorf("opt-out %d: %d after, gap %vs, last at %q, via %s; want %d, %vs, %q, %s", i, n, gap, at, r.OptOuts[i].Via, want.n, want.gap, want.at, want.via)
				}
			}
			if o := r.OptOuts[1]; len(o.Channels) != 0 || len(o.Purposes) != 0 {
				t.Errorf("an opt-out of everything lists %v %v", o.Channels, o.Purposes)
			}
		},
	}, {
		name: "reminders by outcome",
		history: [][]fact{
			reminder("a", "s1", 0, "r1", "L1", dispatched("r1", "L1"), submitted("r1"), &ledger.ReminderDelivered{ReminderID: "r1"}),
			reminder("a", "s2", 0, "r2", "L1", &ledger.ReminderDenied{ReminderID: "r2", Reasons: deny("withdrawal"), RulesVersion: "t"}),
			reminder("a", "s3", 0, "r3", "L1", dispatched("r3", "L1"), submitted("r3"), &ledger.ReminderFailed{ReminderID: "r3", Status: "UNDELIV"}),
			reminder("a", "s4", 0, "r4", "L1", dispatched("r4", "L1"), &ledger.ReminderOutcomeUnknown{ReminderID: "r4"}),
			reminder("a", "s5", 0, "r5", "L1", dispatched("r5", "L1"), submitted("r5")),
			reminder("b", "s6", 0, "r1", "L2", dispatched("r1", "L2"), submitted("r1"), &ledger.ReminderDelivered{ReminderID: "r1"}),
			// Renewal timers: one cancelled by an opt-out, one deferred,
			// one pending, one that fired and was delivered.
			{timer("a", "s7", "t1"), {"a", "s7", 1, &ledger.ReminderCancelled{ReminderID: "t1", Reason: ledger.CancelOptedOut}},
				timer("a", "s7", "t2"), {"a", "s7", 2, &ledger.ReminderDeferred{ReminderID: "t2", Rule: "quiet-hours", DueAt: base, NextAt: base.Add(time.Hour)}},
				timer("a", "s7", "t3"), timer("a", "s8", "t4")},
			reminder("a", "s8", 5, "t4", "L1", dispatched("t4", "L1"), submitted("t4"), &ledger.ReminderDelivered{ReminderID: "t4"}),
		},
		check: func(t *testing.T, r Report) {
			want := []Outcome{{Delivered, 3}, {Submitted, 1}, {Failed, 1}, {Unknown, 1}, {Denied, 1}, {Cancelled, 1}, {Deferred, 1}, {Scheduled, 1}}
			if !reflect.DeepEqual(r.Reminders, want) {
				t.Errorf("reminders %+v, want %+v", r.Reminders, want)
			}
		},
	}}
	for name, open := range stores {
		t.Run(name, func(t *testing.T) {
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					st := open(t)
					evs := write(t, st, c.history...)
					r, err := Compute(context.Background(), st, all[0], all[1], rules)
					if err != nil {
						t.Fatal(err)
					}
					if r.Events != len(evs) || r.First != 1 || r.Last != uint64(len(evs)) {
						t.Errorf("covered %d events, %d..%d; want %d, 1..%d", r.Events, r.First, r.Last, len(evs), len(evs))
					}
					c.check(t, r)
				})
			}
		})
	}
}

// after returns the first moment strictly after t on this machine's clock,
// so that events appended from then on are recorded after t.
func after(t *testing.T, at time.Time) time.Time {
	deadline := time.Now().Add(5 * time.Second)
	for !time.Now().After(at) {
		if time.Now().After(deadline) {
			t.Fatal("the clock does not move")
		}
	}
	return time.Now()
}

// TestReportPeriodOnEveryStore: a report counts the events recorded in its
// period only; a reminder requested before it is not this period's, and
// one dispatched before it but submitted in it is a contact on its line.
func TestReportPeriodOnEveryStore(t *testing.T) {
	for name, open := range stores {
		t.Run(name, func(t *testing.T) {
			st := open(t)
			before := write(t, st,
				[]fact{contact("a", "s1", 0, "L1", "call", "service")},
				reminder("a", "s2", 1, "r1", "L7", dispatched("r1", "L7")),
				reminder("a", "s3", 1, "r2", "L1", dispatched("r2", "L1"), submitted("r2")))
			from := after(t, before[len(before)-1].RecordedAt)
			during := write(t, st,
				[]fact{contact("a", "s1", 10, "L1", "sms", "service"), {"a", "s2", 11, submitted("r1")},
					{"a", "s3", 12, &ledger.ReminderDelivered{ReminderID: "r2"}}},
				reminder("a", "s4", 13, "r3", "L1", &ledger.ReminderDenied{ReminderID: "r3", Reasons: deny("quiet-hours"), RulesVersion: "t"}))
			to := after(t, during[len(during)-1].RecordedAt)
			write(t, st, []fact{contact("a", "s1", 20, "L1", "call", "service")})

			r, err := Compute(context.Background(), st, from, to, rules)
			if err != nil {
				t.Fatal(err)
			}
			if r.First != during[0].Position || r.Last != during[len(during)-1].Position || r.Events != len(during) {
				t.Fatalf("covered %d..%d (%d events), want %d..%d", r.First, r.Last, r.Events, during[0].Position, during[len(during)-1].Position)
			}
			if want := []Contacts{{"a", "L1", "sms", 1}, {"a", "L7", "flash", 1}}; !reflect.DeepEqual(r.Contacts, want) {
				t.Errorf("contacts %+v, want %+v", r.Contacts, want)
			}
			if want := []Outcome{{Denied, 1}}; !reflect.DeepEqual(r.Reminders, want) {
				t.Errorf("reminders %+v, want %+v", r.Reminders, want)
			}
			empty, err := Compute(context.Background(), st, to.Add(time.Hour), to.Add(2*time.Hour), rules)
			if err != nil || empty.Events != 0 || empty.Last >= empty.First || len(empty.Contacts) != 0 {
				t.Errorf("a period after the last event: %+v, %v", empty, err)
			}
			if _, err := Compute(context.Background(), st, to, from, rules); err != ErrPeriod {
				t.Errorf("a period ending before it starts: %v", err)
			}
		})
	}
}

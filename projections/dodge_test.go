package projections

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/heed/heed/ledger"
)

// appendDated appends payload with a business time of its own; the store
// records it at the env's clock.
func (e *env) appendDated(subj string, occurred time.Time, payload any) ledger.Event {
	e.t.Helper()
	ev, err := ledger.NewEvent(tenant, subj, occurred, payload)
	if err != nil {
		e.t.Fatal(err)
	}
	out, err := e.store.Append(e.ctx, ledger.ContactStream(tenant, subj), ledger.Any(), []ledger.Event{ev})
	if err != nil {
		e.t.Fatal(err)
	}
	return out[0]
}

// TestDatedContactsCountWhenRecorded: contacts a business dates far ahead
// or far back count for the frequency, daily and region limits when heed
// recorded them, exactly like contacts dated now.
func TestDatedContactsCountWhenRecorded(t *testing.T) {
	for _, tc := range []struct {
		name     string
		occurred time.Time
	}{
		{"dated now", base},
		{"dated 9999-12-31", time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)},
		{"dated a year later", base.Add(days(365))},
		{"dated 60 days back", base.Add(-days(60))},
		{"dated before 2020", time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Default()
			cfg.RegionBurst.MaxPerHour = 4
			cfg.Frequency.SubjectPerDay = 4
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			e := newEnv(t, cfg)
			e.contact(subject, ledger.RelationshipStarted{ContractRef: "P", StartsAt: base.Add(-days(100))})
			e.contact(other, ledger.RelationshipStarted{ContractRef: "Q", StartsAt: base.Add(-days(100))})
			for range 4 {
				e.appendDated(subject, tc.occurred, ledger.ContactMade{Line: line1, Channel: "call", Purpose: "service", Region: "北京市"})
			}
			d := e.decide(Query{Channel: "call", Purpose: "service", Line: line1})
			if d.Allowed || !d.Denied(RuleFrequency) {
				t.Errorf("fifth call in a week after four %s: %+v", tc.name, d.Reasons)
			}
			// Another Beijing number on the same line: the region's hour
			// is full too.
			if d := e.decide(Query{Subject: other, Channel: "sms", Purpose: "service", Line: line1}); !d.Denied(RuleRegionBurst) {
				t.Errorf("region burst after four %s: %+v", tc.name, d.Reasons)
			}
			// A week later the contacts have left the window.
			e.at(base.Add(days(8)))
			if d := e.decide(Query{Channel: "call", Purpose: "service", Line: line1}); !d.Allowed {
				t.Errorf("a week later: %+v", d.Reasons)
			}
		})
	}
}

// TestBackfilledContactsCountWhenTheyHappened: imported history counts at
// its own time, never later than it was recorded.
func TestBackfilledContactsCountWhenTheyHappened(t *testing.T) {
	e := newEnv(t, nil)
	e.contact(subject, ledger.RelationshipStarted{ContractRef: "P", StartsAt: base.Add(-days(100))})
	for range 3 {
		e.appendDated(subject, base.Add(-days(20)), ledger.ContactMade{Line: line1, Channel: "call", Purpose: "service", Backfill: true})
	}
	if d := e.decide(Query{Channel: "call", Purpose: "service", Line: line1}); !d.Allowed {
		t.Errorf("three calls backfilled from 20 days ago deny today: %+v", d.Reasons)
	}
	// A backfilled contact dated ahead still counts when recorded.
	for range 3 {
		e.appendDated(subject, time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), ledger.ContactMade{Line: line1, Channel: "call", Purpose: "service", Backfill: true})
	}
	if d := e.decide(Query{Channel: "call", Purpose: "service", Line: line1}); !d.Denied(RuleFrequency) {
		t.Errorf("three backfilled calls dated 9999 escape the limit: %+v", d.Reasons)
	}
}

// lineConfig suspends a line at 1 complaint in 10 contacts.
func lineConfig(t *testing.T) *Config {
	t.Helper()
	cfg := Default()
	cfg.LineSuspension.MinContacts, cfg.LineSuspension.Rate = 10, 0.1
	cfg.Frequency.SubjectPerDay = 1000
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestComplaintSuspendsTheLineInOrder: the first decision after the
// complaint that takes the line to the threshold is denied, with the
// figures, before any suspender has run; the LineSuspended the suspender
// then records takes over the reason.
func TestComplaintSuspendsTheLineInOrder(t *testing.T) {
	e := newEnv(t, lineConfig(t))
	e.contact(subject, ledger.RelationshipStarted{ContractRef: "P", StartsAt: base.Add(-days(100))})
	for i := range 10 {
		subj := fmt.Sprintf("c-%d", i)
		e.append(ledger.ContactStream(tenant, subj), tenant, subj, ledger.ContactMade{Line: line1, Channel: "call", Purpose: "service"})
	}
	q := Query{Channel: "call", Purpose: "service", Line: line1}
	if d := e.decide(q); !d.Allowed {
		t.Fatalf("before the complaint: %+v", d.Reasons)
	}
	e.at(base.Add(time.Minute))
	c := e.append(ledger.ContactStream(tenant, "c-3"), tenant, "c-3", ledger.ComplaintReceived{Line: line1, Channel: "call", Source: "customer"})
	d := e.decide(q)
	if d.Allowed || !cites(d, RuleLineSuspended, c.ID) {
		t.Fatalf("first decision after the complaint: %+v", d)
	}
	for _, r := range d.Denials() {
		if r.Rule == RuleLineSuspended {
			for _, want := range []string{"1 complaints in 10 contacts over 30 days", "1000 per 10,000", "limit 1000 per 10,000"} {
				if !strings.Contains(r.Text, want) {
					t.Errorf("reason %q lacks %q", r.Text, want)
				}
			}
			if !strings.Contains(r.TextZH, "投诉1次") || !strings.Contains(r.TextZH, "联系10次") {
				t.Errorf("Chinese reason %q lacks the figures", r.TextZH)
			}
		}
	}
	ls, err := e.r.Line(e.ctx, tenant, line1)
	if err != nil {
		t.Fatal(err)
	}
	if !ls.Suspended || ls.Recorded || ls.Contacts != 10 || ls.Complaints != 1 || ls.Rate != 0.1 || ls.WindowDays != 30 || ls.Reason == nil || ls.Reason.Events[0] != c.ID {
		t.Errorf("line state before the suspender: %+v", ls)
	}
	// A past decision as of a moment after the complaint was recorded is
	// denied too; one before it is not.
	e.at(base.Add(time.Hour))
	if d := e.decide(Query{Channel: "call", Purpose: "service", Line: line1, At: base.Add(2 * time.Minute)}); !d.Denied(RuleLineSuspended) {
		t.Errorf("as of after the complaint: %+v", d.Reasons)
	}
	if d := e.decide(Query{Channel: "call", Purpose: "service", Line: line1, At: base.Add(30 * time.Second)}); d.Denied(RuleLineSuspended) {
		t.Errorf("as of before the complaint: %+v", d.Reasons)
	}
	// The suspender records what decisions already said.
	n, err := NewSuspender(e.r, e.store, "watch").Check(e.ctx)
	if err != nil || n != 1 {
		t.Fatalf("suspender: %d %v", n, err)
	}
	evs, err := e.store.ReadStream(e.ctx, ledger.LineStream(tenant, line1), 1, 10)
	if err != nil || len(evs) != 1 {
		t.Fatalf("line stream: %v %v", evs, err)
	}
	p, _ := ledger.Decode(&evs[0])
	if s := p.(*ledger.LineSuspended); s.Contacts != 10 || s.Complaints != 1 || s.Rate != 0.1 {
		t.Errorf("recorded figures %+v", s)
	}
	d = e.decide(q)
	if d.Allowed || !cites(d, RuleLineSuspended, evs[0].ID) {
		t.Errorf("after the suspension was recorded: %+v", d)
	}
	if ls, _ := e.r.Line(e.ctx, tenant, line1); !ls.Suspended || !ls.Recorded || ls.Reason.Events[0] != evs[0].ID {
		t.Errorf("line state after the suspender: %+v", ls)
	}
	// Reinstated, the line starts afresh.
	e.append(ledger.LineStream(tenant, line1), tenant, "", ledger.LineReinstated{Line: line1, Reason: "vendor replaced"})
	if d := e.decide(q); !d.Allowed {
		t.Errorf("reinstated line: %+v", d.Reasons)
	}
	if ls, _ := e.r.Line(e.ctx, tenant, line1); ls.Suspended || ls.Contacts != 0 || ls.Reason != nil {
		t.Errorf("reinstated line state: %+v", ls)
	}
}

// TestContactThatReachesTheMinimumSuspends: the contact that brings a line
// with complaints to the minimum count takes it over the threshold too.
func TestContactThatReachesTheMinimumSuspends(t *testing.T) {
	e := newEnv(t, lineConfig(t))
	e.contact(subject, ledger.RelationshipStarted{ContractRef: "P", StartsAt: base.Add(-days(100))})
	e.append(ledger.ContactStream(tenant, "c-0"), tenant, "c-0", ledger.ComplaintReceived{Line: line1, Source: "customer"})
	q := Query{Channel: "call", Purpose: "service", Line: line1}
	for i := range 10 {
		if d := e.decide(q); !d.Allowed {
			t.Fatalf("with %d contacts: %+v", i, d.Reasons)
		}
		subj := fmt.Sprintf("c-%d", i)
		e.append(ledger.ContactStream(tenant, subj), tenant, subj, ledger.ContactMade{Line: line1, Channel: "call", Purpose: "service"})
	}
	if d := e.decide(q); !d.Denied(RuleLineSuspended) {
		t.Errorf("10 contacts, 1 complaint: %+v", d.Reasons)
	}
}

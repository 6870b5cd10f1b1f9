package projections

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/heed/heed/ledger"
)

func cites(d Decision, rule string, id string) bool {
	for _, r := range d.Reasons {
		if r.Rule == rule && slices.Contains(r.Events, id) {
			return true
		}
	}
	return false
}

// The story behind heed, one scenario per line of it.

func TestRenewalReminderToInsuredCustomerIsAllowed(t *testing.T) {
	e := newEnv(t, nil)
	pol := e.contact(subject, ledger.RelationshipStarted{ContractRef: "AUTO-2025-001", Product: "car insurance", StartsAt: base.Add(-days(345)), ExpiresAt: ptr(base.Add(days(20)))})
	d := e.decide(Query{Channel: ledger.ChannelFlash, Purpose: ledger.PurposeService, Line: line1})
	if !d.Allowed {
		t.Fatalf("renewal reminder denied: %+v", d.Reasons)
	}
	if !cites(d, RuleServiceBasis, pol.ID) {
		t.Errorf("allowance does not cite the policy %s: %+v", pol.ID, d.Reasons)
	}
	// The notifier records the reasons in ReminderDispatched as they are.
	disp, err := ledger.NewEvent(tenant, subject, e.now(), ledger.ReminderDispatched{ReminderID: "r1", ContractRef: "AUTO-2025-001", ContentHash: "h",
		Reasons: d.Reasons, RulesVersion: d.RulesVersion, AsOf: d.AsOf})
	if err != nil {
		t.Fatal(err)
	}
	if err := ledger.Validate(&disp); err != nil {
		t.Fatal(err)
	}
	// They cite event ids, in both languages; log positions stay out.
	var rec ledger.ReminderDispatched
	if err := json.Unmarshal(disp.Data, &rec); err != nil {
		t.Fatal(err)
	}
	if got := rec.Reasons; len(got) != len(d.Reasons) || got[0].Rule != d.Reasons[0].Rule || got[0].TextZH == "" || len(got[0].Events) != 1 ||
		len(d.Reasons[0].Positions) != 1 || strings.Contains(string(disp.Data), "position") {
		t.Errorf("recorded reasons %s", disp.Data)
	}
	if d.Revision != 1 || d.AsOf != pol.Position {
		t.Errorf("revision %d as of %d, want 1 as of %d", d.Revision, d.AsOf, pol.Position)
	}
	// Thirty days after expiry the grace period still allows the reminder.
	e.at(base.Add(days(50)))
	if d := e.decide(Query{Channel: ledger.ChannelFlash, Purpose: ledger.PurposeService}); !d.Allowed {
		t.Errorf("reminder within grace denied: %+v", d.Reasons)
	}
}

func TestMarketingCallToStrangerIsDenied(t *testing.T) {
	e := newEnv(t, nil)
	e.contact(subject, ledger.RelationshipStarted{ContractRef: "P", StartsAt: base.Add(-days(10))})
	d := e.decide(Query{Subject: other, Channel: ledger.ChannelCall, Purpose: ledger.PurposeMarketing, Line: line1})
	if d.Allowed || !d.Denied(RuleMarketingConsent) {
		t.Fatalf("marketing call to a stranger: %+v", d)
	}
	if d.Revision != 0 {
		t.Errorf("revision %d for a subject with no stream, want 0", d.Revision)
	}
}

func TestDontCallMeAgainDeniesEveryLaterCall(t *testing.T) {
	e := newEnv(t, nil)
	e.contact(subject, ledger.RelationshipStarted{ContractRef: "P", StartsAt: base.Add(-days(100))})
	e.contact(subject, grant("call_recording", []string{"call", "sms"}, []string{"service", "marketing"}))
	if d := e.decide(Query{Channel: "call", Purpose: "marketing"}); !d.Allowed {
		t.Fatalf("before the opt-out: %+v", d.Reasons)
	}
	// No waiting: the decision right after the acknowledged append must see it.
	w := e.contact(subject, ledger.ConsentWithdrawn{All: true, Via: "call", RawText: "别再给我打电话了"})
	for _, later := range []time.Duration{0, days(1), days(400)} {
		e.at(base.Add(later))
		for _, ch := range ledger.Channels {
			for _, pu := range ledger.Purposes {
				d := e.decide(Query{Channel: ch, Purpose: pu})
				if d.Allowed || !cites(d, RuleWithdrawal, w.ID) {
					t.Errorf("%v later, %s %s: allowed=%v reasons %+v", later, ch, pu, d.Allowed, d.Reasons)
				}
			}
		}
	}
}

func TestBundledTermsAreNotEnoughForMarketing(t *testing.T) {
	e := newEnv(t, nil)
	g := e.contact(subject, ledger.ConsentGranted{Purposes: []string{"service", "marketing"}, Channels: []string{"call", "sms"}, Source: "bundled_terms",
		Evidence: ledger.Evidence{URL: "https://app.example/terms", ContentHash: "sha256:ab"}})
	d := e.decide(Query{Channel: "sms", Purpose: "marketing"})
	if d.Allowed || !cites(d, RuleMarketingConsent, g.ID) {
		t.Fatalf("marketing on bundled terms: %+v", d)
	}
	if d := e.decide(Query{Channel: "sms", Purpose: "service"}); !d.Allowed {
		t.Errorf("service on bundled terms denied: %+v", d.Reasons)
	}
}

func TestLineAtOneComplaintPerTenThousandIsSuspended(t *testing.T) {
	e := newEnv(t, nil)
	e.contact(subject, ledger.RelationshipStarted{ContractRef: "P", StartsAt: base.Add(-days(100))})
	calls := func(from, n int) {
		for s := from; s < from+n; s += 100 {
			subj := fmt.Sprintf("callee-%d", s/100)
			evs := make([]ledger.Event, 0, 100)
			for range min(100, from+n-s) {
				ev, _ := ledger.NewEvent(tenant, subj, e.now(), ledger.ContactMade{Line: line1, Channel: "call", Purpose: "marketing", Outcome: "answered"})
				evs = append(evs, ev)
			}
			if _, err := e.store.Append(e.ctx, ledger.ContactStream(tenant, subj), ledger.Any(), evs); err != nil {
				t.Fatal(err)
			}
		}
	}
	calls(0, 9999)
	e.append(ledger.ContactStream(tenant, "callee-0"), tenant, "callee-0", ledger.ComplaintReceived{Line: line1, Channel: "call", Source: "operator"})
	sus := NewSuspender(e.r, e.store, "line-watch")
	check := func() int {
		t.Helper()
		if err := e.r.WaitFor(e.ctx, mustHead(t, e.store)); err != nil {
			t.Fatal(err)
		}
		n, err := sus.Check(e.ctx)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := check(); n != 0 {
		t.Fatalf("suspended below the minimum of 10,000 contacts")
	}
	calls(9999, 1)
	if n := check(); n != 1 {
		t.Fatalf("suspensions = %d at 1 complaint in 10,000 contacts, want 1", n)
	}
	if n := check(); n != 0 {
		t.Fatalf("suspended twice")
	}
	evs, err := e.store.ReadStream(e.ctx, ledger.LineStream(tenant, line1), 1, 10)
	if err != nil || len(evs) != 1 {
		t.Fatalf("line stream: %v %v", evs, err)
	}
	p, _ := ledger.Decode(&evs[0])
	if s := p.(*ledger.LineSuspended); s.Contacts != 10000 || s.Complaints != 1 || s.Rate != 1e-4 || s.WindowDays != 30 || evs[0].Actor != "line-watch" {
		t.Errorf("suspension figures %+v by %q", s, evs[0].Actor)
	}
	d := e.decide(Query{Channel: "call", Purpose: "service", Line: line1})
	if d.Allowed || !cites(d, RuleLineSuspended, evs[0].ID) {
		t.Fatalf("next contact on the suspended line: %+v", d)
	}
	if d := e.decide(Query{Channel: "call", Purpose: "service", Line: "pbx-2"}); !d.Allowed {
		t.Errorf("another line denied: %+v", d.Reasons)
	}
	// Only an admin lifts it, and the old figures do not trip it again.
	e.append(ledger.LineStream(tenant, line1), tenant, "", ledger.LineReinstated{Line: line1, Reason: "vendor replaced"})
	if n := check(); n != 0 {
		t.Errorf("re-suspended on the figures that were already judged")
	}
	if d := e.decide(Query{Channel: "call", Purpose: "service", Line: line1}); !d.Allowed {
		t.Errorf("reinstated line denied: %+v", d.Reasons)
	}
}

func mustHead(t *testing.T, s ledger.Store) uint64 {
	t.Helper()
	h, err := s.Head(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestSixtyFirstCallToOneRegionWithinAnHourIsRefused(t *testing.T) {
	e := newEnv(t, nil)
	e.contact(subject, ledger.RelationshipStarted{ContractRef: "P", StartsAt: base.Add(-days(100))})
	beijing, err := Region(number)
	if err != nil || beijing != "北京市" {
		t.Fatalf("Region = %q, %v", beijing, err)
	}
	var last ledger.Event
	for i := range 60 {
		e.at(base.Add(time.Duration(i) * 30 * time.Second))
		subj := fmt.Sprintf("callee-%d", i)
		last = e.append(ledger.ContactStream(tenant, subj), tenant, subj, ledger.ContactMade{Line: line1, Channel: "call", Purpose: "service", Region: beijing})
	}
	d := e.decide(Query{Channel: "call", Purpose: "service", Line: line1})
	if d.Allowed || !cites(d, RuleRegionBurst, last.ID) {
		t.Fatalf("61st call to Beijing: %+v", d)
	}
	if d := e.decide(Query{Number: "+862161234567", Channel: "call", Purpose: "service", Line: line1}); d.Denied(RuleRegionBurst) {
		t.Errorf("a Shanghai number refused for Beijing's burst: %+v", d.Reasons)
	}
	// As of just before the 60th call was recorded, the hour was not full.
	if d := e.decide(Query{Channel: "call", Purpose: "service", Line: line1, At: base.Add(29 * time.Minute)}); d.Denied(RuleRegionBurst) {
		t.Errorf("as of before the 60th call: %+v", d.Reasons)
	}
	if d := e.decide(Query{Channel: "call", Purpose: "service", Line: line1, At: base.Add(30 * time.Minute)}); !d.Denied(RuleRegionBurst) {
		t.Errorf("as of after the 60th call: %+v", d.Reasons)
	}
	e.at(base.Add(time.Hour))
	if d := e.decide(Query{Channel: "call", Purpose: "service", Line: line1}); !d.Allowed {
		t.Errorf("next hour still refused: %+v", d.Reasons)
	}
}

func TestCallAtTenPMCalleeTimeIsRefused(t *testing.T) {
	e := newEnv(t, nil)
	e.contact(subject, ledger.RelationshipStarted{ContractRef: "P", StartsAt: base.Add(-days(100))})
	e.at(time.Date(2026, 11, 2, 14, 0, 0, 0, time.UTC)) // 22:00 in Beijing
	d := e.decide(Query{Channel: "call", Purpose: "service"})
	if d.Allowed || !d.Denied(RuleQuietHours) {
		t.Fatalf("call at 22:00: %+v", d)
	}
	// The same instant is 09:00 in New York: a US customer may be called.
	if d := e.decide(Query{Number: "+12125551234", Channel: "call", Purpose: "service"}); d.Denied(RuleQuietHours) {
		t.Errorf("09:00 in New York refused: %+v", d.Reasons)
	}
}

func TestAsOfLastMonthGetsLastMonthsAnswer(t *testing.T) {
	e := newEnv(t, nil)
	lastMonth := base.Add(-days(30))
	e.at(lastMonth)
	g := e.contact(subject, grant("web_form", call, marketing))
	e.at(base.Add(-days(3)))
	w := e.contact(subject, ledger.ConsentWithdrawn{All: true, Via: "web"})
	e.at(base)
	now := e.decide(Query{Channel: "call", Purpose: "marketing"})
	if now.Allowed || !cites(now, RuleWithdrawal, w.ID) {
		t.Fatalf("today: %+v", now)
	}
	then := e.decide(Query{Channel: "call", Purpose: "marketing", At: lastMonth.Add(time.Hour)})
	if !then.Allowed || !cites(then, RuleMarketingConsent, g.ID) {
		t.Fatalf("as of last month: %+v", then)
	}
	if then.Revision != 1 || then.AsOf != g.Position || !then.At.Equal(lastMonth.Add(time.Hour)) {
		t.Errorf("as of last month: revision %d as of %d at %v", then.Revision, then.AsOf, then.At)
	}
	before := e.decide(Query{Channel: "call", Purpose: "marketing", At: lastMonth.Add(-time.Hour)})
	if before.Allowed {
		t.Errorf("before the consent was given: allowed")
	}
}

func TestReplayUnderChangedRules(t *testing.T) {
	e := newEnv(t, nil)
	e.contact(subject, grant("bundled_terms", call, marketing))
	if d := e.decide(Query{Channel: "call", Purpose: "marketing"}); d.Allowed {
		t.Fatal("bundled terms allowed under default rules")
	}
	head := mustHead(t, e.store)
	lax := Default()
	lax.Version = "lax"
	lax.MarketingConsent.BundledTermsEnough = true
	if err := lax.Validate(); err != nil {
		t.Fatal(err)
	}
	r, err := Replay(e.ctx, e.store, lax)
	if err != nil {
		t.Fatal(err)
	}
	d, err := r.Decide(e.ctx, Query{Tenant: tenant, Subject: subject, Number: number, Channel: "call", Purpose: "marketing", At: base})
	if err != nil {
		t.Fatal(err)
	}
	if !d.Allowed || d.RulesVersion != lax.RulesVersion() || d.RulesVersion == Default().RulesVersion() {
		t.Errorf("replayed under lax rules: %+v", d)
	}
	if h := mustHead(t, e.store); h != head {
		t.Errorf("replay wrote to the log: head %d, was %d", h, head)
	}
}

func TestDecideReportsAStuckProjection(t *testing.T) {
	s := stuck{newClockStore(base)}
	r, err := NewRunner(s, Default(), Options{Wait: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() { cancel(); <-done }()
	for !r.running.Load() {
		time.Sleep(time.Millisecond)
	}
	ev, _ := ledger.NewEvent(tenant, subject, base, grant("web_form", call, service))
	if _, err := s.Append(ctx, ledger.ContactStream(tenant, subject), ledger.Any(), []ledger.Event{ev}); err != nil {
		t.Fatal(err)
	}
	_, err = r.Decide(ctx, Query{Tenant: tenant, Subject: subject, Number: number, Channel: "call", Purpose: "service"})
	if !errors.Is(err, ErrBehind) {
		t.Fatalf("Decide on a stuck projection: %v, want ErrBehind", err)
	}
}

// stuck is a store whose followers never receive anything.
type stuck struct{ *clockStore }

func (s stuck) Follow(ctx context.Context, from uint64, fn func(ledger.Event) error) error {
	<-ctx.Done()
	return ctx.Err()
}

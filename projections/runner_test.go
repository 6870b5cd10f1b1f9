package projections

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/heed/heed/ledger"
)

// TestRevisionGuardsAgainstAConcurrentOptOut shows the use the notifier
// makes of Decision.Revision (invariant 2).
func TestRevisionGuardsAgainstAConcurrentOptOut(t *testing.T) {
	e := newEnv(t, nil)
	e.contact(subject, ledger.RelationshipStarted{ContractRef: "P", StartsAt: base.Add(-days(10))})
	e.contact(subject, ledger.ReminderRequested{ReminderID: "r1", ContractRef: "P", ContentHash: "h"})
	d := e.decide(Query{Channel: "flash", Purpose: "service"})
	if !d.Allowed || d.Revision != 2 {
		t.Fatalf("before the opt-out: %+v", d)
	}
	e.contact(subject, ledger.ConsentWithdrawn{All: true, Via: "sms_keyword", RawText: "退订"})
	ev, _ := ledger.NewEvent(tenant, subject, e.now(), ledger.ReminderDispatched{ReminderID: "r1", ContractRef: "P", ContentHash: "h"})
	_, err := e.store.Append(e.ctx, ledger.ContactStream(tenant, subject), ledger.Exact(d.Revision), []ledger.Event{ev})
	if !errors.Is(err, ledger.ErrWrongRevision) {
		t.Fatalf("dispatch at the stale revision: %v", err)
	}
	if d := e.decide(Query{Channel: "flash", Purpose: "service"}); d.Allowed || d.Revision != 3 {
		t.Errorf("decided again: %+v", d)
	}
}

func TestDispatchedRemindersCountAsFlashContacts(t *testing.T) {
	e := newEnv(t, nil)
	e.contact(subject, ledger.RelationshipStarted{ContractRef: "P", StartsAt: base.Add(-days(10))})
	for i := range 3 {
		d := e.decide(Query{Channel: "flash", Purpose: "service"})
		if !d.Allowed {
			t.Fatalf("reminder %d denied: %+v", i+1, d.Reasons)
		}
		e.contact(subject, ledger.ReminderDenied{ReminderID: "denied", RulesVersion: "x"})
		e.contact(subject, ledger.ReminderDispatched{ReminderID: "r", ContractRef: "P", ContentHash: "h", Line: line1})
		e.contact(subject, ledger.ReminderDelivered{ReminderID: "r"})
	}
	if d := e.decide(Query{Channel: "flash", Purpose: "service"}); !d.Denied(RuleFrequency) {
		t.Errorf("fourth reminder in a week: %+v", d.Reasons)
	}
	if d := e.decide(Query{Channel: "call", Purpose: "service"}); d.Denied(RuleFrequency) {
		t.Errorf("a call counted flash reminders: %+v", d.Reasons)
	}
}

func TestDecideAfterWaitsForThePosition(t *testing.T) {
	e := newEnv(t, nil)
	w := e.contact(subject, ledger.ConsentWithdrawn{All: true, Via: "api"})
	d, err := e.r.DecideAfter(e.ctx, Query{Tenant: tenant, Subject: subject, Number: number, Channel: "sms", Purpose: "service"}, w.Position)
	if err != nil {
		t.Fatal(err)
	}
	if d.AsOf < w.Position || !cites(d, RuleWithdrawal, w.ID) {
		t.Errorf("decision after position %d: %+v", w.Position, d)
	}
}

func TestSuspensionAsOfBeforeItWasRecorded(t *testing.T) {
	e := newEnv(t, nil)
	e.contact(subject, ledger.RelationshipStarted{ContractRef: "P", StartsAt: base.Add(-days(100))})
	e.at(base.Add(time.Hour))
	e.append(ledger.LineStream(tenant, line1), tenant, "", ledger.LineSuspended{Line: line1, Rule: RuleLineSuspended, Contacts: 10000, Complaints: 1})
	e.at(base.Add(2 * time.Hour))
	if d := e.decide(Query{Channel: "call", Purpose: "service", Line: line1}); !d.Denied(RuleLineSuspended) {
		t.Fatalf("suspended line allowed: %+v", d.Reasons)
	}
	if d := e.decide(Query{Channel: "call", Purpose: "service", Line: line1, At: base.Add(30 * time.Minute)}); !d.Allowed {
		t.Errorf("as of before the suspension: %+v", d.Reasons)
	}
}

func TestBadQueriesAreRefusedWithoutTheNumber(t *testing.T) {
	e := newEnv(t, nil)
	_, err := e.r.Decide(e.ctx, Query{Tenant: tenant, Subject: subject, Channel: "fax", Purpose: "service"})
	if !errors.Is(err, ErrQuery) {
		t.Errorf("unknown channel: %v", err)
	}
	bad := "13800138000" // national form: no country, no zone
	_, err = e.r.Decide(e.ctx, Query{Tenant: tenant, Subject: subject, Number: bad, Channel: "call", Purpose: "service"})
	if !errors.Is(err, ErrNumber) || strings.Contains(err.Error(), "138") {
		t.Errorf("bad number: %v", err)
	}
}

func TestFastParseAgreesWithPhonenumbers(t *testing.T) {
	for _, n := range []string{"+8613800138000", "+862161234567", "+12125551234", "+61212345678", "+79161234567", "+390612345678", "+442079460000", "+85221234567"} {
		a, err := parse(n)
		if err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		slow, err := parseSlow(n)
		if err != nil {
			t.Fatal(err)
		}
		if region(a) != region(slow) || strings.Join(zones(a), ",") != strings.Join(zones(slow), ",") {
			t.Errorf("%s: fast %s %v, library %s %v", n, region(a), zones(a), region(slow), zones(slow))
		}
	}
}

// TestDecisionsWhileTheLogGrows runs live and past decisions, a rebuild and
// a snapshot against a runner that is applying appends, for the race
// detector, and checks the rebuilt state matches.
func TestDecisionsWhileTheLogGrows(t *testing.T) {
	e := newEnvWith(t, nil, t.TempDir())
	e.contact(subject, ledger.RelationshipStarted{ContractRef: "P", StartsAt: base.Add(-days(10))})
	done := make(chan error, 1)
	go func() {
		for i := range 300 {
			subj := fmt.Sprintf("s-%d", i%20)
			ev, _ := ledger.NewEvent(tenant, subj, base, ledger.ContactMade{Line: line1, Channel: "call", Purpose: "service", Region: fmt.Sprintf("r-%d", i%7)})
			if _, err := e.store.Append(e.ctx, ledger.ContactStream(tenant, subj), ledger.Any(), []ledger.Event{ev}); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for i := 0; ; i++ {
		at := time.Time{}
		if i%2 == 1 {
			at = base.Add(-time.Minute)
		}
		if _, err := e.r.Decide(e.ctx, Query{Tenant: tenant, Subject: fmt.Sprintf("s-%d", i%20), Number: number, Channel: "call", Purpose: "service", Line: line1, At: at}); err != nil {
			t.Fatal(err)
		}
		if i == 50 {
			if err := e.r.Rebuild(e.ctx); err != nil {
				t.Fatal(err)
			}
			if err := e.r.Snapshot(); err != nil {
				t.Fatal(err)
			}
		}
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			if err := e.r.WaitFor(e.ctx, mustHead(t, e.store)); err != nil {
				t.Fatal(err)
			}
			fresh, err := Replay(e.ctx, e.store, e.r.cfg)
			if err != nil {
				t.Fatal(err)
			}
			e.r.mu.RLock()
			diff := diffStates(e.r.st, fresh.st)
			e.r.mu.RUnlock()
			if diff != "" {
				t.Fatalf("after rebuild while running: %s", diff)
			}
			return
		default:
		}
	}
}

func TestSuspenderRunsUntilCancelled(t *testing.T) {
	cfg := Default()
	cfg.LineSuspension.MinContacts, cfg.LineSuspension.Rate = 10, 0.1
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, cfg)
	for i := range 10 {
		subj := fmt.Sprintf("c-%d", i)
		e.append(ledger.ContactStream(tenant, subj), tenant, subj, ledger.ContactMade{Line: line1, Channel: "call", Purpose: "marketing"})
	}
	e.contact("c-1", ledger.ComplaintReceived{Line: line1, Source: "regulator"})
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan error, 1)
	go func() { done <- NewSuspender(e.r, e.store, "watch").Run(ctx, 5*time.Millisecond) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		rev, err := e.store.StreamRevision(e.ctx, ledger.LineStream(tenant, line1))
		if err != nil {
			t.Fatal(err)
		}
		if rev == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("line not suspended within 5 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // more checks must not suspend again
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Run: %v", err)
	}
	if rev, _ := e.store.StreamRevision(e.ctx, ledger.LineStream(tenant, line1)); rev != 1 {
		t.Errorf("line stream at revision %d, want one suspension", rev)
	}
}

func TestDailyCapAcrossTenantsAsOf(t *testing.T) {
	e := newEnv(t, nil)
	e.at(base.Add(-time.Hour))
	e.contact(subject, ledger.RelationshipStarted{ContractRef: "P", StartsAt: base.Add(-days(10))})
	e.at(base)
	for i := range 10 {
		ten := fmt.Sprintf("bank-%d", i)
		e.append(ledger.ContactStream(ten, subject), ten, subject, ledger.ContactMade{Line: "x", Channel: "sms", Purpose: "service"})
	}
	e.at(base.Add(2 * time.Hour))
	e.contact(other, ledger.RelationshipStarted{ContractRef: "Q", StartsAt: base}) // moves the log past the question's time
	q := Query{Channel: "call", Purpose: "service", At: base.Add(time.Hour)}
	d := e.decide(q)
	if !d.Denied(RuleFrequency) {
		t.Fatalf("as of an hour after ten contacts by other banks: %+v", d.Reasons)
	}
	for _, r := range d.Reasons {
		if r.Rule == RuleFrequency && len(r.Events) != 0 {
			t.Errorf("the daily cap cites other tenants' events: %v", r.Events)
		}
	}
	q.At = base.Add(-30 * time.Minute)
	if d := e.decide(q); !d.Allowed {
		t.Errorf("as of before those contacts: %+v", d.Reasons)
	}
}

func TestQueryNeverPrintsTheNumber(t *testing.T) {
	q := Query{Tenant: tenant, Subject: subject, Number: number, Channel: "call", Purpose: "service"}
	for _, f := range []string{"%v", "%+v", "%#v", "%s"} {
		if s := fmt.Sprintf(f, q); strings.Contains(s, "13800138000") || !strings.Contains(s, "redacted") {
			t.Errorf("%s prints %q", f, s)
		}
	}
	if b, _ := json.Marshal(q); strings.Contains(string(b), "13800138000") {
		t.Errorf("JSON carries the number: %s", b)
	}
}

package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heed/heed/ledger"
	"github.com/heed/heed/ledger/mem"
)

// streamDecider allows a flash reminder when the contact stream holds a
// relationship and no withdrawal; it reads the stream itself, so its
// revision is exactly the state it judged.
type streamDecider struct {
	store ledger.Store
	// after, if set, runs after the decision is made and before it is returned.
	after func(q Query)
	calls atomic.Int64
}

func (d *streamDecider) Decide(ctx context.Context, q Query) (Decision, error) {
	d.calls.Add(1)
	evs, err := d.store.ReadStream(ctx, ledger.ContactStream(q.Tenant, q.Subject), 1, 0)
	if err != nil && !errors.Is(err, ledger.ErrNotFound) {
		return Decision{}, err
	}
	var rel, withdrawn bool
	for _, e := range evs {
		switch e.Type {
		case ledger.TypeRelationshipStarted:
			rel = true
		case ledger.TypeConsentWithdrawn:
			withdrawn = true
		}
	}
	dec := Decision{Allowed: rel && !withdrawn, Revision: uint64(len(evs)), RulesVersion: "test", AsOf: uint64(len(evs))}
	switch {
	case withdrawn:
		dec.Reasons = []ledger.Reason{{Rule: "withdrawal", Effect: "deny", Text: "the customer opted out"}}
	case !rel:
		dec.Reasons = []ledger.Reason{{Rule: "service-basis", Effect: "deny", Text: "no relationship"}}
	default:
		dec.Reasons = []ledger.Reason{{Rule: "service-basis", Effect: "allow", Text: "active relationship"}}
	}
	if d.after != nil {
		d.after(q)
	}
	return dec, nil
}

// fakeSender answers with sequential message ids, or the error err.
type fakeSender struct {
	mu   sync.Mutex
	sent []Message
	err  error
	next int
	// onSubmit, if set, runs before the answer is returned.
	onSubmit func(id string)
}

func (s *fakeSender) Submit(_ context.Context, m Message) ([]string, error) {
	s.mu.Lock()
	s.sent = append(s.sent, m)
	if s.err != nil {
		s.mu.Unlock()
		return nil, s.err
	}
	s.next++
	id := fmt.Sprint(s.next)
	f := s.onSubmit
	s.mu.Unlock()
	if f != nil {
		f(id)
	}
	return []string{id}, nil
}

func (s *fakeSender) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sent)
}

const (
	tenant = "acme"
	number = "+8613800138000"
	line   = "10690001"
)

func pseudo(n string) string { return "p" + strings.TrimPrefix(n, "+") }

type rig struct {
	store  *mem.Store
	dec    *streamDecider
	sender *fakeSender
	n      *Notifier
}

func newRig(t *testing.T) *rig {
	t.Helper()
	st := mem.New()
	t.Cleanup(func() { st.Close() })
	r := &rig{store: st, dec: &streamDecider{store: st}, sender: &fakeSender{}}
	approveRenewal(t, st)
	r.n = New(Config{
		Store: st, Decider: r.dec, Sender: r.sender,
		Lines: map[string]string{line: tenant}, DefaultLine: line,
		Pseudonym: pseudo, SMSC: "sim",
	})
	return r
}

func (r *rig) relate(t *testing.T, num string) {
	t.Helper()
	e, err := ledger.NewEvent(tenant, pseudo(num), time.Now(), ledger.RelationshipStarted{ContractRef: "P-1", StartsAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.store.Append(context.Background(), ledger.ContactStream(tenant, pseudo(num)), ledger.Any(), []ledger.Event{e}); err != nil {
		t.Fatal(err)
	}
}

func (r *rig) types(t *testing.T, num string) []string {
	t.Helper()
	evs, err := r.store.ReadStream(context.Background(), ledger.ContactStream(tenant, pseudo(num)), 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range evs {
		out = append(out, e.Type)
	}
	return out
}

func req(id string) Request {
	return Request{Tenant: tenant, Actor: "key_test", Number: number, Subject: pseudo(number), ContractRef: "P-1",
		TemplateID: "renewal", TemplateVersion: 1, Params: map[string]string{"policy": "P-1", "date": "2026-12-01"}, ID: id}
}

func TestReminderDeliveredStoresHashNotText(t *testing.T) {
	r := newRig(t)
	r.relate(t, number)
	res, err := r.n.Remind(context.Background(), req("r1"))
	if err != nil {
		t.Fatal(err)
	}
	if res.State != StateSubmitted || len(res.MessageIDs) != 1 {
		t.Fatalf("state %s ids %v, want submitted with one id", res.State, res.MessageIDs)
	}
	if got := r.sender.sent[0]; !got.Flash || got.Text != "【平安保险】您的保单P-1将于2026-12-01到期" || got.Number != number || got.Line != line {
		t.Fatalf("sent %+v", got)
	}
	if err := r.n.OnReceipt(context.Background(), Receipt{MessageID: res.MessageIDs[0], Delivered: true, Status: "DELIVRD"}); err != nil {
		t.Fatal(err)
	}
	want := "RelationshipStarted ReminderRequested ReminderDispatched ReminderSubmitted ReminderDelivered"
	if got := strings.Join(r.types(t, number), " "); got != want {
		t.Fatalf("stream = %s\nwant     %s", got, want)
	}
	got, err := r.n.Get(context.Background(), tenant, "r1")
	if err != nil || got.State != StateDelivered {
		t.Fatalf("Get = %+v, %v", got.State, err)
	}
	all, _ := r.store.ReadAll(context.Background(), 1, 0)
	for _, e := range all {
		if !strings.HasPrefix(e.Type, "Reminder") {
			continue // the template's own text is not what was sent
		}
		if strings.Contains(string(e.Data), "到期") || strings.Contains(string(e.Data), number) {
			t.Fatalf("%s stores the text or the number: %s", e.Type, e.Data)
		}
	}
	// A second receipt for the same message is ignored.
	_ = r.n.OnReceipt(context.Background(), Receipt{MessageID: res.MessageIDs[0], Delivered: false, Status: "UNDELIV"})
	if n := len(r.types(t, number)); n != 5 {
		t.Fatalf("duplicate receipt appended: %d events", n)
	}
}

func TestReminderDeniedIsNotSent(t *testing.T) {
	r := newRig(t)
	res, err := r.n.Remind(context.Background(), req("r1"))
	if err != nil {
		t.Fatal(err)
	}
	if res.State != StateDenied || strings.Join(denialRules(res), ",") != "service-basis" {
		t.Fatalf("res = %+v", res)
	}
	if r.sender.count() != 0 {
		t.Fatal("denied reminder was submitted")
	}
	if got := strings.Join(r.types(t, number), " "); got != "ReminderRequested ReminderDenied" {
		t.Fatalf("stream = %s", got)
	}
}

// Invariant 2: an opt-out that lands after the decision read the stream
// makes the dispatch fail; the new decision denies and nothing is sent.
func TestOptOutBetweenDecisionAndDispatch(t *testing.T) {
	r := newRig(t)
	r.relate(t, number)
	var once sync.Once
	r.dec.after = func(Query) {
		once.Do(func() {
			if _, err := r.n.OnInbound(context.Background(), Inbound{From: number, To: line, Text: "TD"}); err != nil {
				t.Error(err)
			}
		})
	}
	res, err := r.n.Remind(context.Background(), req("r1"))
	if err != nil {
		t.Fatal(err)
	}
	if res.State != StateDenied || r.sender.count() != 0 {
		t.Fatalf("state %s, %d submits; want denied and none", res.State, r.sender.count())
	}
	if r.dec.calls.Load() != 2 {
		t.Fatalf("decided %d times, want 2", r.dec.calls.Load())
	}
}

func TestRetriedReminderIsNotResent(t *testing.T) {
	r := newRig(t)
	r.relate(t, number)
	for i := range 3 {
		res, err := r.n.Remind(context.Background(), req("same"))
		if err != nil {
			t.Fatal(err)
		}
		if res.State != StateSubmitted {
			t.Fatalf("try %d: state %s", i, res.State)
		}
	}
	if r.sender.count() != 1 {
		t.Fatalf("submitted %d times, want 1", r.sender.count())
	}
}

func TestSubmitOutcomes(t *testing.T) {
	for _, c := range []struct {
		err    error
		state  string
		last   string
		status string // of the ReminderFailed
	}{
		{fmt.Errorf("smpp: %w: invalid destination", ErrPermanent), StateFailed, ledger.TypeReminderFailed, "refused"},
		{errors.New("smpp: response timeout"), StateUnknown, ledger.TypeReminderOutcomeUnknown, ""},
		{fmt.Errorf("smpp: %w: throttled", ErrNotSent), StateFailed, ledger.TypeReminderFailed, "not_sent"},
		{fmt.Errorf("smpp: %w: no bind", ErrUnavailable), StateFailed, ledger.TypeReminderFailed, "smsc_unavailable"},
	} {
		r := newRig(t)
		r.relate(t, number)
		r.sender.err = c.err
		res, err := r.n.Remind(context.Background(), req("r1"))
		if err != nil {
			t.Fatal(err)
		}
		ts := r.types(t, number)
		if res.State != c.state || ts[len(ts)-1] != c.last {
			t.Errorf("%v: state %s, last %s", c.err, res.State, ts[len(ts)-1])
		}
		if c.status != "" {
			var f ledger.ReminderFailed
			if err := json.Unmarshal(res.Events[len(res.Events)-1].Data, &f); err != nil || f.Status != c.status {
				t.Errorf("%v: failed with status %q (%v), want %q", c.err, f.Status, err, c.status)
			}
		}
		if n := r.sender.count(); n != 1 {
			t.Errorf("%v: submitted %d times, want 1", c.err, n)
		}
	}
}

// Invariant 3: a reminder dispatched when the process died is marked
// outcome-unknown on restart and never submitted again.
func TestRecoverMarksUnsubmittedDispatches(t *testing.T) {
	r := newRig(t)
	r.relate(t, number)
	subject := pseudo(number)
	ev, _ := ledger.NewEvent(tenant, subject, time.Now(), ledger.ReminderDispatched{ReminderID: "lost", ContractRef: "P-1", ContentHash: "sha256:x"})
	if _, err := r.store.Append(context.Background(), ledger.ContactStream(tenant, subject), ledger.Any(), []ledger.Event{ev}); err != nil {
		t.Fatal(err)
	}
	// A submitted reminder still waiting for its receipt.
	ok, err := r.n.Remind(context.Background(), req("waiting"))
	if err != nil {
		t.Fatal(err)
	}

	restarted := New(r.n.cfg)
	marked, err := restarted.Recover(context.Background())
	if err != nil || marked != 1 {
		t.Fatalf("Recover = %d, %v; want 1", marked, err)
	}
	if again, _ := restarted.Recover(context.Background()); again != 0 {
		t.Fatalf("second Recover marked %d again", again)
	}
	got, err := restarted.Get(context.Background(), tenant, "lost")
	if err != nil || got.State != StateUnknown {
		t.Fatalf("lost reminder: %s, %v", got.State, err)
	}
	if r.sender.count() != 1 {
		t.Fatalf("recovery resubmitted: %d submits", r.sender.count())
	}
	// The receipt for the waiting reminder still resolves it after the restart.
	if err := restarted.OnReceipt(context.Background(), Receipt{MessageID: ok.MessageIDs[0], Delivered: true}); err != nil {
		t.Fatal(err)
	}
	if got, _ := restarted.Get(context.Background(), tenant, "waiting"); got.State != StateDelivered {
		t.Fatalf("waiting reminder after receipt: %s", got.State)
	}
}

func TestReceiptBeforeSubmitResponse(t *testing.T) {
	r := newRig(t)
	r.relate(t, number)
	r.sender.onSubmit = func(id string) {
		// Receipts carrying the id in hex arrive before the response is processed.
		var v int
		fmt.Sscan(id, &v)
		_ = r.n.OnReceipt(context.Background(), Receipt{MessageID: fmt.Sprintf("%x", v), Delivered: true})
	}
	if _, err := r.n.Remind(context.Background(), req("r1")); err != nil {
		t.Fatal(err)
	}
	if got, _ := r.n.Get(context.Background(), tenant, "r1"); got.State != StateDelivered {
		t.Fatalf("state %s, want delivered", got.State)
	}
}

// TestInboundKeywords: a keyword reply to a tenant's line withdraws there,
// however the phone wrote it (full width, case, spaces, punctuation); any
// other text is recorded as unmatched, not dropped.
func TestInboundKeywords(t *testing.T) {
	for _, c := range []struct {
		text, to string
		optOut   bool
		reason   string
	}{
		{"TD", line, true, ""}, {" td ", line, true, ""}, {"退订", line, true, ""}, {"Stop.", line, true, ""},
		{"ＴＤ", line, true, ""}, {"ｔｄ", line, true, ""}, {"td。", line, true, ""}, {" 退订 ", line, true, ""},
		{"TD!", line, true, ""}, {"TD！", line, true, ""}, {"【退订】", line, true, ""}, {"\u3000ＳＴＯＰ\u3000", line, true, ""},
		{"T D", line, true, ""}, {"\"td\"", line, true, ""}, {"Td\r\n", line, true, ""},
		{"unsubscribe", line, true, ""}, {"thanks", line, false, ledger.UnmatchedKeyword},
		{"TD", "99999", false, ledger.UnmatchedLine}, {"TD please", line, false, ledger.UnmatchedKeyword},
		{"不要退订", line, false, ledger.UnmatchedKeyword},
	} {
		r := newRig(t)
		res, err := r.n.OnInbound(context.Background(), Inbound{From: number, To: c.to, Text: c.text})
		if err != nil {
			t.Fatal(err)
		}
		if got := len(res.Withdrawals) == 1; got != c.optOut || res.Reason != c.reason {
			t.Errorf("%q to %s: opt-out %v (reason %q), want %v (%q)", c.text, c.to, got, res.Reason, c.optOut, c.reason)
			continue
		}
		if c.optOut {
			ev := res.Withdrawals[0]
			if ev.Tenant != tenant || ev.Subject != pseudo(number) || ev.Stream != ledger.ContactStream(tenant, pseudo(number)) {
				t.Errorf("opt-out recorded as %+v", ev)
			}
		} else if res.Unmatched == nil || res.Unmatched.Stream != ledger.InboundStream(c.to) {
			t.Errorf("%q to %s: not recorded as unmatched: %+v", c.text, c.to, res)
		}
	}
}

func TestConfiguredKeywordsReplaceDefaults(t *testing.T) {
	r := newRig(t)
	cfg := r.n.cfg
	cfg.Keywords = []string{"BASTA"}
	n := New(cfg)
	for text, want := range map[string]bool{"basta": true, "ＢＡＳＴＡ!": true, "TD": false} {
		res, err := n.OnInbound(context.Background(), Inbound{From: number, To: line, Text: text})
		if err != nil || (len(res.Withdrawals) == 1) != want {
			t.Errorf("%q: opt-out %v (%v), want %v", text, len(res.Withdrawals) == 1, err, want)
		}
	}
}

func TestReminderOnAnotherTenantsLineIsRefused(t *testing.T) {
	r := newRig(t)
	r.relate(t, number)
	q := req("r1")
	q.Tenant = "other"
	if _, err := r.n.Remind(context.Background(), q); !errors.Is(err, ErrForeignLine) {
		t.Fatalf("err = %v, want ErrForeignLine", err)
	}
	if r.sender.count() != 0 {
		t.Fatal("sent from another tenant's line")
	}
}

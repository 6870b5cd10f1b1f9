package notify

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/heed/heed/ledger"
)

// wideDecider also reads the subject's and the line's streams, as the real
// projections do, and reports the log head as AsOf.
type wideDecider struct {
	store ledger.Store
	// between, if set, runs once, after the first decision is made and
	// before it is returned: a fact lands between decision and dispatch.
	between func()
	// own, if set, adds a frequency denial: the rule the reminder's own
	// dispatch feeds.
	own    bool
	afters []uint64 // Query.After of each call
}

func (d *wideDecider) Decide(ctx context.Context, q Query) (Decision, error) {
	d.afters = append(d.afters, q.After)
	head, err := d.store.Head(ctx)
	if err != nil {
		return Decision{}, err
	}
	read := func(s string) []ledger.Event {
		evs, err := d.store.ReadStream(ctx, s, 1, 0)
		if err != nil && !errors.Is(err, ledger.ErrNotFound) {
			panic(err)
		}
		return evs
	}
	contact := read(ledger.ContactStream(q.Tenant, q.Subject))
	dec := Decision{Allowed: true, RulesVersion: "test", AsOf: head, Revision: uint64(len(contact)),
		Reasons: []ledger.Reason{{Rule: "service-basis", Effect: "allow"}}}
	deny := func(rule string) {
		dec.Allowed = false
		dec.Reasons = append(dec.Reasons, ledger.Reason{Rule: rule, Effect: "deny"})
	}
	for _, e := range read(ledger.SubjectStream(q.Subject)) {
		if e.Type == ledger.TypeSuppressionListed {
			deny("suppression")
		}
	}
	suspended := false
	for _, e := range read(ledger.LineStream(q.Tenant, q.Line)) {
		suspended = e.Type == ledger.TypeLineSuspended
	}
	if suspended {
		deny("line-suspended")
	}
	if d.own && q.After > 0 {
		deny("frequency")
	}
	if f := d.between; f != nil {
		d.between = nil
		f()
	}
	return dec, nil
}

// TestFactElsewhereBetweenDecisionAndDispatch: a fact in the subject's or
// the line's stream appended after the decision passes the dispatch's
// revision check, so the reminder must be decided again before it is sent.
func TestFactElsewhereBetweenDecisionAndDispatch(t *testing.T) {
	tests := []struct {
		name    string
		stream  string
		payload any
		own     bool
		sent    bool
		rule    string
	}{
		{"line suspended", ledger.LineStream(tenant, line), ledger.LineSuspended{Line: line, Rule: "complaint-rate"}, false, false, "line-suspended"},
		{"global suppression", ledger.SubjectStream(pseudo(number)), ledger.SuppressionListed{Scope: "global", List: "dnc"}, false, false, "suppression"},
		{"line reinstated", ledger.LineStream(tenant, line), ledger.LineReinstated{Line: line}, false, true, ""},
		{"only own contact counted", ledger.LineStream(tenant, line), ledger.LineReinstated{Line: line}, true, true, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t)
			var logs bytes.Buffer
			dec := &wideDecider{store: r.store, own: tc.own}
			r.n.cfg.Decider = dec
			r.n.cfg.Log = slog.New(slog.NewTextHandler(&logs, nil))
			r.relate(t, number)
			ctx := context.Background()
			dec.between = func() {
				e, err := ledger.NewEvent(tenant, "", time.Now(), tc.payload)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := r.store.Append(ctx, tc.stream, ledger.Any(), []ledger.Event{e}); err != nil {
					t.Fatal(err)
				}
			}
			res, err := r.n.Remind(ctx, req(""))
			if err != nil {
				t.Fatal(err)
			}
			if got := r.sender.count() == 1; got != tc.sent {
				t.Fatalf("sent = %v, want %v (state %s)", got, tc.sent, res.State)
			}
			if len(dec.afters) != 2 || dec.afters[1] == 0 {
				t.Fatalf("decisions with After %v, want a second one as of the dispatch", dec.afters)
			}
			types := r.types(t, number)
			if tc.sent {
				if res.State != StateSubmitted || types[len(types)-1] != ledger.TypeReminderSubmitted {
					t.Fatalf("state %s, events %v; want submitted", res.State, types)
				}
				return
			}
			want := []string{ledger.TypeRelationshipStarted, ledger.TypeReminderRequested, ledger.TypeReminderDispatched, ledger.TypeReminderDenied}
			if !slices.Equal(types, want) {
				t.Fatalf("events %v, want %v", types, want)
			}
			if res.State != StateDenied || !slices.ContainsFunc(res.Reasons, func(x ledger.Reason) bool { return x.Rule == tc.rule }) {
				t.Fatalf("result %s %v, want denied by %s", res.State, res.Reasons, tc.rule)
			}
			if !strings.Contains(logs.String(), "cancelled before submit") || !strings.Contains(logs.String(), "rules="+tc.rule) {
				t.Fatalf("log does not say why: %s", logs.String())
			}
			if strings.Contains(logs.String(), strings.TrimPrefix(number, "+")) {
				t.Fatal("log holds the phone number")
			}
			// A retry of the same id reports the denial, not a dispatch.
			again, err := r.n.Remind(ctx, req(res.ReminderID))
			if err != nil || again.State != StateDenied || r.sender.count() != 0 {
				t.Fatalf("retry: %s %v, %d sent", again.State, err, r.sender.count())
			}
		})
	}
}

// TestNoRecheckWhenNothingElseMoved: with the subject's and the line's
// streams untouched since the decision, the reminder is decided once.
func TestNoRecheckWhenNothingElseMoved(t *testing.T) {
	r := newRig(t)
	dec := &wideDecider{store: r.store}
	r.n.cfg.Decider = dec
	r.relate(t, number)
	e, err := ledger.NewEvent(tenant, "", time.Now(), ledger.LineReinstated{Line: line})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.store.Append(context.Background(), ledger.LineStream(tenant, line), ledger.Any(), []ledger.Event{e}); err != nil {
		t.Fatal(err)
	}
	res, err := r.n.Remind(context.Background(), req(""))
	if err != nil || res.State != StateSubmitted {
		t.Fatalf("%s %v", res.State, err)
	}
	if len(dec.afters) != 1 {
		t.Fatalf("%d decisions, want 1", len(dec.afters))
	}
}

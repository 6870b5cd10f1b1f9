package notify

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/heed/heed/ledger"
)

// Attempt is one outbound call a PBX or SBC asks the call gate about.
type Attempt struct {
	Tenant  string
	Actor   string // who asked, e.g. "sip:<trunk>"
	Number  string // E.164 of the callee; never stored
	Subject string
	Line    string // the calling line
	Purpose string
	Region  string // the callee's region, for the region-burst rule
	Trunk   string
	CallID  string
	// Key identifies the INVITE transaction (Call-ID, CSeq, branch): the
	// events of one transaction get ids derived from it, so a retransmission
	// that reaches the gate again cannot record a second attempt.
	Key string
}

// Verdict is the call gate's answer to an Attempt.
type Verdict struct {
	Allowed      bool
	Reasons      []ledger.Reason
	RulesVersion string
	// Event is what was recorded: a ContactMade for an allowed call, a
	// CallRefused for a refused one.
	Event ledger.Event
	// Replayed is set when the transaction had been decided and recorded
	// already; Reasons are then those of the recorded event.
	Replayed bool
}

// Call decides an outbound call attempt, records it, and, for an allowed
// call, runs answer (which sends the redirect to the carrier) while no
// opt-out for the callee can be acknowledged: an opt-out acknowledged
// before the attempt's record makes it fail and the call is decided again;
// one that comes later waits until answer has returned. A refused call is
// recorded and answer is not run; the caller sends the refusal.
//
// Attempts are recorded as ContactMade with channel call, so they count
// for caps, region bursts and complaint rates exactly as reported contacts.
func (n *Notifier) Call(ctx context.Context, a Attempt, answer func(Verdict) error) (Verdict, error) {
	stream := ledger.ContactStream(a.Tenant, a.Subject)
	q := Query{Tenant: a.Tenant, Subject: a.Subject, Number: a.Number, Channel: ledger.ChannelCall,
		Purpose: a.Purpose, Line: a.Line}
	for attempt := 0; ; attempt++ {
		if attempt == 200 {
			return Verdict{}, ErrContended
		}
		d, err := n.cfg.Decider.Decide(ctx, q)
		if err != nil {
			return Verdict{}, fmt.Errorf("notify: decide: %w", err)
		}
		if !d.Allowed {
			return n.refuse(ctx, a, d, "")
		}
		ev, err := ledger.NewEvent(a.Tenant, a.Subject, n.cfg.Now().UTC(), ledger.ContactMade{
			Line: a.Line, Channel: ledger.ChannelCall, Purpose: a.Purpose, Outcome: "routed",
			Region: a.Region, CallID: a.CallID, Trunk: a.Trunk,
		})
		if err != nil {
			return Verdict{}, err
		}
		ev.Actor = a.Actor
		ev.ID = callEventID(a, ledger.TypeContactMade)
		g := n.gate.of(a.Subject)
		g.RLock()
		stored, err := n.cfg.Store.Append(ctx, stream, ledger.Exact(d.Revision), []ledger.Event{ev})
		if errors.Is(err, ledger.ErrWrongRevision) {
			g.RUnlock()
			if err := sleep(ctx, time.Duration(min(attempt, 20))*time.Millisecond); err != nil {
				return Verdict{}, err
			}
			continue
		}
		if errors.Is(err, ledger.ErrIDConflict) {
			// Decided before: answer as then.
			v, err := n.recorded(ctx, a)
			if err == nil && v.Allowed {
				err = answer(v)
			}
			g.RUnlock()
			return v, err
		}
		if err != nil {
			g.RUnlock()
			return Verdict{}, fmt.Errorf("notify: record call: %w", err)
		}
		v := Verdict{Allowed: true, Reasons: d.Reasons, RulesVersion: d.RulesVersion, Event: stored[0]}
		// Facts outside the contact stream (a global suppression, an
		// erasure, a line suspension) are not fenced by its revision.
		denied, err := n.recheck(ctx, q, d.AsOf, stored[0].Position)
		if err == nil && denied == nil {
			err = answer(v)
			g.RUnlock()
			return v, err
		}
		g.RUnlock()
		if err != nil {
			// Unsure whether the call is still allowed: refuse it, and say
			// so on the record.
			return Verdict{}, fmt.Errorf("notify: check before answer: %w", err)
		}
		return n.refuse(ctx, a, *denied, stored[0].ID)
	}
}

// refuse records a refused attempt.
func (n *Notifier) refuse(ctx context.Context, a Attempt, d Decision, overturns string) (Verdict, error) {
	ev, err := ledger.NewEvent(a.Tenant, a.Subject, n.cfg.Now().UTC(), ledger.CallRefused{
		Line: a.Line, Purpose: a.Purpose, CallID: a.CallID, Trunk: a.Trunk, Reasons: d.Reasons,
		RulesVersion: d.RulesVersion, AsOf: d.AsOf, Contact: overturns,
	})
	if err != nil {
		return Verdict{}, err
	}
	ev.Actor = a.Actor
	ev.ID = callEventID(a, ledger.TypeCallRefused)
	stored, err := n.cfg.Store.Append(ctx, ledger.ContactStream(a.Tenant, a.Subject), ledger.Any(), []ledger.Event{ev})
	if errors.Is(err, ledger.ErrIDConflict) {
		return n.recorded(ctx, a)
	}
	if err != nil {
		return Verdict{}, fmt.Errorf("notify: record refused call: %w", err)
	}
	return Verdict{Reasons: d.Reasons, RulesVersion: d.RulesVersion, Event: stored[0]}, nil
}

// recorded answers a transaction decided before from what was recorded
// for it: the refusal if there is one, else the contact.
func (n *Notifier) recorded(ctx context.Context, a Attempt) (Verdict, error) {
	evs, err := n.cfg.Store.ReadStream(ctx, ledger.ContactStream(a.Tenant, a.Subject), 1, 0)
	if err != nil {
		return Verdict{}, fmt.Errorf("notify: read recorded call: %w", err)
	}
	refused, contact := callEventID(a, ledger.TypeCallRefused), callEventID(a, ledger.TypeContactMade)
	var v Verdict
	found := false
	for _, e := range evs {
		switch e.ID {
		case refused:
			p, err := ledger.Decode(&e)
			if err != nil {
				return Verdict{}, err
			}
			r := p.(*ledger.CallRefused)
			return Verdict{Reasons: r.Reasons, RulesVersion: r.RulesVersion, Event: e, Replayed: true}, nil
		case contact:
			v, found = Verdict{Allowed: true, Event: e, Replayed: true}, true
		}
	}
	if !found {
		return Verdict{}, fmt.Errorf("notify: call %s: %w", a.Key, ledger.ErrIDConflict)
	}
	return v, nil
}

var callSpace = uuid.MustParse("a4f1c2e8-7b3d-4c59-8e16-0f2d9b7c3a54")

func callEventID(a Attempt, typ string) string {
	return uuid.NewSHA1(callSpace, []byte(a.Tenant+"\x00"+a.Trunk+"\x00"+a.Key+"\x00"+typ)).String()
}

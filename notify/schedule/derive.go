package schedule

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/heed/heed/ledger"
	"github.com/heed/heed/ledger/pii"
)

// planVersion is one version of a tenant's plan, as the index knows it.
type planVersion struct {
	Tenant string                     `json:"tenant"`
	Def    ledger.ReminderPlanDefined `json:"def"`
	// At is when heed recorded the version: offsets due before it (and
	// before the relationship was recorded) are missed, not sent late.
	At  time.Time `json:"at"`
	idx uint32
	w   window
}

// Actor is the actor of the events the scheduler appends.
const Actor = "heed:schedule"

// retryable reports whether a planned reminder that failed with status
// may be tried again under its plan's retry: not when the SMSC refused it
// for good, and never when its outcome is unknown (it may have been
// delivered).
func retryable(status string) bool {
	switch status {
	case "", "refused", "REJECTD":
		return false
	}
	return true
}

// unsent reports whether a failure status says the reminder certainly
// never reached an SMSC: it is tried again whatever the plan says, as
// nothing was sent.
func unsent(status string) bool { return status == "not_sent" || status == "smsc_unavailable" }

// unsentWait is how long after its n-th unsent attempt a reminder is
// tried again.
func unsentWait(n int) time.Duration { return time.Minute << (2 * (n - 1)) }

// derive returns the events that bring v's timers in line with its
// relationships, the plans' latest versions and the facts that cancel
// them. It is a function of the stream and the plans, so deriving again
// after a crash yields events with the same ids and content, which the
// store takes as no-ops.
func (s *Scheduler) derive(ctx context.Context, v *View) ([]ledger.Event, error) {
	var out []ledger.Event
	add := func(at time.Time, payload any, id string) error {
		e, err := ledger.NewEvent(v.Tenant, v.Subject, at, payload)
		if err != nil {
			return err
		}
		e.ID, e.Actor = id, Actor
		out = append(out, e)
		return nil
	}
	cancel := func(t *Timer, reason, cause string, at time.Time) error {
		return add(at, &ledger.ReminderCancelled{ReminderID: t.ReminderID, Reason: reason, Event: cause},
			eventID(v.Tenant, t.ReminderID, "cancelled"))
	}
	blocked, blockedBy := v.blocker()
	// locs is each relationship's time zones, from its sealed number;
	// an erased one has none.
	type where struct {
		locs   []*time.Location
		erased bool
	}
	places := map[string]where{}
	place := func(r *Relationship) (where, error) {
		if w, ok := places[r.ContractRef]; ok {
			return w, nil
		}
		var w where
		if v.erased > r.Started.Position {
			w.erased = true
		} else {
			_, locs, err := s.numberOf(ctx, v, r)
			switch {
			case errors.Is(err, pii.ErrErased) || errors.Is(err, errNoNumber):
				w.erased = true
			case err != nil:
				return w, err
			}
			w.locs = locs
		}
		places[r.ContractRef] = w
		return w, nil
	}

	// Timers that must not fire any more.
	for _, id := range v.Order {
		t := v.Timers[id]
		if !t.Pending() {
			continue
		}
		r := v.Relationships[t.Scheduled.ContractRef]
		reason, cause, at := "", "", time.Time{}
		switch {
		case r == nil:
			reason = ledger.CancelEnded
		case v.erased > r.Started.Position:
			reason, cause = ledger.CancelErased, v.erasedID
		case blocked != "":
			reason, cause = blocked, blockedBy
		case r.Ended != "":
			reason, cause = ledger.CancelEnded, r.Ended
		case !r.ExpiresAt.Equal(t.Scheduled.ExpiresAt):
			reason, cause = ledger.CancelRenewed, r.Renewed
			if cause == "" {
				cause = r.Started.ID
			}
		case r.Plan != t.Scheduled.PlanID:
			reason, cause = ledger.CancelPlanChanged, r.Started.ID
		default:
			pv := s.latest(v.Tenant, r.Plan)
			if pv == nil {
				reason = ledger.CancelPlanChanged
			} else if t.Scheduled.Retry == 0 && !slices.Contains(pv.Def.Offsets, t.Scheduled.Offset) {
				reason, at = ledger.CancelPlanChanged, pv.At
			}
		}
		if reason == "" {
			w, err := place(r)
			if err != nil {
				return nil, err
			}
			if w.erased {
				reason, cause = ledger.CancelErased, v.erasedID
			}
		}
		if reason == "" {
			continue
		}
		if at.IsZero() {
			at = s.causeTime(v, cause, t)
		}
		if err := cancel(t, reason, cause, at); err != nil {
			return nil, err
		}
	}
	if blocked != "" {
		return out, nil
	}

	// Timers each relationship's plan wants.
	for _, ref := range slices.Sorted(maps.Keys(v.Relationships)) {
		r := v.Relationships[ref]
		if r.Plan == "" || r.ExpiresAt.IsZero() || r.Ended != "" {
			continue
		}
		pv := s.latest(v.Tenant, r.Plan)
		if pv == nil {
			continue
		}
		w, err := place(r)
		if err != nil {
			return nil, err
		}
		if w.erased {
			continue
		}
		from := r.DefinedAt
		if pv.At.After(from) {
			from = pv.At
		}
		fired := false
		for _, t := range v.Timers {
			if t.Scheduled.ContractRef == ref && t.Scheduled.ExpiresAt.Equal(r.ExpiresAt) && t.State != "" {
				fired = true
			}
		}
		want := func(offset string, due time.Time, occurred time.Time, retry int, id string) error {
			t := v.Timers[id]
			if t != nil && (!t.Pending() || (t.Scheduled.PlanVersion == pv.Def.Version && t.Scheduled.DueAt.Equal(due))) {
				return nil
			}
			return add(occurred, &ledger.ReminderScheduled{ReminderID: id, ContractRef: ref, PlanID: r.Plan,
				PlanVersion: pv.Def.Version, Offset: offset, ExpiresAt: r.ExpiresAt, DueAt: due, Retry: retry},
				eventID(v.Tenant, id, "scheduled", pv.Def.Version, due.Unix()))
		}
		var missed string
		for _, o := range offsets(&pv.Def) {
			id := ReminderID(v.Tenant, v.Subject, ref, r.ExpiresAt, o)
			due, err := pv.w.due(r.ExpiresAt, o, w.locs)
			if err != nil {
				return nil, err
			}
			if due.Before(from) {
				if missed != "" {
					// Only the missed offset nearest the expiry is sent.
					if t := v.Timers[ReminderID(v.Tenant, v.Subject, ref, r.ExpiresAt, missed)]; t != nil && t.Pending() {
						if err := cancel(t, ledger.CancelPlanChanged, "", from); err != nil {
							return nil, err
						}
					}
				}
				missed = o
				continue
			}
			if err := want(o, due, from, 0, id); err != nil {
				return nil, err
			}
		}
		if missed != "" {
			// Offsets already past when the relationship (or the plan's
			// version) was recorded: the one nearest the expiry is sent
			// at the first opening of the window, unless a reminder of
			// this expiry went already or the expiry is past.
			id := ReminderID(v.Tenant, v.Subject, ref, r.ExpiresAt, missed)
			due := pv.w.next(from, w.locs)
			t := v.Timers[id]
			switch {
			case !fired && due.Before(r.ExpiresAt):
				if err := want(missed, due, from, 0, id); err != nil {
					return nil, err
				}
			case t != nil && t.Pending():
				if err := cancel(t, ledger.CancelPlanChanged, "", from); err != nil {
					return nil, err
				}
			}
		}
		// Retries of planned reminders that failed: as the plan says after
		// a failed delivery, and always when nothing left.
		for _, id := range v.Order {
			t := v.Timers[id]
			n := t.Scheduled.Retry + 1
			if t.Scheduled.ContractRef != ref || !t.Scheduled.ExpiresAt.Equal(r.ExpiresAt) || t.State != "failed" || n > ledger.MaxRetries {
				continue
			}
			var after time.Duration
			switch {
			case unsent(t.Failure):
				after = unsentWait(n)
			case pv.Def.Retry != nil && retryable(t.Failure) && n <= pv.Def.Retry.Attempts:
				if after, err = ledger.ParseRetryAfter(pv.Def.Retry.After); err != nil {
					return nil, err
				}
			default:
				continue
			}
			base := ReminderID(v.Tenant, v.Subject, ref, r.ExpiresAt, t.Scheduled.Offset)
			next := retryID(base, n)
			if v.Timers[next] != nil {
				continue
			}
			due := pv.w.next(t.FailedAt.Add(after), w.locs)
			if err := want(t.Scheduled.Offset, due, t.FailedAt, n, next); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// causeTime is the time a cancellation is dated: when heed recorded the
// event that caused it, so that deriving it again dates it the same.
func (s *Scheduler) causeTime(v *View, cause string, t *Timer) time.Time {
	if at, ok := v.recorded[cause]; ok {
		return at
	}
	return t.Scheduled.DueAt
}

var errNoNumber = errors.New("schedule: the relationship carries no number")

// opened is a relationship's number once opened, or why it could not be.
type opened struct {
	number string
	locs   []*time.Location
	err    error
}

// numberOf is number for a relationship of v, opened once per View.
func (s *Scheduler) numberOf(ctx context.Context, v *View, r *Relationship) (string, []*time.Location, error) {
	if o, ok := v.numbers[r.ContractRef]; ok {
		return o.number, o.locs, o.err
	}
	n, locs, err := s.number(ctx, &r.Started)
	if ctx.Err() == nil {
		if v.numbers == nil {
			v.numbers = map[string]opened{}
		}
		v.numbers[r.ContractRef] = opened{n, locs, err}
	}
	return n, locs, err
}

// number opens the number sealed in a RelationshipStarted event and
// returns it with its time zones.
func (s *Scheduler) number(ctx context.Context, e *ledger.Event) (string, []*time.Location, error) {
	if len(e.PII) == 0 || s.cfg.Keys == nil {
		return "", nil, errNoNumber
	}
	fields, err := s.cfg.Keys.OpenEvent(ctx, e)
	if err != nil {
		return "", nil, err
	}
	n := fields["number"]
	if n == "" {
		return "", nil, errNoNumber
	}
	locs, err := s.cfg.Rules.Zones(n)
	if err != nil {
		return "", nil, fmt.Errorf("schedule: the relationship's number: %w", err)
	}
	return n, locs, nil
}

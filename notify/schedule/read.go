package schedule

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/heed/heed/ledger"
	"github.com/heed/heed/notify"
	"github.com/heed/heed/notify/template"
)

// Sentinel errors of the reading and cancelling helpers.
var (
	// ErrNoTimer means no planned reminder of that id for that contract.
	ErrNoTimer = errors.New("schedule: no such planned reminder")
	// ErrNotPending means the planned reminder fired or was cancelled.
	ErrNotPending = errors.New("schedule: the planned reminder has fired or was cancelled")
	// ErrPlan means a plan does not fit its template.
	ErrPlan = errors.New("schedule: plan does not fit its template")
)

// PlanVersion is one recorded version of a plan.
type PlanVersion struct {
	ledger.ReminderPlanDefined
	DefinedAt time.Time
	DefinedBy string
	Event     string
}

// ReadPlan reads a tenant's plan: its versions in order and the revision
// of its stream (0 for a plan never defined).
func ReadPlan(ctx context.Context, st ledger.Store, tenant, id string) ([]PlanVersion, uint64, error) {
	evs, err := st.ReadStream(ctx, ledger.PlanStream(tenant, id), 1, 0)
	if errors.Is(err, ledger.ErrNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("schedule: read plan: %w", err)
	}
	var out []PlanVersion
	var rev uint64
	for i := range evs {
		e := &evs[i]
		rev = e.Revision
		var p ledger.ReminderPlanDefined
		if e.Tenant != tenant || e.Type != ledger.TypeReminderPlanDefined || decode(e, &p) != nil {
			continue
		}
		out = append(out, PlanVersion{ReminderPlanDefined: p, DefinedAt: e.RecordedAt, DefinedBy: e.Actor, Event: e.ID})
	}
	return out, rev, nil
}

// CheckPlan checks a plan against its tenant's template: the version
// must exist and not be rejected or revoked (one awaiting review may be
// approved before the first reminder is due), and every parameter of the
// template must be filled from a relationship field of a fitting type.
func CheckPlan(ctx context.Context, st ledger.Store, tenant string, p *ledger.ReminderPlanDefined) error {
	vs, _, err := notify.ReadTemplate(ctx, st, tenant, p.TemplateID)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(vs, func(v notify.Version) bool { return v.Version == p.TemplateVersion })
	if i < 0 {
		return fmt.Errorf("%w: this business has no version %d of a template %q", ErrPlan, p.TemplateVersion, p.TemplateID)
	}
	v := vs[i]
	if v.State == notify.TemplateRejected || v.State == notify.TemplateRevoked {
		return fmt.Errorf("%w: version %d of template %q is %s", ErrPlan, v.Version, v.ID, v.State)
	}
	t, err := template.Parse(v.Signature, v.Text)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrPlan, err)
	}
	for _, prm := range t.Params {
		src, ok := p.Params[prm.Name]
		if !ok {
			return fmt.Errorf("%w: the template's parameter %s is not filled: map it to one of product, contract_ref, expires_at, starts_at", ErrPlan, prm.Name)
		}
		date := src == ledger.SourceExpiresAt || src == ledger.SourceStartsAt
		if date != (prm.Type == template.Date) || prm.Type == template.Money || prm.Type == template.Number {
			return fmt.Errorf("%w: the template's parameter %s is of type %s, which %s does not fill", ErrPlan, prm.Name, prm.Type, src)
		}
	}
	for name := range p.Params {
		if !slices.ContainsFunc(t.Params, func(x template.Param) bool { return x.Name == name }) {
			return fmt.Errorf("%w: the template has no parameter %s", ErrPlan, name)
		}
	}
	return nil
}

// Statuses of a planned reminder, as the API shows them.
const (
	StatusUpcoming  = "upcoming"
	StatusDeferred  = "deferred"
	StatusSent      = "sent"
	StatusCancelled = "cancelled"
)

// Reminder is a planned reminder as a business or its customer sees it.
type Reminder struct {
	ReminderID  string    `json:"reminder_id"`
	ContractRef string    `json:"contract_ref"`
	PlanID      string    `json:"plan_id"`
	PlanVersion int       `json:"plan_version"`
	Offset      string    `json:"offset" doc:"how long before the expiry it is planned"`
	Retry       int       `json:"retry,omitempty" doc:"the attempt it retries, after a failed one"`
	ExpiresAt   time.Time `json:"expires_at"`
	DueAt       time.Time `json:"due_at" doc:"when it falls due: as planned, or as last deferred"`
	Status      string    `json:"status" enum:"upcoming,deferred,sent,cancelled"`
	// State is the reminder's state once fired (denied, submitted,
	// delivered, failed, outcome_unknown).
	State        string                    `json:"state,omitempty" doc:"once sent: the reminder's state (GET /v1/reminders/{reminder_id})"`
	FiredAt      *time.Time                `json:"fired_at,omitempty"`
	Deferrals    []ledger.ReminderDeferred `json:"deferrals"`
	CancelReason string                    `json:"cancel_reason,omitempty"`
	CancelledAt  *time.Time                `json:"cancelled_at,omitempty"`
}

// Reminders lists the planned reminders of a contract ("" for all), in
// the order they were first planned.
func (v *View) Reminders(contract string) []Reminder {
	out := []Reminder{}
	for _, id := range v.Order {
		t := v.Timers[id]
		if contract != "" && t.Scheduled.ContractRef != contract {
			continue
		}
		r := Reminder{ReminderID: id, ContractRef: t.Scheduled.ContractRef, PlanID: t.Scheduled.PlanID,
			PlanVersion: t.Scheduled.PlanVersion, Offset: t.Scheduled.Offset, Retry: t.Scheduled.Retry,
			ExpiresAt: t.Scheduled.ExpiresAt, DueAt: t.DueAt, Status: StatusUpcoming, State: t.State,
			Deferrals: append([]ledger.ReminderDeferred{}, t.Deferrals...)}
		switch {
		case t.Cancelled != nil:
			at := t.CancelledAt
			r.Status, r.CancelReason, r.CancelledAt = StatusCancelled, t.Cancelled.Reason, &at
		case t.State != "":
			at := t.FiredAt
			r.Status, r.FiredAt = StatusSent, &at
		case len(t.Deferrals) > 0:
			r.Status = StatusDeferred
		}
		out = append(out, r)
	}
	return out
}

// Cancel cancels one pending planned reminder of a contract at a
// business's request; it fails with ErrNoTimer or ErrNotPending.
func Cancel(ctx context.Context, st ledger.Store, tenant, subject, contract, id, actor string, at time.Time) (ledger.Event, error) {
	for range 20 {
		v, err := Read(ctx, st, tenant, subject)
		if err != nil {
			return ledger.Event{}, err
		}
		t := v.Timers[id]
		if t == nil || t.Scheduled.ContractRef != contract {
			return ledger.Event{}, ErrNoTimer
		}
		if !t.Pending() {
			return ledger.Event{}, ErrNotPending
		}
		e, err := ledger.NewEvent(tenant, subject, at, &ledger.ReminderCancelled{ReminderID: id, Reason: ledger.CancelByBusiness})
		if err != nil {
			return ledger.Event{}, err
		}
		e.ID, e.Actor = eventID(tenant, id, "cancelled"), actor
		out, err := st.Append(ctx, ledger.ContactStream(tenant, subject), ledger.Exact(v.Revision), []ledger.Event{e})
		if errors.Is(err, ledger.ErrWrongRevision) {
			continue
		}
		if err != nil {
			return ledger.Event{}, err
		}
		return out[0], nil
	}
	return ledger.Event{}, fmt.Errorf("schedule: %w", notify.ErrContended)
}

// Queued is a pending planned reminder in a business's queue.
type Queued struct {
	ReminderID  string    `json:"reminder_id"`
	ContractRef string    `json:"contract_ref"`
	PlanID      string    `json:"plan_id"`
	Offset      string    `json:"offset"`
	DueAt       time.Time `json:"due_at"`
	Deferred    bool      `json:"deferred" doc:"due as deferred, not as planned"`
}

// Queue returns a tenant's pending timers due in [from, to): how many,
// and the first limit of them by due time. It scans the index; only
// those it returns are read from the log.
func (s *Scheduler) Queue(ctx context.Context, tenant string, from, to time.Time, limit int) ([]Queued, int, error) {
	lo, hi := sec(from), sec(to)
	type hit struct {
		due uint32
		pos uint64
	}
	var hits []hit
	s.mu.Lock()
	total := 0
	s.idx.each(func(t slot) {
		if t.due < lo || t.due >= hi || t.plan == noPlan || int(t.plan) >= len(s.plans) || s.plans[t.plan].Tenant != tenant {
			return
		}
		total++
		hits = append(hits, hit{t.due, t.pos})
	})
	s.mu.Unlock()
	slices.SortFunc(hits, func(a, b hit) int { return int(int64(a.due) - int64(b.due)) })
	if len(hits) > limit {
		hits = hits[:limit]
	}
	out := make([]Queued, 0, len(hits))
	for _, h := range hits {
		e, err := s.eventAt(ctx, h.pos)
		if err != nil {
			return nil, 0, err
		}
		q := Queued{DueAt: instant(h.due), Deferred: e.Type == ledger.TypeReminderDeferred, ReminderID: reminderIDOf(e.Data)}
		var p ledger.ReminderScheduled
		if !q.Deferred && decode(&e, &p) == nil {
			q.ContractRef, q.PlanID, q.Offset = p.ContractRef, p.PlanID, p.Offset
		} else if v, err := Read(ctx, s.cfg.Store, e.Tenant, e.Subject); err == nil && v.Timers[q.ReminderID] != nil {
			sc := v.Timers[q.ReminderID].Scheduled
			q.ContractRef, q.PlanID, q.Offset = sc.ContractRef, sc.PlanID, sc.Offset
		}
		out = append(out, q)
	}
	return out, total, nil
}

// Days counts a tenant's pending timers due on each of days local days
// from the one holding from, in loc.
func (s *Scheduler) Days(tenant string, from time.Time, days int, loc *time.Location) []int {
	y, m, d := from.In(loc).Date()
	edges := make([]uint32, days+1)
	for i := range edges {
		edges[i] = sec(time.Date(y, m, d+i, 0, 0, 0, 0, loc))
	}
	out := make([]int, days)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.idx.each(func(t slot) {
		if t.due < edges[0] || t.due >= edges[days] || t.plan == noPlan || int(t.plan) >= len(s.plans) || s.plans[t.plan].Tenant != tenant {
			return
		}
		i, _ := slices.BinarySearch(edges, t.due+1)
		out[i-1]++
	})
	return out
}

// Preview renders what a planned reminder will say to number under its
// plan's latest version, as the customer will read it.
func (s *Scheduler) Preview(ctx context.Context, v *View, t *Timer, number string) (string, error) {
	r := v.Relationships[t.Scheduled.ContractRef]
	pv := s.latest(v.Tenant, t.Scheduled.PlanID)
	if r == nil || pv == nil {
		return "", ErrNoTimer
	}
	locs, err := s.cfg.Rules.Zones(number)
	if err != nil {
		return "", err
	}
	vs, _, err := notify.ReadTemplate(ctx, s.cfg.Store, v.Tenant, pv.Def.TemplateID)
	if err != nil {
		return "", err
	}
	i := slices.IndexFunc(vs, func(x notify.Version) bool { return x.Version == pv.Def.TemplateVersion })
	if i < 0 {
		return "", fmt.Errorf("%w: template version gone", ErrPlan)
	}
	tpl, err := template.Parse(vs[i].Signature, vs[i].Text)
	if err != nil {
		return "", err
	}
	return tpl.Render(params(&pv.Def, r, locs[0]))
}

// params fills a plan's template parameters from a relationship, dates
// in loc.
func params(p *ledger.ReminderPlanDefined, r *Relationship, loc *time.Location) map[string]string {
	out := map[string]string{}
	for name, src := range p.Params {
		switch src {
		case ledger.SourceProduct:
			out[name] = r.Product
		case ledger.SourceContractRef:
			out[name] = r.ContractRef
		case ledger.SourceExpiresAt:
			out[name] = date(r.ExpiresAt, loc)
		case ledger.SourceStartsAt:
			out[name] = date(r.StartsAt, loc)
		}
	}
	return out
}

package projections

import "context"

// LineState is what the projection knows of one tenant's line: its figures
// over the rules' window now, and whether it is refused and why.
type LineState struct {
	Tenant string `json:"tenant"`
	Line   string `json:"line"`
	// Contacts and Complaints are counted over the last WindowDays days,
	// each when heed recorded it; Rate is Complaints/Contacts.
	Contacts   int     `json:"contacts"`
	Complaints int     `json:"complaints"`
	Rate       float64 `json:"rate"`
	WindowDays int     `json:"window_days"`
	// Threshold and MinContacts are the rules' numbers: a line with at
	// least MinContacts contacts and a rate at or above Threshold is
	// suspended.
	Threshold   float64 `json:"threshold"`
	MinContacts int     `json:"min_contacts"`
	// Suspended is true from the event that took the line over the
	// threshold until an admin reinstates it; Recorded once the
	// LineSuspended event is in the log.
	Suspended bool `json:"suspended"`
	Recorded  bool `json:"recorded,omitempty"`
	// Reason explains the suspension with the figures that caused it.
	Reason *Reason `json:"reason,omitempty"`
	// AsOf is the log position the state reflects.
	AsOf uint64 `json:"as_of"`
}

// Line returns the state of tenant's line once the projection has caught
// up with the log's head. A line the log never mentioned has zero figures.
func (r *Runner) Line(ctx context.Context, tenant, name string) (LineState, error) {
	head, err := r.store.Head(ctx)
	if err != nil {
		return LineState{}, err
	}
	if err := r.WaitFor(ctx, head); err != nil {
		return LineState{}, err
	}
	now := r.opt.Now()
	cfg := r.cfg.LineSuspension
	out := LineState{Tenant: tenant, Line: name, WindowDays: cfg.WindowDays, Threshold: cfg.Rate, MinContacts: cfg.MinContacts}
	known := map[uint64]string{}
	var d Decision
	r.mu.RLock()
	out.AsOf = r.st.pos
	if r.st.recorded.After(now) {
		now = r.st.recorded
	}
	if l := r.st.lines[tenant][name]; l != nil {
		contacts, complaints := l.figures(minute(now) / 1440)
		out.Contacts, out.Complaints = int(contacts), int(complaints)
		if contacts > 0 {
			out.Rate = float64(complaints) / float64(contacts)
		}
		out.Suspended = l.Suspended || (l.Over.Known != 0 && l.Over.Known <= seconds(now))
		out.Recorded = l.Suspended
		if out.Suspended {
			e := eval{s: r.st, cfg: r.cfg, q: Query{Line: name}, l: l, at: now.UTC()}
			e.suspended()
			d.Reasons = e.out
		}
	}
	r.mu.RUnlock()
	if len(d.Reasons) > 0 {
		if err := resolve(ctx, r.store, &d, known); err != nil {
			return LineState{}, err
		}
		out.Reason = &d.Reasons[0]
	}
	return out, nil
}

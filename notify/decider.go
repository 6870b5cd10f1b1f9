package notify

import (
	"context"

	"github.com/heed/heed/projections"
)

// Projections puts the eligibility projections behind a Decider.
func Projections(r *projections.Runner) Decider { return runner{r} }

type runner struct{ r *projections.Runner }

func (p runner) Decide(ctx context.Context, q Query) (Decision, error) {
	pq := projections.Query{Tenant: q.Tenant, Subject: q.Subject, Number: q.Number,
		Channel: q.Channel, Purpose: q.Purpose, Line: q.Line, At: q.At, Contract: q.Contract}
	var d projections.Decision
	var err error
	if q.After > 0 {
		d, err = p.r.DecideAfter(ctx, pq, q.After)
	} else {
		d, err = p.r.Decide(ctx, pq)
	}
	if err != nil {
		return Decision{}, err
	}
	return Decision{Allowed: d.Allowed, RulesVersion: d.RulesVersion, AsOf: d.AsOf, Revision: d.Revision,
		Reasons: d.LedgerReasons()}, nil
}

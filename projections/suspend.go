package projections

import (
	"context"
	"errors"
	"time"

	"github.com/heed/heed/ledger"
)

// Suspender records the suspension of each line over the complaint-rate
// threshold: LineSuspended, with the figures, in the line's stream.
// Decisions do not wait for it: the projection refuses a line from the
// event that takes it over the threshold on. Only an admin's
// LineReinstated lifts it; the window then starts afresh.
type Suspender struct {
	runner *Runner
	store  ledger.Store
	actor  string
}

// NewSuspender returns a suspender that reads r's state and appends to
// store as actor.
func NewSuspender(r *Runner, store ledger.Store, actor string) *Suspender {
	return &Suspender{runner: r, store: store, actor: actor}
}

// Run checks every interval until ctx ends.
func (s *Suspender) Run(ctx context.Context, every time.Duration) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if _, err := s.Check(ctx); err != nil && !errors.Is(err, context.Canceled) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

type candidate struct {
	tenant, name string
	rev          uint32
	figures      ledger.LineSuspended
}

// Check suspends every line over the threshold that is not suspended yet
// and returns how many it suspended. Each append expects the line stream's
// revision the projection read, so two checks (or two processes) racing
// on one line write one suspension.
func (s *Suspender) Check(ctx context.Context) (int, error) {
	r := s.runner
	cfg := r.cfg.LineSuspension
	now := r.opt.Now()
	today := minute(now) / 1440
	var cands []candidate
	r.mu.RLock()
	r.st.eachLine(func(l *line) {
		if l.Suspended {
			return
		}
		// A line the log took over the threshold is already refused; the
		// event records the figures decisions gave. A line can also cross
		// it with no event, as old contacts leave the window.
		contacts, complaints := l.Over.Contacts, l.Over.Complaints
		if l.Over.Known == 0 {
			contacts, complaints = l.figures(today)
			if !r.cfg.over(contacts, complaints) {
				return
			}
		}
		cands = append(cands, candidate{tenant: l.Tenant, name: l.Name, rev: l.Rev, figures: ledger.LineSuspended{
			Line: l.Name, Rule: RuleLineSuspended, Contacts: int(contacts), Complaints: int(complaints),
			Rate: float64(complaints) / float64(contacts), WindowDays: cfg.WindowDays,
		}})
	})
	r.mu.RUnlock()
	n := 0
	for _, c := range cands {
		e, err := ledger.NewEvent(c.tenant, "", now, c.figures)
		if err != nil {
			return n, err
		}
		e.Actor = s.actor
		_, err = s.store.Append(ctx, ledger.LineStream(c.tenant, c.name), ledger.Exact(uint64(c.rev)), []ledger.Event{e})
		switch {
		case errors.Is(err, ledger.ErrWrongRevision):
			// Someone wrote to the line since; the next check sees it.
		case err != nil:
			return n, err
		default:
			n++
		}
	}
	return n, nil
}

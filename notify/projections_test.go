package notify

import (
	"context"
	"testing"
	"time"

	"github.com/heed/heed/ledger/mem"
	"github.com/heed/heed/projections"
)

// runnerDecider puts the real projections behind the notifier's Decider.
type runnerDecider struct{ r *projections.Runner }

func (d runnerDecider) Decide(ctx context.Context, q Query) (Decision, error) {
	pq := projections.Query{Tenant: q.Tenant, Subject: q.Subject, Number: q.Number, Channel: q.Channel,
		Purpose: q.Purpose, Line: q.Line, At: q.At}
	var pd projections.Decision
	var err error
	if q.After > 0 {
		pd, err = d.r.DecideAfter(ctx, pq, q.After)
	} else {
		pd, err = d.r.Decide(ctx, pq)
	}
	if err != nil {
		return Decision{}, err
	}
	out := Decision{Allowed: pd.Allowed, RulesVersion: pd.RulesVersion, AsOf: pd.AsOf, Revision: pd.Revision}
	for _, r := range pd.Reasons {
		out.Reasons = append(out.Reasons, r.Ledger())
	}
	return out, nil
}

// TestNoSubmissionAfterOptOutWithProjections is the race test against the
// real eligibility projections following the log, not a test double.
func TestNoSubmissionAfterOptOutWithProjections(t *testing.T) {
	st, runner := followedStore(t)
	sender := &timedSender{at: map[string][]time.Time{}}
	n := New(Config{Store: slowDispatch{st}, Decider: runnerDecider{runner}, Sender: sender, Lines: map[string]string{line: tenant},
		DefaultLine: line, Pseudonym: pseudo, Now: noon})

	nums := customers(t, st, "+86139", 50, noon().Add(-time.Hour))
	optOutRace(t, n, st, sender, nums, 1000, "退订")
}

// noon is 12:00 in Shanghai, inside the hours reminders may be sent.
func noon() time.Time { return time.Date(2026, 6, 1, 4, 0, 0, 0, time.UTC) }

// followedStore returns a store and the real projections following it, at
// noon, with the frequency caps lifted so that only the fact a test races
// against can deny a reminder.
func followedStore(t *testing.T) (*mem.Store, *projections.Runner) {
	t.Helper()
	st := mem.New()
	t.Cleanup(func() { st.Close() })
	cfg := projections.Default()
	cfg.Frequency.Service.Max = 1000
	cfg.Frequency.SubjectPerDay = 1000
	runner, err := projections.NewRunner(st, cfg, projections.Options{Now: noon})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go func() { _ = runner.Run(ctx) }()
	return st, runner
}

package notify

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/heed/heed/ledger/mem"
	"github.com/heed/heed/projections"
)

// TestNoSubmissionAfterOptOutWithProjections is the race test against the
// real eligibility projections following the log, not a test double.
func TestNoSubmissionAfterOptOutWithProjections(t *testing.T) {
	st, runner := followedStore(t)
	sender := &timedSender{at: map[string][]time.Time{}}
	n := New(Config{Store: slowDispatch{st}, Decider: Projections(runner), Sender: sender, Lines: map[string]string{line: tenant},
		DefaultLine: line, Pseudonym: pseudo, Now: noon})

	nums := customers(t, st, "+86139", 50, noon().Add(-time.Hour))
	optOutRace(t, n, st, sender, nums, 1000, "退订")
}

// noon is 12:00 in Shanghai, inside the hours reminders may be sent. It is
// tomorrow's: the projections never decide before the newest event the
// store has recorded, and the in-memory store records at the wall clock, so
// a fixed date in the past would put decisions at the wall clock's hour.
func noon() time.Time { return noonAt }

var noonAt = time.Now().UTC().Truncate(24 * time.Hour).Add(28 * time.Hour)

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

// TestBogusContractDeniedWithProjections: the reminder about a
// contract the business does not have with the number is denied by the
// real projections (relationship-active) and recorded as denied; the
// same reminder about its real contract goes out.
func TestBogusContractDeniedWithProjections(t *testing.T) {
	st, runner := followedStore(t)
	sender := &fakeSender{}
	n := New(Config{Store: st, Decider: Projections(runner), Sender: sender, Lines: map[string]string{line: tenant},
		DefaultLine: line, Pseudonym: pseudo, Now: noon})
	nums := customers(t, st, "+86139", 1, noon().Add(-time.Hour))
	q := req("bogus")
	q.Number, q.Subject, q.ContractRef = nums[0], pseudo(nums[0]), "NO-SUCH-CONTRACT"
	res, err := n.Remind(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	if res.State != StateDenied || !slices.Contains(denialRules(res), projections.RuleRelationshipActive) || sender.count() != 0 {
		t.Fatalf("bogus contract: %s, denied by %v, %d sent", res.State, denialRules(res), sender.count())
	}
	q.ID, q.ContractRef = "real", "P-1"
	if res, err := n.Remind(context.Background(), q); err != nil || res.State != StateSubmitted {
		t.Fatalf("real contract: %s %v, %v", res.State, denialRules(res), err)
	}
}

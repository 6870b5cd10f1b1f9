package notify

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/heed/heed/ledger"
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
	st := mem.New()
	defer st.Close()
	noon := func() time.Time { return time.Date(2026, 6, 1, 4, 0, 0, 0, time.UTC) } // 12:00 in Shanghai
	cfg := projections.Default()
	cfg.Frequency.Service.Max = 1000 // let every allowed reminder through; the opt-out is what is tested
	cfg.Frequency.SubjectPerDay = 1000
	runner, err := projections.NewRunner(st, cfg, projections.Options{Now: noon})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = runner.Run(ctx) }()

	sender := &timedSender{at: map[string][]time.Time{}}
	n := New(Config{Store: slowDispatch{st}, Decider: runnerDecider{runner}, Sender: sender, Lines: map[string]string{line: tenant},
		DefaultLine: line, Pseudonym: pseudo, Now: noon})

	const numbers, ops = 50, 1000
	nums := make([]string, numbers)
	for i := range nums {
		nums[i] = fmt.Sprintf("+86139%08d", i)
		e, _ := ledger.NewEvent(tenant, pseudo(nums[i]), noon().Add(-time.Hour), ledger.RelationshipStarted{ContractRef: "P-1", StartsAt: noon().Add(-time.Hour)})
		if _, err := st.Append(ctx, ledger.ContactStream(tenant, pseudo(nums[i])), ledger.Any(), []ledger.Event{e}); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	acked := map[string]time.Time{}
	var wg sync.WaitGroup
	for i := range ops {
		num := nums[rand.IntN(numbers)]
		optOut := i%10 == 0
		delay := time.Duration(rand.IntN(100)) * time.Millisecond
		if optOut {
			num = nums[rand.IntN(numbers/2)]
			delay = 50*time.Millisecond + delay/2
		}
		wg.Go(func() {
			time.Sleep(delay)
			if optOut {
				if _, err := n.OnInbound(ctx, Inbound{From: num, To: line, Text: "退订"}); err != nil {
					t.Error(err)
					return
				}
				now := time.Now()
				mu.Lock()
				if _, ok := acked[num]; !ok {
					acked[num] = now
				}
				mu.Unlock()
				return
			}
			q := req(fmt.Sprint("p", i))
			q.Number, q.Subject, q.TemplateID, q.Text = num, pseudo(num), "", "您的保单即将到期"
			if _, err := n.Remind(ctx, q); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if sender.count == 0 || len(acked) == 0 {
		t.Fatalf("degenerate run: %d submits, %d opted-out numbers", sender.count, len(acked))
	}
	for num, ack := range acked {
		for _, at := range sender.at[num] {
			if at.After(ack) {
				t.Errorf("a submit started %v after the acknowledged opt-out of its number", at.Sub(ack))
			}
		}
	}
	for _, num := range nums {
		evs, _ := st.ReadStream(ctx, ledger.ContactStream(tenant, pseudo(num)), 1, 0)
		withdrawn := false
		for _, e := range evs {
			switch e.Type {
			case ledger.TypeConsentWithdrawn:
				withdrawn = true
			case ledger.TypeReminderDispatched:
				if withdrawn {
					t.Errorf("dispatch at revision %d after a withdrawal", e.Revision)
				}
			}
		}
	}
	t.Logf("%d submits, %d numbers opted out", sender.count, len(acked))
}

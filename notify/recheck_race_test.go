package notify

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/heed/heed/ledger"
)

// slowDecider returns a first decision a little late, as a loaded machine
// would: it widens the window between a decision and its dispatch, where a
// line suspension passes every revision check.
type slowDecider struct{ Decider }

func (s slowDecider) Decide(ctx context.Context, q Query) (Decision, error) {
	d, err := s.Decider.Decide(ctx, q)
	if q.After == 0 {
		time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond)
	}
	return d, err
}

// TestNoSubmissionAfterLineSuspendedWithProjections suspends a line, not
// through the per-subject gate, while reminders on it are being decided by
// the real projections. No reminder dispatched after the suspension may be
// submitted.
func TestNoSubmissionAfterLineSuspendedWithProjections(t *testing.T) {
	st, runner := followedStore(t)
	ctx := context.Background()

	n := New(Config{Store: st, Decider: slowDecider{Projections(runner)}, Sender: &timedSender{at: map[string][]time.Time{}},
		Lines: map[string]string{line: tenant}, DefaultLine: line, Pseudonym: pseudo, Now: noon})
	const numbers, ops = 50, 300
	nums := customers(t, st, "+86137", numbers, noon().Add(-time.Hour))
	var wg sync.WaitGroup
	wg.Go(func() {
		time.Sleep(40 * time.Millisecond)
		e, _ := ledger.NewEvent(tenant, "", noon(), ledger.LineSuspended{Line: line, Rule: "complaint-rate"})
		if _, err := st.Append(ctx, ledger.LineStream(tenant, line), ledger.Any(), []ledger.Event{e}); err != nil {
			t.Error(err)
		}
	})
	for i := range ops {
		num := nums[rand.IntN(numbers)]
		delay := time.Duration(rand.IntN(80)) * time.Millisecond
		wg.Go(func() {
			time.Sleep(delay)
			q := req(fmt.Sprint("s", i))
			q.Number, q.Subject = num, pseudo(num)
			if _, err := n.Remind(ctx, q); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	sus, err := st.ReadStream(ctx, ledger.LineStream(tenant, line), 1, 0)
	if err != nil || len(sus) != 1 {
		t.Fatalf("line stream: %v", err)
	}
	var before, after, cancelled int
	for _, num := range nums {
		evs, _ := st.ReadStream(ctx, ledger.ContactStream(tenant, pseudo(num)), 1, 0)
		late := map[string]bool{} // reminders dispatched after the suspension
		for i := range evs {
			e := &evs[i]
			switch e.Type {
			case ledger.TypeReminderDispatched:
				if e.Position > sus[0].Position {
					late[reminderID(e)] = true
					after++
				} else {
					before++
				}
			case ledger.TypeReminderDenied:
				if late[reminderID(e)] {
					cancelled++
				}
			case ledger.TypeReminderSubmitted:
				if late[reminderID(e)] {
					t.Errorf("a reminder dispatched at %d, after the line was suspended at %d, was submitted", e.Position, sus[0].Position)
				}
			}
		}
	}
	if before == 0 || after == 0 {
		t.Fatalf("degenerate run: %d reminders dispatched before the suspension, %d after it", before, after)
	}
	t.Logf("%d dispatched before the suspension, %d after it, %d of those cancelled", before, after, cancelled)
}

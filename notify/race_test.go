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

// timedSender records when each submit for each number started.
type timedSender struct {
	mu    sync.Mutex
	at    map[string][]time.Time
	count int
}

func (s *timedSender) Submit(_ context.Context, m Message) ([]string, error) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.at[m.Number] = append(s.at[m.Number], now)
	s.count++
	return []string{fmt.Sprint(s.count)}, nil
}

// TestNoSubmissionAfterAcknowledgedOptOut runs 1,000 reminders and opt-outs
// at once on the same few numbers. No submit may start after the opt-out of
// its number was acknowledged, and in every contact stream no dispatch
// follows a withdrawal.
func TestNoSubmissionAfterAcknowledgedOptOut(t *testing.T) {
	r := newRig(t)
	sender := &timedSender{at: map[string][]time.Time{}}
	cfg := r.n.cfg
	cfg.Sender = sender
	cfg.Store = slowDispatch{r.store}
	n := New(cfg)
	nums := customers(t, r.store, "+86138", 100, time.Now())
	optOutRace(t, n, r.store, sender, nums, 1000, "TD")
}

// customers gives count numbers starting with prefix a relationship with
// tenant that started at at.
func customers(t *testing.T, st ledger.Store, prefix string, count int, at time.Time) []string {
	t.Helper()
	approveRenewal(t, st)
	nums := make([]string, count)
	for i := range nums {
		nums[i] = fmt.Sprintf("%s%08d", prefix, i)
		e, err := ledger.NewEvent(tenant, pseudo(nums[i]), at, ledger.RelationshipStarted{ContractRef: "P-1", StartsAt: at})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Append(context.Background(), ledger.ContactStream(tenant, pseudo(nums[i])), ledger.Any(), []ledger.Event{e}); err != nil {
			t.Fatal(err)
		}
	}
	return nums
}

// optOutRace runs ops reminders and opt-outs (every tenth, replying
// keyword, on the first half of nums) at once through n, and checks that no
// submit started after the acknowledged opt-out of its number and that no
// contact stream holds a dispatch after a withdrawal.
func optOutRace(t *testing.T, n *Notifier, st ledger.Store, sender *timedSender, nums []string, ops int, keyword string) {
	t.Helper()
	ctx := context.Background()
	var (
		mu    sync.Mutex
		acked = map[string]time.Time{} // first acknowledged opt-out per number
	)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range ops {
		num := nums[rand.IntN(len(nums))]
		optOut := i%10 == 0
		if optOut {
			num = nums[rand.IntN(len(nums)/2)]
		}
		// Spread the operations over ~100 ms so reminders land before, during
		// and after the opt-outs, which come in the second half.
		delay := time.Duration(rand.IntN(100)) * time.Millisecond
		if optOut {
			delay = 50*time.Millisecond + delay/2
		}
		wg.Go(func() {
			<-start
			time.Sleep(delay)
			if optOut {
				if _, err := n.OnInbound(ctx, Inbound{From: num, To: line, Text: keyword}); err != nil {
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
			q := req(fmt.Sprint("r", i))
			q.Number, q.Subject = num, pseudo(num)
			if _, err := n.Remind(ctx, q); err != nil {
				t.Error(err)
			}
		})
	}
	close(start)
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
		evs, err := st.ReadStream(ctx, ledger.ContactStream(tenant, pseudo(num)), 1, 0)
		if err != nil {
			t.Fatal(err)
		}
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

// slowDispatch returns from a ReminderDispatched append a little late, as
// a loaded machine would: it widens the window between a dispatch becoming
// durable and its submit, where an opt-out must not slip through.
type slowDispatch struct{ ledger.Store }

func (s slowDispatch) Append(ctx context.Context, stream string, exp ledger.Expected, evs []ledger.Event) ([]ledger.Event, error) {
	out, err := s.Store.Append(ctx, stream, exp, evs)
	for _, e := range evs {
		if e.Type == ledger.TypeReminderDispatched {
			time.Sleep(3 * time.Millisecond)
		}
	}
	return out, err
}

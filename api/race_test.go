package api

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/heed/heed/ledger"
	"github.com/heed/heed/notify"
)

// timedSender records when each submit to each number started.
type timedSender struct {
	mu sync.Mutex
	at map[string][]time.Time
	n  int
}

func (s *timedSender) Submit(_ context.Context, m notify.Message) ([]string, error) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.at[m.Number] = append(s.at[m.Number], now)
	s.n++
	return []string{fmt.Sprint(s.n)}, nil
}

// TestNoSubmissionAfterAcknowledgedWithdrawalOverHTTP: reminders and
// POST /v1/withdrawals race over HTTP; no submit to a number starts after
// its withdrawal was answered.
func TestNoSubmissionAfterAcknowledgedWithdrawalOverHTTP(t *testing.T) {
	h := newHarness(t)
	sender := &timedSender{at: map[string][]time.Time{}}
	h.notify = notify.New(notify.Config{Store: slowDispatch{h.store}, Decider: streamDecider{h.store}, Sender: sender,
		Pseudonym: (hmacPseudonyms{}).Pseudonym, Lines: map[string]string{"10690001": "tenanta"}})
	h.api.cfg.Reminders, h.api.cfg.Gate = h.notify, h.notify

	h.approved(h.a, "renewal", renewalText)
	const numbers, ops = 20, 300
	nums := make([]string, numbers)
	for i := range nums {
		nums[i] = fmt.Sprintf("+86139%08d", i)
		if r := h.do("POST", "/v1/relationships", h.a, map[string]any{"number": nums[i], "contract_ref": fmt.Sprint("P-", i)}); r.status != 201 {
			t.Fatalf("%d %s", r.status, r.body)
		}
	}
	var mu sync.Mutex
	acked := map[string]time.Time{}
	var wg sync.WaitGroup
	for i := range ops {
		k := rand.IntN(numbers)
		optOut := i%10 == 0
		delay := time.Duration(rand.IntN(60)) * time.Millisecond
		if optOut {
			k = rand.IntN(numbers / 2)
			delay = 30*time.Millisecond + delay/2
		}
		num := nums[k]
		wg.Go(func() {
			time.Sleep(delay)
			if optOut {
				if r := h.do("POST", "/v1/withdrawals", h.a, map[string]any{"number": num, "via": "web"}); r.status != 201 {
					t.Errorf("withdrawal: %d %s", r.status, r.body)
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
			if r := h.do("POST", "/v1/reminders", h.a, renewal("", num, fmt.Sprint("P-", k))); r.status != 201 {
				t.Errorf("reminder: %d %s", r.status, r.body)
			}
		})
	}
	wg.Wait()
	if sender.n == 0 || len(acked) == 0 {
		t.Fatalf("degenerate run: %d submits, %d withdrawals", sender.n, len(acked))
	}
	for num, ack := range acked {
		for _, at := range sender.at[num] {
			if at.After(ack) {
				t.Errorf("a submit started %v after the acknowledged withdrawal of its number", at.Sub(ack))
			}
		}
	}
	for _, num := range nums {
		evs, _ := h.store.ReadStream(context.Background(), ledger.ContactStream("tenanta", (hmacPseudonyms{}).Pseudonym(num)), 1, 0)
		withdrawn := false
		for _, e := range evs {
			withdrawn = withdrawn || e.Type == ledger.TypeConsentWithdrawn
			if withdrawn && e.Type == ledger.TypeReminderDispatched {
				t.Errorf("dispatch at revision %d after a withdrawal", e.Revision)
			}
		}
	}
	t.Logf("%d submits, %d numbers withdrew", sender.n, len(acked))
}

// slowDispatch returns from a ReminderDispatched append a little late, as
// a loaded machine would, widening the window a withdrawal must not use.
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

package notify

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

// clock is a settable time for Config.Now.
type clock struct{ off atomic.Int64 }

func (c *clock) now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *clock) advance(d time.Duration) { c.off.Add(int64(d)) }

func (r *rig) withClock(c *clock, edit func(*Config)) {
	cfg := r.n.cfg
	cfg.Now = c.now
	if edit != nil {
		edit(&cfg)
	}
	r.n = New(cfg)
}

// held is what Stats counts that is not bounded by Config.Recent.
func held(s Stats) Stats {
	s.Recent = 0
	return s
}

func num(i int) string { return fmt.Sprintf("+86138%08d", i) }

func reqTo(i int, id string) Request {
	q := req(id)
	q.Number, q.Subject = num(i), pseudo(num(i))
	return q
}

func TestSettledRemindersAreForgotten(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	const n = 60
	for i := range n {
		if i%3 != 0 { // every third number has no relationship: denied
			r.relate(t, num(i))
		}
	}
	want := map[string]string{}
	for i := range n {
		id := fmt.Sprint("r", i)
		res, err := r.n.Remind(ctx, reqTo(i, id))
		if err != nil {
			t.Fatal(err)
		}
		want[id] = res.State
		if res.State == StateSubmitted {
			delivered := i%2 == 0
			if err := r.n.OnReceipt(ctx, Receipt{MessageID: res.MessageIDs[0], Delivered: delivered}); err != nil {
				t.Fatal(err)
			}
			want[id] = map[bool]string{true: StateDelivered, false: StateFailed}[delivered]
		}
	}
	// Refused and unanswered submits are final too.
	r.relate(t, num(n))
	r.sender.err = fmt.Errorf("%w: test", ErrPermanent)
	if res, err := r.n.Remind(ctx, reqTo(n, "refused")); err != nil || res.State != StateFailed {
		t.Fatalf("refused: %s, %v", res.State, err)
	}
	r.sender.err = context.DeadlineExceeded
	if res, err := r.n.Remind(ctx, reqTo(n, "unknown")); err != nil || res.State != StateUnknown {
		t.Fatalf("unknown: %s, %v", res.State, err)
	}
	want["refused"], want["unknown"] = StateFailed, StateUnknown

	if s := held(r.n.Stats()); s != (Stats{}) {
		t.Fatalf("after %d settled reminders the notifier still holds %+v", len(want), s)
	}
	// Settled reminders are still answered, from the log.
	for id, state := range want {
		got, err := r.n.Get(ctx, tenant, id)
		if err != nil || got.State != state {
			t.Fatalf("Get(%s) = %s, %v; want %s", id, got.State, err, state)
		}
	}
	if _, err := r.n.Get(ctx, "other", "r1"); err != ErrNotFound {
		t.Fatalf("another tenant's reminder: %v, want ErrNotFound", err)
	}
}

func TestUnansweredReminderExpiresAndLateReceiptStillCounts(t *testing.T) {
	r := newRig(t)
	c := &clock{}
	r.withClock(c, nil)
	ctx := context.Background()
	var ids []string
	for i := range 3 {
		r.relate(t, num(i))
		res, err := r.n.Remind(ctx, reqTo(i, fmt.Sprint("r", i)))
		if err != nil || res.State != StateSubmitted {
			t.Fatalf("%s, %v", res.State, err)
		}
		ids = append(ids, res.MessageIDs[0])
	}
	if s := r.n.Stats(); s.Open != 3 || s.Awaiting == 0 {
		t.Fatalf("waiting for receipts: %+v", s)
	}
	c.advance(23 * time.Hour)
	if _, err := r.n.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if s := r.n.Stats(); s.Open != 3 {
		t.Fatalf("expired before the timeout: %+v", s)
	}
	c.advance(time.Hour)
	if _, err := r.n.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if s := held(r.n.Stats()); s != (Stats{}) {
		t.Fatalf("after the receipt timeout the notifier still holds %+v", s)
	}

	// A restart a day later does not hold them either.
	restarted := New(r.n.cfg)
	if _, err := restarted.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	if s := held(restarted.Stats()); s != (Stats{}) {
		t.Fatalf("after a restart: %+v", s)
	}

	// A late receipt (and one for a message that is not ours) waits for a
	// submit response, then is matched from the log.
	for _, rc := range []Receipt{{MessageID: ids[1], Delivered: true}, {MessageID: "999999"}} {
		if err := r.n.OnReceipt(ctx, rc); err != nil {
			t.Fatal(err)
		}
	}
	if got, _ := r.n.Get(ctx, tenant, "r1"); got.State != StateSubmitted {
		t.Fatalf("recorded before EarlyWait: %s", got.State)
	}
	c.advance(time.Minute)
	if n, err := r.n.Sweep(ctx); err != nil || n != 1 {
		t.Fatalf("Sweep recorded %d, %v; want 1", n, err)
	}
	if got, _ := r.n.Get(ctx, tenant, "r1"); got.State != StateDelivered {
		t.Fatalf("late receipt: %s, want delivered", got.State)
	}
	if s := held(r.n.Stats()); s != (Stats{}) {
		t.Fatalf("after the sweep: %+v", s)
	}
	// The same receipt again is not recorded twice.
	_ = r.n.OnReceipt(ctx, Receipt{MessageID: ids[1], Delivered: false})
	c.advance(time.Minute)
	if n, err := r.n.Sweep(ctx); err != nil || n != 0 {
		t.Fatalf("duplicate: Sweep recorded %d, %v", n, err)
	}
}

func TestOpenRemindersAreCapped(t *testing.T) {
	r := newRig(t)
	c := &clock{}
	r.withClock(c, func(cfg *Config) { cfg.MaxOpen = 5 })
	// Ids like an SMSC's: small sequential ones would equal each other's
	// decimal/hex conversions.
	r.sender.next = 1_000_000_000
	ctx := context.Background()
	var ids []string
	for i := range 20 {
		r.relate(t, num(i))
		res, err := r.n.Remind(ctx, reqTo(i, fmt.Sprint("r", i)))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, res.MessageIDs[0])
	}
	if s := r.n.Stats(); s.Open > 5 {
		t.Fatalf("%d reminders held, cap 5", s.Open)
	}
	// Every receipt still resolves its reminder, from memory or the log.
	for _, id := range ids {
		if err := r.n.OnReceipt(ctx, Receipt{MessageID: id, Delivered: true}); err != nil {
			t.Fatal(err)
		}
	}
	c.advance(time.Minute)
	if _, err := r.n.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range ids {
		if got, err := r.n.Get(ctx, tenant, fmt.Sprint("r", i)); err != nil || got.State != StateDelivered {
			t.Fatalf("r%d: %s, %v", i, got.State, err)
		}
	}
	if s := held(r.n.Stats()); s != (Stats{}) {
		t.Fatalf("after all receipts: %+v", s)
	}
}

// twoParts answers every submit with two message ids, as for a long text.
type twoParts struct{ n atomic.Int64 }

func (s *twoParts) Submit(context.Context, Message) ([]string, error) {
	i := s.n.Add(2)
	return []string{fmt.Sprint(7_000_000_000 + i - 1), fmt.Sprint(7_000_000_000 + i)}, nil
}

func TestEveryPartsReceiptIsAwaitedOnce(t *testing.T) {
	r := newRig(t)
	cfg := r.n.cfg
	cfg.Sender = &twoParts{}
	r.n = New(cfg)
	ctx := context.Background()
	r.relate(t, number)
	res, err := r.n.Remind(ctx, req("long"))
	if err != nil || len(res.MessageIDs) != 2 {
		t.Fatalf("%v, %v", res.MessageIDs, err)
	}
	if err := r.n.OnReceipt(ctx, Receipt{MessageID: res.MessageIDs[1], Delivered: true}); err != nil {
		t.Fatal(err)
	}
	if got, _ := r.n.Get(ctx, tenant, "long"); got.State != StateDelivered {
		t.Fatalf("after the first part's receipt: %s", got.State)
	}
	if s := r.n.Stats(); s.Open != 1 {
		t.Fatalf("the other part's receipt is not awaited: %+v", s)
	}
	if err := r.n.OnReceipt(ctx, Receipt{MessageID: res.MessageIDs[0], Delivered: false, Status: "UNDELIV"}); err != nil {
		t.Fatal(err)
	}
	if s := held(r.n.Stats()); s != (Stats{}) {
		t.Fatalf("after both parts' receipts: %+v", s)
	}
	if got := r.types(t, number); len(got) != 5 || got[4] != "ReminderDelivered" {
		t.Fatalf("stream %v: want one receipt event, delivered", got)
	}
}

// ctxSender answers after the caller's context has been cancelled, and
// fails the way an SMPP client does when its context ends first.
type ctxSender struct {
	cancel func()
	wait   time.Duration
}

func (s ctxSender) Submit(ctx context.Context, _ Message) ([]string, error) {
	s.cancel()
	select {
	case <-time.After(s.wait):
		return []string{"4242"}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func TestCallerGoingAwayDoesNotAbandonTheSubmit(t *testing.T) {
	for _, tc := range []struct {
		name    string
		wait    time.Duration
		timeout time.Duration
		want    string
	}{
		{"answered", 50 * time.Millisecond, 0, StateSubmitted},
		{"past the submit timeout", time.Second, 50 * time.Millisecond, StateUnknown},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t)
			ctx, cancel := context.WithCancel(context.Background())
			cfg := r.n.cfg
			cfg.Sender, cfg.SubmitTimeout = ctxSender{cancel: cancel, wait: tc.wait}, tc.timeout
			r.n = New(cfg)
			r.relate(t, number)
			res, err := r.n.Remind(ctx, req("gone"))
			if err != nil || res.State != tc.want {
				t.Fatalf("Remind = %s, %v; want %s", res.State, err, tc.want)
			}
			if got, _ := r.n.Get(context.Background(), tenant, "gone"); got.State != tc.want {
				t.Fatalf("recorded %s, want %s", got.State, tc.want)
			}
		})
	}
}

func TestRecentlySettledAreBounded(t *testing.T) {
	r := newRig(t)
	cfg := r.n.cfg
	cfg.Recent = 4
	r.n = New(cfg)
	ctx := context.Background()
	for i := range 10 {
		if i%2 == 0 {
			r.relate(t, num(i)) // the odd ones are denied
		}
		res, err := r.n.Remind(ctx, reqTo(i, fmt.Sprint("r", i)))
		if err != nil {
			t.Fatal(err)
		}
		if res.State == StateSubmitted {
			if err := r.n.OnReceipt(ctx, Receipt{MessageID: res.MessageIDs[0], Delivered: true}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if s := r.n.Stats(); s != (Stats{Recent: 4}) {
		t.Fatalf("after 10 settled reminders, Recent 4: %+v", s)
	}
	for i := range 10 {
		want := map[bool]string{true: StateDelivered, false: StateDenied}[i%2 == 0]
		if got, err := r.n.Get(ctx, tenant, fmt.Sprint("r", i)); err != nil || got.State != want {
			t.Fatalf("r%d: %s, %v; want %s", i, got.State, err, want)
		}
	}
}

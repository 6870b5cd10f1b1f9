package schedule

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heed/heed/ledger"
	"github.com/heed/heed/ledger/ledgertest"
	"github.com/heed/heed/ledger/pii"
	"github.com/heed/heed/notify"
	"github.com/heed/heed/projections"
)

const (
	tenant = "acme"
	line   = "10690001"
	cnNum  = "+8613800138000"
)

// stores opens each kind of store a test runs on.
var stores = ledgertest.Stores

// clock is a settable clock. Tests run it ahead of the real one, never
// behind: the store records events at real time, and a decision's "now"
// is never before the newest event recorded.
type clock struct{ at atomic.Int64 }

func (c *clock) now() time.Time  { return time.Unix(0, c.at.Load()) }
func (c *clock) set(t time.Time) { c.at.Store(t.UnixNano()) }

// sender counts what it submits, per number.
type sender struct {
	mu    sync.Mutex
	sent  []notify.Message
	per   map[string]int
	next  int
	fails bool // answer with a refusal that never leaves
}

func (s *sender) Submit(_ context.Context, m notify.Message) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fails {
		return nil, fmt.Errorf("%w: test", notify.ErrNotSent)
	}
	s.sent = append(s.sent, m)
	if s.per == nil {
		s.per = map[string]int{}
	}
	s.per[m.Number]++
	s.next++
	return []string{fmt.Sprint(s.next)}, nil
}

func (s *sender) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sent)
}

func (s *sender) texts() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, m := range s.sent {
		out = append(out, m.Text)
	}
	return out
}

type rig struct {
	t      *testing.T
	base   ledger.Store
	st     ledger.Store // sealing
	keys   *pii.Keys
	rules  *projections.Config
	runner *projections.Runner
	n      *notify.Notifier
	sender *sender
	clock  *clock
	dir    string
	s      *Scheduler
	stop   func()
	hooks  *hookLog
}

type hookLog struct {
	mu        sync.Mutex
	fired     []string
	deferred  []string
	cancelled []string
}

func (h *hookLog) Hooks() Hooks {
	return Hooks{
		Fired: func(state string, _ time.Duration) {
			h.mu.Lock()
			h.fired = append(h.fired, state)
			h.mu.Unlock()
		},
		Deferred: func(rule string) {
			h.mu.Lock()
			h.deferred = append(h.deferred, rule)
			h.mu.Unlock()
		},
		Cancelled: func(reason string) {
			h.mu.Lock()
			h.cancelled = append(h.cancelled, reason)
			h.mu.Unlock()
		},
	}
}

// newRig wires a store, keys, projections, a notifier and a scheduler
// (not started) with a clock at start.
func newRig(t *testing.T, base ledger.Store, rules *projections.Config, start time.Time) *rig {
	t.Helper()
	if rules == nil {
		rules = projections.Default()
	}
	keys, err := pii.OpenKeys(filepath.Join(t.TempDir(), "keys.db"), bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { keys.Close() })
	r := &rig{t: t, base: base, st: pii.Seal(base, keys), keys: keys, rules: rules, sender: &sender{}, clock: &clock{},
		dir: t.TempDir(), hooks: &hookLog{}}
	r.clock.set(start)
	r.runner, err = projections.NewRunner(base, rules, projections.Options{Now: r.clock.now})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = r.runner.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	r.n = notify.New(notify.Config{Store: r.st, Decider: notify.Projections(r.runner), Sender: r.sender, Sealer: keys,
		Lines: map[string]string{line: tenant}, DefaultLine: line, Now: r.clock.now,
		Pseudonym: func(n string) string { return pseudo(n) }})
	r.approve("renewal", "您的保单{policy:ref}将于{expires_on:date}到期")
	return r
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

func pseudo(number string) string { return "s" + strings.TrimPrefix(number, "+") }

// start runs a scheduler; stop (or the test's end) stops it.
func (r *rig) start(edit func(*Config)) *Scheduler {
	r.t.Helper()
	cfg := Config{Store: r.st, Notifier: r.n, Decider: notify.Projections(r.runner), Keys: r.keys, Rules: r.rules,
		Dir: r.dir, Now: r.clock.now, Poll: 5 * time.Millisecond, Hooks: r.hooks.Hooks(), Workers: 4, Reconcilers: 2,
		Log: slog.New(slog.NewTextHandler(testWriter{r.t}, nil))}
	if edit != nil {
		edit(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s, err := New(ctx, cfg)
	if err != nil {
		r.t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	select {
	case <-s.Ready():
	case err := <-done:
		r.t.Fatalf("scheduler stopped before ready: %v", err)
	}
	var once sync.Once
	r.s = s
	r.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				r.t.Errorf("scheduler: %v", err)
			}
		})
	}
	r.t.Cleanup(r.stop)
	return s
}

func (r *rig) append(stream string, exp ledger.Expected, subject string, payload any) ledger.Event {
	r.t.Helper()
	e, err := ledger.NewEvent(tenant, subject, r.clock.now(), payload)
	if err != nil {
		r.t.Fatal(err)
	}
	e.Actor = "test"
	out, err := r.st.Append(context.Background(), stream, exp, []ledger.Event{e})
	if err != nil {
		r.t.Fatal(err)
	}
	return out[0]
}

func (r *rig) approve(id, text string) {
	s := ledger.TemplateStream(tenant, id)
	r.append(s, ledger.Any(), "", &ledger.TemplateProposed{TemplateID: id, Version: 1, Purpose: ledger.PurposeService, Signature: "平安保险", Text: text})
	r.append(s, ledger.Any(), "", &ledger.TemplateApproved{TemplateID: id, Version: 1})
}

func (r *rig) plan(p ledger.ReminderPlanDefined) {
	if p.TemplateID == "" {
		p.TemplateID, p.TemplateVersion = "renewal", 1
		p.Params = map[string]string{"policy": ledger.SourceContractRef, "expires_on": ledger.SourceExpiresAt}
	}
	if p.PlanID == "" {
		p.PlanID = "motor"
	}
	r.append(ledger.PlanStream(tenant, p.PlanID), ledger.Exact(uint64(p.Version-1)), "", &p)
}

func (r *rig) contact(number string, payload any) ledger.Event {
	return r.append(ledger.ContactStream(tenant, pseudo(number)), ledger.Any(), pseudo(number), payload)
}

func (r *rig) relate(number, ref string, expires time.Time, plan string) ledger.Event {
	return r.contact(number, &ledger.RelationshipStarted{ContractRef: ref, Product: "车险", StartsAt: expires.AddDate(-1, 0, 0),
		ExpiresAt: &expires, Plan: plan, Number: number})
}

// view reads the timers of number.
func (r *rig) view(number string) *View {
	r.t.Helper()
	v, err := Read(context.Background(), r.base, tenant, pseudo(number))
	if err != nil {
		r.t.Fatal(err)
	}
	return v
}

// timers returns number's timers in the order scheduled.
func (r *rig) timers(number string) []*Timer {
	v := r.view(number)
	var out []*Timer
	for _, id := range v.Order {
		out = append(out, v.Timers[id])
	}
	return out
}

// eventually polls cond until it holds, or fails after a deadline.
func (r *rig) eventually(what string, cond func() bool) {
	r.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			r.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// settled waits until the scheduler has applied the log's head and has
// nothing left to derive.
func (r *rig) settled() {
	r.t.Helper()
	r.eventually("the scheduler to settle", func() bool {
		head, err := r.base.Head(context.Background())
		if err != nil {
			r.t.Fatal(err)
		}
		st := r.s.Stats()
		return st.Position >= head && st.Dirty == 0
	})
}

func pending(ts []*Timer) int {
	n := 0
	for _, t := range ts {
		if t.Pending() {
			n++
		}
	}
	return n
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// lastContact is when the store recorded number's latest contact.
func (r *rig) lastContact(number string) time.Time {
	evs, err := r.base.ReadStream(context.Background(), ledger.ContactStream(tenant, pseudo(number)), 1, 0)
	if err != nil {
		r.t.Fatal(err)
	}
	var at time.Time
	for _, e := range evs {
		if e.Type == ledger.TypeContactMade {
			at = e.RecordedAt
		}
	}
	return at
}

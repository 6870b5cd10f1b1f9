package projections

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/heed/heed/ledger"
	"github.com/heed/heed/ledger/mem"
	"github.com/nyaruka/phonenumbers"
)

// base is a fixed Monday noon in Beijing (04:00 UTC), outside quiet hours.
var base = time.Date(2026, 11, 2, 4, 0, 0, 0, time.UTC)

const (
	tenant  = "acme-insurance"
	subject = "5f2b1c0a9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a"
	other   = "0000000000000000000000000000000000000000000000000000000000000001"
	number  = "+8613800138000" // 北京市, Asia/Shanghai
	line1   = "pbx-1"
)

// book applies events straight to a State, assigning what a store would:
// stream, revision, position and recorded time.
type book struct {
	t    tb
	st   *State
	revs map[string]uint64
}

// tb is what book needs of *testing.T and *rapid.T.
type tb interface {
	Helper()
	Fatal(args ...any)
}

func newBook(t tb, cfg *Config) *book {
	t.Helper()
	if cfg == nil {
		cfg = Default()
	}
	return &book{t: t, st: NewState(cfg), revs: map[string]uint64{}}
}

// add appends payload for (tenant, subj) at occurred time at to stream.
func (b *book) add(stream, ten, subj string, at time.Time, payload any) uint32 {
	b.t.Helper()
	e, err := ledger.NewEvent(ten, subj, at, payload)
	if err != nil {
		b.t.Fatal(err)
	}
	if err := ledger.Validate(&e); err != nil {
		b.t.Fatal(err)
	}
	b.revs[stream]++
	e.Stream, e.Revision, e.Position, e.RecordedAt = stream, b.revs[stream], b.st.pos+1, at
	if err := b.st.Apply(&e); err != nil {
		b.t.Fatal(err)
	}
	return uint32(e.Position)
}

func (b *book) contact(ten, subj string, at time.Time, p any) uint32 {
	return b.add(ledger.ContactStream(ten, subj), ten, subj, at, p)
}

func (b *book) decide(q Query) Decision {
	b.t.Helper()
	d, err := b.st.Decide(q, q.At)
	if err != nil {
		b.t.Fatal(err)
	}
	return d
}

func days(n int) time.Duration { return time.Duration(n) * 24 * time.Hour }

// clockStore is a mem.Store whose recorded times come from a settable
// clock, so tests can write "last month" into the log.
type clockStore struct {
	*mem.Store
	appending sync.Mutex
	mu        sync.Mutex
	now       time.Time
	rec       map[uint64]time.Time
}

func newClockStore(now time.Time) *clockStore {
	return &clockStore{Store: mem.New(), now: now, rec: map[uint64]time.Time{}}
}

func (c *clockStore) set(now time.Time) {
	c.mu.Lock()
	c.now = now
	c.mu.Unlock()
}

func (c *clockStore) fix(evs []ledger.Event) []ledger.Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range evs {
		if t, ok := c.rec[evs[i].Position]; ok {
			evs[i].RecordedAt = t
		}
	}
	return evs
}

func (c *clockStore) Append(ctx context.Context, stream string, exp ledger.Expected, evs []ledger.Event) ([]ledger.Event, error) {
	// Appends are serialised so the positions they will get are known, and
	// their times registered before any follower can see them.
	c.appending.Lock()
	defer c.appending.Unlock()
	head, err := c.Store.Head(ctx)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	for i := range evs {
		c.rec[head+uint64(i)+1] = c.now
	}
	c.mu.Unlock()
	out, err := c.Store.Append(ctx, stream, exp, evs)
	if err != nil {
		return nil, err
	}
	return c.fix(out), nil
}

func (c *clockStore) ReadStream(ctx context.Context, s string, from uint64, limit int) ([]ledger.Event, error) {
	evs, err := c.Store.ReadStream(ctx, s, from, limit)
	return c.fix(evs), err
}

func (c *clockStore) ReadAll(ctx context.Context, from uint64, limit int) ([]ledger.Event, error) {
	evs, err := c.Store.ReadAll(ctx, from, limit)
	return c.fix(evs), err
}

func (c *clockStore) Follow(ctx context.Context, from uint64, fn func(ledger.Event) error) error {
	return c.Store.Follow(ctx, from, func(e ledger.Event) error {
		return fn(c.fix([]ledger.Event{e})[0])
	})
}

// env is a runner over a clockStore with helpers to append like a
// business would.
type env struct {
	t     *testing.T
	ctx   context.Context
	store *clockStore
	r     *Runner
}

func newEnv(t *testing.T, cfg *Config) *env {
	t.Helper()
	return newEnvWith(t, cfg, "")
}

// newEnvWith is newEnv with snapshots in dir.
func newEnvWith(t *testing.T, cfg *Config, dir string) *env {
	t.Helper()
	if cfg == nil {
		cfg = Default()
	}
	s := newClockStore(base)
	r, err := NewRunner(s, cfg, Options{Dir: dir, Now: func() time.Time { s.mu.Lock(); defer s.mu.Unlock(); return s.now }, Wait: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return &env{t: t, ctx: ctx, store: s, r: r}
}

// at moves the clock (business and ledger time alike).
func (e *env) at(t time.Time) { e.store.set(t) }

func (e *env) now() time.Time { return e.r.opt.Now() }

func (e *env) append(stream, ten, subj string, payload any) ledger.Event {
	e.t.Helper()
	ev, err := ledger.NewEvent(ten, subj, e.now(), payload)
	if err != nil {
		e.t.Fatal(err)
	}
	out, err := e.store.Append(e.ctx, stream, ledger.Any(), []ledger.Event{ev})
	if err != nil {
		e.t.Fatal(err)
	}
	return out[0]
}

func (e *env) contact(subj string, payload any) ledger.Event {
	return e.append(ledger.ContactStream(tenant, subj), tenant, subj, payload)
}

func (e *env) decide(q Query) Decision {
	e.t.Helper()
	if q.Tenant == "" {
		q.Tenant = tenant
	}
	if q.Subject == "" {
		q.Subject = subject
	}
	if q.Number == "" {
		q.Number = number
	}
	d, err := e.r.Decide(e.ctx, q)
	if err != nil {
		e.t.Fatal(err)
	}
	return d
}

func parseSlow(n string) (*phonenumbers.PhoneNumber, error) { return phonenumbers.Parse(n, "") }

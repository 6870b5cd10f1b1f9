// Package schedule fires planned reminders: renewal notices due a set
// time before a relationship's expiry, under a tenant's reminder plan.
//
// Timers live in the log. When a relationship with a plan and an expiry
// is recorded, renewed, or its plan gets a new version, the scheduler
// appends one ReminderScheduled per offset to the relationship's contact
// stream, beside the opt-outs, suppressions, erasures and ends that cancel
// them (ReminderCancelled). Each timer has a reminder id derived from the
// contract, its expiry and the offset, and each event an id derived from
// its content, so deriving the timers again after a crash appends nothing
// new: the store takes a repeated id with the same content as a no-op.
//
// A due timer fires through notify.Notifier.Remind under its reminder id,
// the same gate as an immediate reminder (decision, dispatch at the
// revision the decision read, submit, receipt); the ReminderRequested it
// appends ends the timer. A second attempt under the same id only reads
// what the first did, so a timer fires at most once across crashes,
// restarts and clocks that jump back. A decision denied only by rules
// that pass later (quiet hours, frequency caps, region bursts) and a time
// outside the plan's send window defer the timer (ReminderDeferred) to
// the first moment they allow; any other denial (no basis, a revoked
// template) is recorded as the reminder's final state.
//
// The pending timers are held in a compact index (see index) that is a
// function of the log alone, saved as a snapshot and read back at start,
// then brought up to the log's head. Due timers are handed to the firing
// workers at the submit rates configured per line and per SMSC, so a
// morning's reminders spread out instead of leaving in one burst.
package schedule

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heed/heed/ledger"
	"github.com/heed/heed/notify"
	"github.com/heed/heed/projections"
)

// Notifier sends a reminder through the gate.
type Notifier interface {
	Remind(ctx context.Context, r notify.Request) (notify.Result, error)
	// LineOf names the line a reminder of tenant naming line goes from.
	LineOf(tenant, line string) string
}

// Opener opens the personal fields sealed in an event (ledger/pii's Keys).
type Opener interface {
	OpenEvent(ctx context.Context, e *ledger.Event) (map[string]string, error)
}

// Hooks are told what the scheduler does, for metrics.
type Hooks struct {
	// Fired is told the state a fired timer's reminder reached and how
	// long after its due time it was submitted (or decided).
	Fired func(state string, lag time.Duration)
	// Deferred is told the rule of each deferral.
	Deferred func(rule string)
	// Cancelled is told the reason of each cancellation it sees recorded.
	Cancelled func(reason string)
}

// Config wires a Scheduler.
type Config struct {
	// Store is the log; the scheduler appends its timers to it.
	Store    ledger.Store
	Notifier Notifier
	// Decider answers the probes that find when a deferred reminder may go.
	Decider notify.Decider
	// Keys opens the number sealed in a RelationshipStarted.
	Keys Opener
	// Rules gives the callee's time zones (and the fallback zone).
	Rules *projections.Config
	// SMSCOf names the SMSC that carries a line.
	SMSCOf func(line string) string
	// Ready, if set, says whether a line's SMSC can take a submit now; a
	// due timer waits (in memory) while it cannot, rather than fail.
	Ready func(line string) bool
	// LineRate and SMSCRate are submits per second per line and per SMSC
	// (zero: unlimited); LineRates and SMSCRates override them by name.
	LineRate, SMSCRate   float64
	LineRates, SMSCRates map[string]float64
	// Workers fire timers concurrently (zero: 64); Reconcilers derive
	// timers concurrently (zero: 16).
	Workers, Reconcilers int
	// Leaves, if set, reads the log's stored leaves (ledger/bolt): the
	// catch-up at start then decodes only the events the index reads.
	Leaves notify.LeafReader
	// Dir holds the index's snapshot; empty keeps none.
	Dir string
	// SnapshotEvery is how often the index is saved (zero: 5 minutes).
	SnapshotEvery time.Duration
	// Horizon bounds the search for a deferred reminder's next moment
	// (zero: 35 days).
	Horizon time.Duration
	// Poll is the longest the dispatcher waits before it reads the clock
	// again (zero: a second).
	Poll  time.Duration
	Hooks Hooks
	Now   func() time.Time
	Log   *slog.Logger
}

// catchUpSave is how many events the index must have read at start for
// it to be saved as soon as it is live.
var catchUpSave uint64 = 100_000

// Scheduler derives timers from the log and fires them when due.
type Scheduler struct {
	cfg Config

	mu     sync.Mutex
	idx    *index
	pos    uint64 // the last position applied
	posID  string // that event's id
	plans  []*planVersion
	newest map[string]*planVersion // tenant\x00plan → latest version
	// dirty holds the contact streams to derive timers for: a hash of
	// (tenant, subject) → the position of an event of that stream.
	dirty map[uint64]uint64
	queue []uint64 // dirty keys in the order they became dirty
	busy  map[uint64]bool
	live  bool // the index has reached the head it saw at start
	stale bool // a plan changed: look for timers of older versions
	// next is the earliest due time (in ticks) of the timers not handed
	// out, as of the last scan and the events since (0: none); rescan asks
	// for a scan whatever it says.
	next   uint64
	rescan bool
	retry  map[uint64]uint32 // timers whose firing failed → not before
	// held counts, per timer, the hand-outs not yet done with (waiting
	// in the dispatcher's heap or with a worker): a timer the log sets
	// again while held stays queued for its holder, and one no one holds
	// is the dispatcher's again.
	held map[uint64]int

	ready   chan struct{}
	readyIn time.Duration
	wake    chan struct{}
	derived chan struct{}
	due     atomic.Int64
	fired   atomic.Int64
	pace    *pacer
}

// New returns a Scheduler over cfg, with its index read from the
// snapshot in cfg.Dir if there is a usable one. Run brings it to the
// log's head and fires timers.
func New(ctx context.Context, cfg Config) (*Scheduler, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 64
	}
	if cfg.Reconcilers <= 0 {
		cfg.Reconcilers = 16
	}
	if cfg.SnapshotEvery <= 0 {
		cfg.SnapshotEvery = 5 * time.Minute
	}
	if cfg.Horizon <= 0 {
		cfg.Horizon = 35 * 24 * time.Hour
	}
	if cfg.Poll <= 0 {
		cfg.Poll = time.Second
	}
	if cfg.Rules == nil {
		cfg.Rules = projections.Default()
	}
	if cfg.SMSCOf == nil {
		cfg.SMSCOf = func(string) string { return "" }
	}
	s := &Scheduler{cfg: cfg, idx: newIndex(0), newest: map[string]*planVersion{}, dirty: map[uint64]uint64{},
		busy: map[uint64]bool{}, retry: map[uint64]uint32{}, held: map[uint64]int{}, ready: make(chan struct{}), wake: make(chan struct{}, 1),
		derived: make(chan struct{}, 1), pace: newPacer(cfg)}
	if cfg.Dir != "" {
		if err := s.load(ctx); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Ready is closed once the index has caught up with the log's head as it
// was when Run started.
func (s *Scheduler) Ready() <-chan struct{} { return s.ready }

// ReadyIn is how long Run took to get ready, once it is.
func (s *Scheduler) ReadyIn() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.readyIn
}

// Stats is what the scheduler holds.
type Stats struct {
	// Pending counts the timers neither fired nor cancelled; Due those of
	// them due by the last look; Fired the timers fired since start.
	Pending, Due, Fired int
	// Dirty counts the contact streams whose timers are still to derive.
	Dirty int
	// IndexBytes is the memory of the index's table.
	IndexBytes int
	// Position is the last log position applied.
	Position uint64
}

// Stats reports what the scheduler holds.
func (s *Scheduler) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Stats{Pending: s.idx.n, Due: int(s.due.Load()), Fired: int(s.fired.Load()), Dirty: len(s.dirty),
		IndexBytes: s.idx.bytes(), Position: s.pos}
}

// Run follows the log into the index, derives the timers of the streams
// that need them and fires the due ones, until ctx ends or the store
// fails; it saves a snapshot on the way out.
func (s *Scheduler) Run(ctx context.Context) error {
	start := time.Now()
	head, err := s.cfg.Store.Head(ctx)
	if err != nil {
		return fmt.Errorf("schedule: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 4)
	run := func(name string, fn func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(ctx); err != nil && ctx.Err() == nil {
				errc <- fmt.Errorf("schedule: %s: %w", name, err)
				cancel()
			}
		}()
	}
	s.mu.Lock()
	from := s.pos + 1
	s.mu.Unlock()
	if s.cfg.Leaves != nil {
		if err := s.catchUpLeaves(ctx, head); err != nil {
			if ctx.Err() != nil && s.cfg.Dir != "" {
				// Stopped during the catch-up: what it read is an index
				// as of a log position like any other, worth keeping.
				return errors.Join(ctx.Err(), s.Snapshot())
			}
			return fmt.Errorf("schedule: %w", err)
		}
	}
	s.mu.Lock()
	follow := s.pos + 1
	if s.pos >= head {
		s.becomeLive(start)
	}
	s.mu.Unlock()
	run("follow", func(ctx context.Context) error {
		return s.cfg.Store.Follow(ctx, follow, func(e ledger.Event) error {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.apply(&e)
			if !s.live && e.Position >= head {
				s.becomeLive(start)
			}
			return nil
		})
	})
	select {
	case <-s.ready:
	case <-ctx.Done():
	}
	if ctx.Err() == nil && s.cfg.Dir != "" {
		// A long catch-up is saved at once, so a crash does not repeat it.
		s.mu.Lock()
		replayed := s.pos - min(s.pos, from-1)
		s.mu.Unlock()
		if replayed >= catchUpSave {
			if err := s.Snapshot(); err != nil {
				s.cfg.Log.Warn("schedule index snapshot", "err", err)
			}
		}
	}
	if ctx.Err() == nil {
		fire := make(chan slot)
		for range s.cfg.Workers {
			run("fire", func(ctx context.Context) error { return s.fireLoop(ctx, fire) })
		}
		run("dispatch", func(ctx context.Context) error { return s.dispatch(ctx, fire) })
		work := make(chan uint64)
		for range s.cfg.Reconcilers {
			run("derive", func(ctx context.Context) error { return s.deriveLoop(ctx, work) })
		}
		run("feed", func(ctx context.Context) error { return s.feed(ctx, work) })
		if s.cfg.Dir != "" {
			run("snapshot", func(ctx context.Context) error {
				t := time.NewTicker(s.cfg.SnapshotEvery)
				defer t.Stop()
				for {
					select {
					case <-ctx.Done():
						return nil
					case <-t.C:
						if err := s.Snapshot(); err != nil {
							return err
						}
					}
				}
			})
		}
	}
	<-ctx.Done()
	wg.Wait()
	close(errc)
	err = <-errc
	if s.cfg.Dir != "" {
		err = errors.Join(err, s.Snapshot())
	}
	return err
}

// indexed are the types of the events apply reads; the leaves of others
// are skipped undecoded.
var indexed = map[string]bool{
	ledger.TypeReminderPlanDefined: true, ledger.TypeReminderScheduled: true, ledger.TypeReminderDeferred: true,
	ledger.TypeReminderCancelled: true, ledger.TypeReminderRequested: true, ledger.TypeReminderFailed: true,
	ledger.TypeRelationshipStarted: true, ledger.TypeRelationshipRenewed: true, ledger.TypeRelationshipEnded: true,
	ledger.TypeConsentWithdrawn: true, ledger.TypeSuppressionListed: true, ledger.TypeSubjectErased: true,
}

// catchUpLeaves brings the index to head from the stored leaves, decoding
// only the events apply reads.
func (s *Scheduler) catchUpLeaves(ctx context.Context, head uint64) error {
	for {
		s.mu.Lock()
		from := s.pos + 1
		s.mu.Unlock()
		if from > head {
			return nil
		}
		ls, err := s.cfg.Leaves.ReadLeaves(ctx, from, 4096)
		if err != nil || len(ls) == 0 {
			return err
		}
		s.mu.Lock()
		for _, l := range ls {
			if h, ok := ledger.ReadLeafHead(l); ok && !indexed[string(h.Type)] {
				if h.Position > s.pos {
					s.pos, s.posID = h.Position, string(h.ID)
				}
				continue
			}
			e, err := ledger.ParseLeaf(l)
			if err != nil {
				s.mu.Unlock()
				return err
			}
			s.apply(&e)
		}
		s.mu.Unlock()
	}
}

// becomeLive marks the index caught up; s.mu is held.
func (s *Scheduler) becomeLive(start time.Time) {
	s.live, s.stale, s.rescan = true, true, true
	s.readyIn = time.Since(start)
	close(s.ready)
	s.poke(s.derived)
	s.poke(s.wake)
}

func (s *Scheduler) poke(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// streamKey is the dirty-set key of a contact stream.
func streamKey(tenant, subject string) uint64 { return timerKey(tenant, "\x00"+subject) }

// apply folds one event into the index; s.mu is held.
func (s *Scheduler) apply(e *ledger.Event) {
	if e.Position <= s.pos {
		return
	}
	s.pos, s.posID = e.Position, e.ID
	switch kind, _, _ := ledger.ParseStream(e.Stream, e.Tenant); kind {
	case ledger.StreamPlan:
		if e.Type != ledger.TypeReminderPlanDefined {
			return
		}
		var p ledger.ReminderPlanDefined
		if decode(e, &p) != nil {
			return
		}
		s.addPlan(&planVersion{Tenant: e.Tenant, Def: p, At: e.RecordedAt})
	case ledger.StreamContact:
		s.applyContact(e)
	}
}

func (s *Scheduler) addPlan(pv *planVersion) {
	w, err := windowOf(&pv.Def)
	if err != nil {
		return
	}
	pv.w, pv.idx = w, uint32(len(s.plans))
	s.plans = append(s.plans, pv)
	key := pv.Tenant + "\x00" + pv.Def.PlanID
	if old := s.newest[key]; old == nil || old.Def.Version < pv.Def.Version {
		s.newest[key] = pv
		if s.live {
			s.stale = true
			s.poke(s.derived)
		}
	}
}

// planIndex returns the index of a plan version, noPlan if unknown;
// s.mu is held.
func (s *Scheduler) planIndex(tenant, id string, version int) uint32 {
	if pv := s.newest[tenant+"\x00"+id]; pv != nil && pv.Def.Version == version {
		return pv.idx
	}
	// An older version: rare, as timers are moved to the latest.
	for i := len(s.plans) - 1; i >= 0; i-- {
		if p := s.plans[i]; p.Tenant == tenant && p.Def.PlanID == id && p.Def.Version == version {
			return p.idx
		}
	}
	return noPlan
}

// latest returns the latest version of a tenant's plan, nil if none.
func (s *Scheduler) latest(tenant, id string) *planVersion {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.latestLocked(tenant, id)
}

func (s *Scheduler) latestLocked(tenant, id string) *planVersion { return s.newest[tenant+"\x00"+id] }

func (s *Scheduler) applyContact(e *ledger.Event) {
	switch e.Type {
	case ledger.TypeReminderScheduled:
		var p ledger.ReminderScheduled
		if decode(e, &p) != nil {
			return
		}
		k := timerKey(e.Tenant, p.ReminderID)
		meta := metaOf(s.planIndex(e.Tenant, p.PlanID, p.PlanVersion), leadOf(p.DueAt))
		s.idx.put(k, e.Position, sec(p.DueAt), meta)
		if s.held[k] == 0 {
			// Set again after its holder was done with it (a worker
			// that derived it anew): nothing will hand it back.
			s.idx.release(k, e.Position)
		}
		delete(s.retry, k)
		s.derivedBy(e)
		if at := dueTicks(sec(p.DueAt), meta); s.live && (s.next == 0 || at < s.next) {
			s.next = at
			s.poke(s.wake)
		}
	case ledger.TypeReminderDeferred:
		var p ledger.ReminderDeferred
		if decode(e, &p) != nil {
			return
		}
		k := timerKey(e.Tenant, p.ReminderID)
		if i := s.idx.find(k); i >= 0 {
			s.idx.pos[i], s.idx.due[i] = e.Position, sec(p.NextAt)
			s.idx.meta[i] = metaOf(s.idx.meta[i]&planMask, leadOf(p.NextAt))
			if s.live {
				if s.cfg.Hooks.Deferred != nil {
					s.cfg.Hooks.Deferred(p.Rule)
				}
				if at := s.idx.at(i); s.next == 0 || at < s.next {
					s.next = at
				}
			}
		}
	case ledger.TypeReminderCancelled:
		var p ledger.ReminderCancelled
		if decode(e, &p) != nil {
			return
		}
		if s.idx.remove(timerKey(e.Tenant, p.ReminderID)) && s.live && s.cfg.Hooks.Cancelled != nil {
			s.cfg.Hooks.Cancelled(p.Reason)
		}
		s.derivedBy(e)
	case ledger.TypeReminderRequested:
		if id := reminderIDOf(e.Data); strings.HasPrefix(id, "plan-") {
			s.idx.remove(timerKey(e.Tenant, id))
		}
	case ledger.TypeReminderFailed:
		if id := reminderIDOf(e.Data); strings.HasPrefix(id, "plan-") {
			s.markDirty(streamKey(e.Tenant, e.Subject), e.Position)
		}
	case ledger.TypeRelationshipStarted:
		var p ledger.RelationshipStarted
		if decode(e, &p) == nil && p.Plan != "" {
			s.markDirty(streamKey(e.Tenant, e.Subject), e.Position)
		}
	case ledger.TypeRelationshipRenewed, ledger.TypeRelationshipEnded, ledger.TypeConsentWithdrawn,
		ledger.TypeSuppressionListed, ledger.TypeSubjectErased:
		s.markDirty(streamKey(e.Tenant, e.Subject), e.Position)
	}
}

// derivedBy clears a stream's dirty mark when e is an event the scheduler
// derived for it: derivations are appended at the revision they read, so
// everything the stream held before e was taken into account.
func (s *Scheduler) derivedBy(e *ledger.Event) {
	if e.Actor != Actor {
		return
	}
	k := streamKey(e.Tenant, e.Subject)
	if p, ok := s.dirty[k]; ok && p < e.Position && !s.busy[k] {
		delete(s.dirty, k)
	}
}

func (s *Scheduler) markDirty(k, pos uint64) {
	if _, ok := s.dirty[k]; !ok && !s.busy[k] {
		s.queue = append(s.queue, k)
	}
	s.dirty[k] = pos
	if s.live {
		s.poke(s.derived)
	}
}

// feed hands dirty streams to the derivation workers.
func (s *Scheduler) feed(ctx context.Context, work chan<- uint64) error {
	for {
		s.mu.Lock()
		if s.stale {
			s.stale = false
			s.markStale()
		}
		var k uint64
		found := false
		for len(s.queue) > 0 && !found {
			k, s.queue = s.queue[0], s.queue[1:]
			if _, ok := s.dirty[k]; ok && !s.busy[k] {
				s.busy[k], found = true, true
			}
		}
		if len(s.queue) == 0 {
			s.queue = nil // let a drained backlog's array go
		}
		s.mu.Unlock()
		if !found {
			select {
			case <-ctx.Done():
				return nil
			case <-s.derived:
			}
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case work <- k:
		}
	}
}

// markStale marks dirty the timers planned under a plan version that is
// no longer its plan's latest; s.mu is held.
func (s *Scheduler) markStale() {
	s.idx.each(func(t slot) {
		if t.plan != noPlan && int(t.plan) < len(s.plans) {
			pv := s.plans[t.plan]
			if s.latestLocked(pv.Tenant, pv.Def.PlanID) == pv {
				return
			}
		}
		s.markDirty(t.key, t.pos)
	})
}

func (s *Scheduler) deriveLoop(ctx context.Context, work <-chan uint64) error {
	for {
		var k uint64
		select {
		case <-ctx.Done():
			return nil
		case k = <-work:
		}
		s.mu.Lock()
		pos := s.dirty[k]
		s.mu.Unlock()
		err := s.deriveAt(ctx, pos)
		s.mu.Lock()
		delete(s.busy, k)
		if p, ok := s.dirty[k]; ok {
			if err == nil && p == pos {
				delete(s.dirty, k)
			} else {
				s.queue = append(s.queue, k)
				s.poke(s.derived)
			}
		}
		s.mu.Unlock()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			s.cfg.Log.Warn("derive timers", "err", err)
			if err := sleep(ctx, time.Second); err != nil {
				return nil
			}
		}
	}
}

// deriveAt derives the timers of the contact stream of the event at pos.
func (s *Scheduler) deriveAt(ctx context.Context, pos uint64) error {
	e, err := s.eventAt(ctx, pos)
	if err != nil {
		return err
	}
	_, err = s.Derive(ctx, e.Tenant, e.Subject)
	return err
}

func (s *Scheduler) eventAt(ctx context.Context, pos uint64) (ledger.Event, error) {
	evs, err := s.cfg.Store.ReadAll(ctx, pos, 1)
	if err != nil {
		return ledger.Event{}, err
	}
	if len(evs) == 0 || evs[0].Position != pos {
		return ledger.Event{}, fmt.Errorf("%w: position %d", ledger.ErrNotFound, pos)
	}
	return evs[0], nil
}

// Derive brings the timers of (tenant, subject) in line with its
// relationships and plans, and returns the stream as it then stands.
func (s *Scheduler) Derive(ctx context.Context, tenant, subject string) (*View, error) {
	for range 50 {
		v, err := Read(ctx, s.cfg.Store, tenant, subject)
		if err != nil {
			return nil, err
		}
		evs, err := s.derive(ctx, v)
		if err != nil || len(evs) == 0 {
			return v, err
		}
		_, err = s.cfg.Store.Append(ctx, ledger.ContactStream(tenant, subject), ledger.Exact(v.Revision), evs)
		if errors.Is(err, ledger.ErrWrongRevision) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("schedule: record timers: %w", err)
		}
	}
	return nil, fmt.Errorf("schedule: %w", notify.ErrContended)
}

// dispatch hands due timers to the firing workers at the paced rates.
func (s *Scheduler) dispatch(ctx context.Context, fire chan<- slot) error {
	var paced pacedHeap
	for {
		now := s.cfg.Now()
		// The table is scanned only when a timer may be due within the
		// current second, as a scan reads every slot: the scan takes the
		// whole second's timers, and each waits in paced for its own
		// time. Scanning each time the next timer fell due would scan up
		// to 128 times a second while timers fall due all through it.
		room := paced.Len() < 4*s.cfg.Workers
		horizon := uint64(reached(now)+1) << 7
		s.mu.Lock()
		if room && (s.rescan || (s.next != 0 && horizon >= s.next)) {
			s.rescan = false
			batch, next, due := s.idx.collect(ticks(now), horizon, 8192)
			s.next = next
			s.due.Store(int64(due))
			var keep []slot
			for _, t := range batch {
				if nb, ok := s.retry[t.key]; ok && nb > reached(now) {
					s.idx.release(t.key, t.pos)
					if at := uint64(nb) << 7; s.next == 0 || at < s.next {
						s.next = at
					}
					continue
				}
				keep = append(keep, t)
				s.held[t.key]++
			}
			lines := make([]string, len(keep))
			for i, t := range keep {
				lines[i] = s.lineOf(t.plan)
			}
			s.mu.Unlock()
			for i, t := range keep {
				at := instantTicks(t.at)
				if at.Before(now) {
					at = now
				}
				paced.push(paced1{at: s.pace.reserve(lines[i], at), s: t})
			}
		} else {
			s.mu.Unlock()
		}
		for paced.Len() > 0 && !paced.peek().at.After(now) {
			t := paced.pop().s
			select {
			case <-ctx.Done():
				return nil
			case fire <- t:
			}
		}
		// Sleep until the next paced timer, the next due one, a new
		// timer, or the poll interval (the clock may have moved).
		wait := s.cfg.Poll
		if paced.Len() > 0 {
			wait = min(wait, paced.peek().at.Sub(s.cfg.Now()))
		}
		s.mu.Lock()
		if paced.Len() < 4*s.cfg.Workers {
			if s.rescan {
				wait = 0
			} else if s.next != 0 {
				// The scan that takes it: at the start of its second.
				wait = min(wait, instant(uint32(s.next>>7)).Sub(s.cfg.Now()))
			}
		}
		s.mu.Unlock()
		if wait <= 0 {
			continue
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-s.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// lineOf is the line a plan version's reminders go from; s.mu is held.
func (s *Scheduler) lineOf(plan uint32) string {
	if plan == noPlan || int(plan) >= len(s.plans) || s.cfg.Notifier == nil {
		return ""
	}
	pv := s.plans[plan]
	return s.cfg.Notifier.LineOf(pv.Tenant, pv.Def.Line)
}

func (s *Scheduler) fireLoop(ctx context.Context, fire <-chan slot) error {
	for {
		var t slot
		select {
		case <-ctx.Done():
			return nil
		case t = <-fire:
		}
		acted, err := s.fire(ctx, t)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if !errors.Is(err, errNotReady) {
				s.cfg.Log.Warn("fire timer", "err", err)
			}
		}
		s.done(t, acted, err)
	}
}

// done takes back a timer a worker is done with: one it did not act on
// goes back to the dispatcher, as does one the log set again meanwhile
// (a new due time: its holder read the old one), which its pos tells.
func (s *Scheduler) done(t slot, acted bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.held[t.key]--; s.held[t.key] <= 0 {
		delete(s.held, t.key)
	}
	if err != nil {
		// Tried again in a while, in memory: the log holds nothing
		// new about it.
		s.retry[t.key] = sec(s.cfg.Now().Add(5 * time.Second))
	}
	i := s.idx.find(t.key)
	if i < 0 || s.held[t.key] > 0 || (acted && err == nil && s.idx.pos[i] == t.pos) {
		return
	}
	s.idx.meta[i] &^= queued
	if at := s.idx.at(i); s.next == 0 || at < s.next {
		s.next = at
	}
}

// fire fires one due timer, or defers or cancels it. acted reports whether
// it appended anything that the index will learn from the log.
func (s *Scheduler) fire(ctx context.Context, t slot) (acted bool, err error) {
	e, err := s.eventAt(ctx, t.pos)
	if err != nil {
		return false, err
	}
	rid := reminderIDOf(e.Data)
	v, err := Read(ctx, s.cfg.Store, e.Tenant, e.Subject)
	if err != nil {
		return false, err
	}
	tm := v.Timers[rid]
	now := s.cfg.Now()
	if tm == nil || !tm.Pending() || tm.DueAt.After(now) {
		// The log says otherwise than the index: it has not caught up, or
		// the clock went back. Nothing to do now.
		return false, nil
	}
	evs, err := s.derive(ctx, v)
	if err != nil {
		return false, err
	}
	if len(evs) > 0 {
		// The timer's relationship, plan or a cancelling fact moved since
		// it was scheduled: derive first; the timer is looked at again.
		_, err := s.cfg.Store.Append(ctx, ledger.ContactStream(v.Tenant, v.Subject), ledger.Exact(v.Revision), evs)
		if errors.Is(err, ledger.ErrWrongRevision) {
			return false, nil
		}
		touched := false
		for i := range evs {
			touched = touched || reminderIDOf(evs[i].Data) == rid
		}
		return touched && err == nil, err
	}
	r := v.Relationships[tm.Scheduled.ContractRef]
	pv := s.latest(v.Tenant, tm.Scheduled.PlanID)
	if r == nil || pv == nil {
		return false, fmt.Errorf("schedule: timer %s lost its relationship or plan", rid)
	}
	number, locs, err := s.numberOf(ctx, v, r)
	if err != nil {
		return false, err
	}
	if next := pv.w.next(now, locs); next.After(now) {
		return s.deferTo(ctx, v, tm, []string{RuleSendWindow},
			fmt.Sprintf("Outside the plan's send window %s-%s in the customer's time zone.", pv.Def.Window.Start, pv.Def.Window.End), next)
	}
	if s.cfg.Ready != nil && !s.cfg.Ready(s.cfg.Notifier.LineOf(v.Tenant, pv.Def.Line)) {
		return false, errNotReady
	}
	req := notify.Request{Tenant: v.Tenant, Actor: Actor, Number: number, Subject: v.Subject, ContractRef: r.ContractRef,
		TemplateID: pv.Def.TemplateID, TemplateVersion: pv.Def.TemplateVersion, Params: params(&pv.Def, r, locs[0]), Line: pv.Def.Line,
		ID: rid, Unseen: true, Defer: deferrable}
	res, err := s.cfg.Notifier.Remind(ctx, req)
	if err != nil {
		return false, err
	}
	if res.State == notify.StateDeferred {
		rules, text := denying(res.Reasons)
		q := notify.Query{Tenant: v.Tenant, Subject: v.Subject, Number: number, Channel: ledger.ChannelFlash,
			Purpose: ledger.PurposeService, Line: s.cfg.Notifier.LineOf(v.Tenant, pv.Def.Line), Contract: r.ContractRef}
		next, err := s.nextAllowed(ctx, q, now, pv.w, locs)
		if err != nil {
			return false, err
		}
		return s.deferTo(ctx, v, tm, rules, text, next)
	}
	s.fired.Add(1)
	if s.cfg.Hooks.Fired != nil {
		s.cfg.Hooks.Fired(res.State, s.cfg.Now().Sub(tm.DueAt))
	}
	return true, nil
}

var errNotReady = errors.New("schedule: the line's SMSC is not bound")

// RuleSendWindow is the rule a plan's send window defers by.
const RuleSendWindow = "send-window"

// passes reports whether rule's denial lifts with time alone
// (projections.Rule.Passes): a reminder only such rules deny is deferred,
// not denied.
func passes(rule string) bool {
	r, ok := projections.LookupRule(rule)
	return ok && r.Passes
}

func deferrable(reasons []ledger.Reason) bool {
	rules, _ := denying(reasons)
	if len(rules) == 0 {
		return false
	}
	for _, r := range rules {
		if !passes(r) {
			return false
		}
	}
	return true
}

// denying returns the rules that deny in reasons, and the first one's text.
func denying(reasons []ledger.Reason) (rules []string, text string) {
	for _, r := range reasons {
		if r.Effect == projections.Deny {
			if text == "" {
				text = r.Text
			}
			rules = append(rules, r.Rule)
		}
	}
	return rules, text
}

// nextAllowed finds the first moment after now, inside the send window,
// at which no rule that defers denies q: at hour boundaries, a day at a
// time once only the frequency caps deny. Past the horizon it gives the
// last moment tried.
func (s *Scheduler) nextAllowed(ctx context.Context, q notify.Query, now time.Time, w window, locs []*time.Location) (time.Time, error) {
	t := now
	limit := now.Add(s.cfg.Horizon)
	for t.Before(limit) {
		t = w.next(t.Truncate(time.Hour).Add(time.Hour), locs)
		q.At = t
		d, err := s.cfg.Decider.Decide(ctx, q)
		if err != nil {
			return time.Time{}, err
		}
		rules, _ := denying(d.Reasons)
		blocked, onlyCaps := false, true
		for _, r := range rules {
			if passes(r) {
				blocked = true
				onlyCaps = onlyCaps && r == projections.RuleFrequency
			}
		}
		if !blocked {
			return t, nil
		}
		if onlyCaps {
			// A cap frees a slot when a contact leaves its window:
			// try the next day's opening.
			lt := t.In(locs[0])
			y, m, d := lt.Date()
			t = w.next(time.Date(y, m, d+1, 0, 0, 0, 0, locs[0]), locs).Add(-time.Hour)
		}
	}
	return t, nil
}

// deferTo records that timer tm is deferred to next; it reports whether
// it appended the deferral.
func (s *Scheduler) deferTo(ctx context.Context, v *View, tm *Timer, rules []string, text string, next time.Time) (bool, error) {
	next = next.Truncate(time.Second)
	if !next.After(tm.DueAt) {
		next = tm.DueAt.Add(time.Second)
	}
	ev, err := ledger.NewEvent(v.Tenant, v.Subject, s.cfg.Now(), &ledger.ReminderDeferred{ReminderID: tm.ReminderID,
		Rule: strings.Join(rules, ","), Reason: text, DueAt: tm.DueAt, NextAt: next})
	if err != nil {
		return false, err
	}
	ev.ID, ev.Actor = eventID(v.Tenant, tm.ReminderID, "deferred", tm.DueAt.Unix()), Actor
	_, err = s.cfg.Store.Append(ctx, ledger.ContactStream(v.Tenant, v.Subject), ledger.Any(), []ledger.Event{ev})
	if errors.Is(err, ledger.ErrIDConflict) {
		// Deferred from this due time already (before a restart, or by a
		// worker that the log has not shown the index yet).
		return false, nil
	}
	return err == nil, err
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// paced1 is a due timer waiting for its line's and SMSC's turn.
type paced1 struct {
	at time.Time
	s  slot
}

type pacedHeap []paced1

func (h *pacedHeap) Len() int     { return len(*h) }
func (h *pacedHeap) peek() paced1 { return (*h)[0] }
func (h pacedHeap) less(i, j int) bool {
	return cmp.Or(h[i].at.Compare(h[j].at), cmp.Compare(h[i].s.at, h[j].s.at)) < 0
}

func (h *pacedHeap) push(p paced1) {
	*h = append(*h, p)
	a := *h
	for i := len(a) - 1; i > 0; {
		parent := (i - 1) / 2
		if !a.less(i, parent) {
			break
		}
		a[i], a[parent] = a[parent], a[i]
		i = parent
	}
}

func (h *pacedHeap) pop() paced1 {
	a := *h
	top := a[0]
	last := len(a) - 1
	a[0] = a[last]
	a = a[:last]
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < len(a) && a.less(l, m) {
			m = l
		}
		if r < len(a) && a.less(r, m) {
			m = r
		}
		if m == i {
			break
		}
		a[i], a[m] = a[m], a[i]
		i = m
	}
	*h = a
	if len(a) == 0 {
		*h = nil
	}
	return top
}

func decode(e *ledger.Event, v any) error { return json.Unmarshal(e.Data, v) }

// reminderIDOf reads the reminder id of a reminder event's payload.
func reminderIDOf(data []byte) string {
	var p struct {
		ReminderID string `json:"reminder_id"`
	}
	if json.Unmarshal(data, &p) != nil {
		return ""
	}
	return p.ReminderID
}

package projections

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heed/heed/ledger"
)

// Sentinel errors.
var (
	// ErrBehind means the projection did not reach the position a decision
	// needs within the wait: the runner is stuck or far behind.
	ErrBehind = errors.New("projections: projection is behind the log")
	// ErrUndecodable means an event's payload could not be read. The
	// projection stops before it (see Runner.Err) rather than decide
	// without it.
	ErrUndecodable = errors.New("projections: event cannot be decoded")
)

// Options tune a Runner. The zero value works: no snapshots, a 5 s wait.
type Options struct {
	// Dir holds the snapshot file; empty disables snapshots.
	Dir string
	// SnapshotEvery is the least time between snapshots while running
	// (default 1 minute); a snapshot that takes long spaces them more (see
	// snapshotDue).
	SnapshotEvery time.Duration
	// Wait bounds how long a decision waits for the projection to reach
	// the log's head (default 5 s).
	Wait time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Log is told of snapshots set aside (default: discarded).
	Log *slog.Logger
}

// caughtUpSave is how many events a projection must have applied since
// its last snapshot for reaching the log's head to save one at once: a
// long replay is not repeated after a crash.
var caughtUpSave uint64 = 100_000

// Runner keeps a State following a store, saves snapshots, and answers
// decisions with read-your-writes and point-in-time semantics.
type Runner struct {
	store   ledger.Store
	cfg     *Config
	opt     Options
	running atomic.Bool
	pos     atomic.Uint64
	snapMu  sync.Mutex    // one snapshot at a time
	saved   atomic.Int64  // unix nanoseconds of the last snapshot
	savedAt atomic.Uint64 // the position of the last snapshot
	cost    atomic.Int64  // how long the last snapshot took, in nanoseconds

	// unverified is the snapshot the state was restored from while its
	// arrays' checksum is unchecked (see verifySnapshot); no snapshot is
	// written from the state meanwhile, so damage is never saved again
	// under a good checksum. rebuilding is set while a damaged snapshot's
	// state is replaced by a replay: decisions are refused meanwhile.
	unverified atomic.Pointer[snapFile]
	rebuilding atomic.Bool

	mu sync.RWMutex
	st *State
	// waiters counts the WaitFor calls holding tick; tick is replaced (and
	// the old one closed) under mu's write lock, so a waiter reads it and
	// the position under the read lock: waiters do not queue on each
	// other, only beside the apply.
	waiters atomic.Int64
	tick    chan struct{}
	// failed is the error that stopped the projection (ErrUndecodable).
	failed atomic.Pointer[error]
}

// ErrRebuilding means the projection is being replayed from the log
// because its snapshot was found damaged; decisions wait for the replay.
var ErrRebuilding = errors.New("projections: rebuilding from the log after a damaged snapshot")

// NewRunner returns a runner under cfg, restored from the snapshot in
// opt.Dir when there is one taken under the same rules version (a
// snapshot under other rules is ignored: the state would differ) over
// this log: the log must hold the event the snapshot ends at, at its
// position. A snapshot that is damaged, or that the log does not hold, is
// set aside (renamed .bad) and the state replayed from position 1.
func NewRunner(store ledger.Store, cfg *Config, opt Options) (*Runner, error) {
	if opt.SnapshotEvery <= 0 {
		opt.SnapshotEvery = time.Minute
	}
	if opt.Wait <= 0 {
		opt.Wait = 5 * time.Second
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	r := &Runner{store: store, cfg: cfg, opt: opt, st: NewState(cfg), tick: make(chan struct{})}
	if opt.Dir != "" {
		st, sf, err := restore(opt.Dir, cfg)
		if err == nil {
			err = matchLog(context.Background(), store, st)
			if err != nil {
				sf.close()
			}
		}
		switch {
		case err == nil:
			r.st = st
			r.unverified.Store(sf)
			r.savedAt.Store(st.pos)
		case errors.Is(err, ErrNoSnapshot):
		case errors.Is(err, ErrSnapshot):
			opt.Log.Warn("projection snapshot set aside; replaying the log", "err", err)
			if err := setAside(filepath.Join(opt.Dir, snapshotFile)); err != nil {
				return nil, err
			}
		default:
			return nil, err
		}
	}
	r.pos.Store(r.st.pos)
	r.saved.Store(opt.Now().UnixNano())
	return r, nil
}

// matchLog checks that the log holds the event st ends at, at its
// position: a snapshot ahead of the log (a log restored from an older
// backup) or of another log would skip the events the log has there.
func matchLog(ctx context.Context, store ledger.Store, st *State) error {
	if st.pos == 0 {
		return nil
	}
	head, err := store.Head(ctx)
	if err != nil {
		return err
	}
	if st.pos > head {
		return fmt.Errorf("%w: the snapshot is at position %d, beyond the log's head %d", ErrSnapshot, st.pos, head)
	}
	evs, err := store.ReadAll(ctx, st.pos, 1)
	if err != nil {
		return err
	}
	if len(evs) == 0 || evs[0].Position != st.pos || evs[0].ID != st.posID {
		return fmt.Errorf("%w: the log holds another event at the snapshot's position %d", ErrSnapshot, st.pos)
	}
	return nil
}

// setAside renames a snapshot that must not be used, keeping it for a
// look, so that the next start does not meet it again.
func setAside(path string) error {
	if err := os.Rename(path, path+".bad"); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// Position is the last log position the projection has applied.
func (r *Runner) Position() uint64 { return r.pos.Load() }

// Err returns the error that stopped the projection, which then applies no
// further event (an event it cannot decode), or nil.
func (r *Runner) Err() error {
	if err := r.failed.Load(); err != nil {
		return *err
	}
	return nil
}

// Config returns the rules the runner decides under.
func (r *Runner) Config() *Config { return r.cfg }

// Run follows the log from the projection's position, applying each event
// and saving snapshots, until ctx ends or the store fails. It saves a last
// snapshot on the way out (see exitSave). A restored snapshot's records
// are checked meanwhile (see verifySnapshot).
func (r *Runner) Run(ctx context.Context) error {
	r.running.Store(true)
	defer r.running.Store(false)
	var wg sync.WaitGroup
	defer wg.Wait()
	// The saver and the check end with Run, whatever ends it.
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	if sf := r.unverified.Load(); sf != nil {
		wg.Go(func() {
			// The check reads the whole file: it waits for the projection
			// to reach the head first, so a start is not slowed by it.
			if head, err := r.store.Head(ctx); err == nil {
				for r.Position() < head && ctx.Err() == nil && r.Err() == nil {
					select {
					case <-ctx.Done():
					case <-time.After(50 * time.Millisecond):
					}
				}
			}
			r.verifySnapshot(ctx, sf)
		})
	}
	if r.opt.Dir != "" {
		wg.Go(func() { r.saver(ctx) })
	}
	err := r.store.Follow(ctx, r.Position()+1, func(e ledger.Event) error { return r.apply(&e) })
	if r.opt.Dir != "" && r.exitSave() {
		if serr := r.Snapshot(); serr != nil {
			r.opt.Log.Warn("projection snapshot", "err", serr)
			err = errors.Join(err, serr)
		}
	}
	return err
}

// exitSave says whether the snapshot on the way out is worth its time: a
// cheap one always is; a costly one only when the next start would
// otherwise replay many events, so a stop stays prompt.
func (r *Runner) exitSave() bool {
	return time.Duration(r.cost.Load()) < time.Second || r.Position()-r.savedAt.Load() >= caughtUpSave
}

// saver saves snapshots while Run follows the log: periodically while
// events come (see snapshotDue), and as soon as the head is reached after
// a long replay, so that a crash does not repeat it. A failed save is
// logged; the next start then replays from the last good one.
func (r *Runner) saver(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pos := r.Position()
		behind := pos - min(pos, r.savedAt.Load())
		if behind == 0 {
			continue
		}
		due := r.snapshotDue(r.opt.Now())
		if !due && behind >= caughtUpSave {
			head, err := r.store.Head(ctx)
			due = err == nil && pos >= head
		}
		if due {
			if err := r.Snapshot(); err != nil {
				r.opt.Log.Warn("projection snapshot", "err", err)
			}
		}
	}
}

// snapshotDue says whether a periodic snapshot is due at now: at least
// SnapshotEvery since the last, and twenty times as long as the last took,
// so a big state spends at most a twentieth of its time being saved.
func (r *Runner) snapshotDue(now time.Time) bool {
	since := time.Duration(now.UnixNano() - r.saved.Load())
	return since >= r.opt.SnapshotEvery && since >= 20*time.Duration(r.cost.Load())
}

// verifySnapshot checks the arrays of the snapshot the state was restored
// from. When they are damaged it sets the file aside and replays the log
// into a fresh state, refusing decisions until the replay has caught up:
// a damaged record could have lost an opt-out.
func (r *Runner) verifySnapshot(ctx context.Context, sf *snapFile) {
	err := sf.verify(ctx)
	sf.close()
	if ctx.Err() != nil {
		return // checked again at the next start
	}
	if err == nil {
		r.unverified.Store(nil)
		return
	}
	r.opt.Log.Error("projection snapshot damaged; replaying the log, decisions refused meanwhile", "err", err)
	r.rebuilding.Store(true)
	r.savedAt.Store(0) // no snapshot stands any more
	if err := setAside(sf.path); err != nil {
		r.opt.Log.Warn("projection snapshot", "err", err)
	}
	for ctx.Err() == nil {
		err := r.Rebuild(ctx)
		if err == nil {
			break
		}
		r.opt.Log.Error("projection rebuild", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
	if ctx.Err() != nil {
		return
	}
	r.unverified.Store(nil)
	r.rebuilding.Store(false)
	r.opt.Log.Info("projection rebuilt from the log", "position", r.Position())
}

// Rebuilding reports whether the projection is being replayed after a
// damaged snapshot; decisions fail with ErrRebuilding meanwhile.
func (r *Runner) Rebuilding() bool { return r.rebuilding.Load() }

func (r *Runner) apply(e *ledger.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e.Position <= r.st.pos {
		return nil // a rebuild already covered it
	}
	if err := r.Err(); err != nil {
		return err
	}
	if err := r.st.Apply(e); err != nil {
		if errors.Is(err, ErrUndecodable) {
			r.failed.Store(&err)
		}
		return err
	}
	r.pos.Store(r.st.pos)
	if r.waiters.Load() > 0 {
		close(r.tick)
		r.tick = make(chan struct{})
	}
	return nil
}

// CatchUp applies every stored event up to the log's head, for a runner
// that is not following the log (tools, replays, tests).
func (r *Runner) CatchUp(ctx context.Context) error {
	for {
		evs, err := r.store.ReadAll(ctx, r.Position()+1, 4096)
		if err != nil {
			return err
		}
		if len(evs) == 0 {
			return nil
		}
		for i := range evs {
			if err := r.apply(&evs[i]); err != nil {
				return err
			}
		}
	}
}

// WaitFor returns once the projection has applied position pos, or
// ErrBehind after the configured wait.
func (r *Runner) WaitFor(ctx context.Context, pos uint64) error {
	if r.Position() >= pos {
		return nil
	}
	if !r.running.Load() {
		if err := r.CatchUp(ctx); err != nil {
			return err
		}
	}
	timer := time.NewTimer(r.opt.Wait)
	defer timer.Stop()
	expired := false
	for {
		r.mu.RLock()
		if r.st.pos >= pos {
			r.mu.RUnlock()
			return nil
		}
		if expired {
			r.mu.RUnlock()
			return fmt.Errorf("%w: at %d, waiting for %d", ErrBehind, r.Position(), pos)
		}
		r.waiters.Add(1)
		ch := r.tick
		r.mu.RUnlock()
		select {
		case <-ch:
		case <-ctx.Done():
		case <-timer.C:
			expired = true
		}
		r.waiters.Add(-1)
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

// Decide answers q after the projection has applied q.After or, when it is
// zero, caught up with the log's current head, so it reflects every append
// acknowledged before the call.
func (r *Runner) Decide(ctx context.Context, q Query) (Decision, error) {
	if q.After > 0 {
		return r.DecideAfter(ctx, q, q.After)
	}
	head, err := r.store.Head(ctx)
	if err != nil {
		return Decision{}, err
	}
	return r.DecideAfter(ctx, q, head)
}

// DecideAfter answers q once the projection has applied position pos
// (e.g. the position of the caller's own append).
//
// A query whose At lies before the latest event the projection has seen
// is answered as of At: the streams of (tenant, subject), the subject and
// the line are re-read and only events recorded at or before At count.
func (r *Runner) DecideAfter(ctx context.Context, q Query, pos uint64) (Decision, error) {
	if r.rebuilding.Load() {
		return Decision{}, ErrRebuilding
	}
	if err := r.WaitFor(ctx, pos); err != nil {
		return Decision{}, err
	}
	r.mu.RLock()
	past := !q.At.IsZero() && q.At.Before(r.st.recorded)
	var trips []trip
	var over figures
	if past && q.Line != "" {
		if l := r.st.lines[q.Tenant][q.Line]; l != nil {
			trips = slices.Clone(l.Trips)
			over = l.Over
		}
	}
	var d Decision
	var err error
	if !past {
		// "Now" is never before the newest event the log has recorded: a
		// clock a little behind the store's (another instance's) must not
		// hide the contact or complaint it acknowledged.
		now := r.opt.Now()
		if r.st.recorded.After(now) {
			now = r.st.recorded
		}
		d, err = r.st.Decide(q, now)
	}
	// The scratch state of a past decision interns regions of its own;
	// it starts from a copy so the trips' region ids keep their meaning.
	var regions intern
	var others []string
	if past {
		regions = intern{IDs: maps.Clone(r.st.regions.IDs), Names: slices.Clone(r.st.regions.Names)}
		others = r.st.tenantsOf(q.Subject, q.Tenant)
	}
	r.mu.RUnlock()
	known := map[uint64]string{}
	if past {
		d, err = asOf(ctx, r.store, r.cfg, q, others, trips, over, regions, known)
	}
	if err != nil {
		return Decision{}, err
	}
	return d, resolve(ctx, r.store, &d, known)
}

// Rebuild replays the whole log from position 1 into fresh state and swaps
// it in; decisions keep being answered from the old state meanwhile.
func (r *Runner) Rebuild(ctx context.Context) error {
	fresh := NewState(r.cfg)
	catch := func(upto uint64) error {
		for fresh.pos < upto {
			evs, err := r.store.ReadAll(ctx, fresh.pos+1, 4096)
			if err != nil {
				return err
			}
			if len(evs) == 0 {
				return nil
			}
			for i := range evs {
				if evs[i].Position > upto {
					return nil
				}
				if err := fresh.Apply(&evs[i]); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := catch(r.Position()); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := catch(r.st.pos); err != nil {
		return err
	}
	if fresh.pos != r.st.pos {
		return fmt.Errorf("%w: rebuild reached %d, live state is at %d", ErrOrder, fresh.pos, r.st.pos)
	}
	r.st = fresh
	return nil
}

// Replay builds a runner under cfg from position 1 to the log's head
// without touching the log or any saved snapshot: "what would these rules
// have said". Its decisions, including past ones, use cfg.
func Replay(ctx context.Context, store ledger.Store, cfg *Config) (*Runner, error) {
	r, err := NewRunner(store, cfg, Options{})
	if err != nil {
		return nil, err
	}
	return r, r.CatchUp(ctx)
}

// asOf answers q from the events recorded at or before q.At. The contact
// streams of the other tenants that know the subject are read too, only
// so the daily cap across tenants counts their contacts; no reason cites
// their events.
func asOf(ctx context.Context, store ledger.Store, cfg *Config, q Query, others []string, trips []trip, over figures, regions intern, known map[uint64]string) (Decision, error) {
	var evs []ledger.Event
	var rev uint64
	streams := []string{ledger.ContactStream(q.Tenant, q.Subject), ledger.SubjectStream(q.Subject)}
	if q.Line != "" {
		streams = append(streams, ledger.LineStream(q.Tenant, q.Line))
	}
	for _, t := range others {
		streams = append(streams, ledger.ContactStream(t, q.Subject))
	}
	for _, stream := range streams {
		for from := uint64(1); ; {
			page, err := store.ReadStream(ctx, stream, from, 1024)
			if errors.Is(err, ledger.ErrNotFound) {
				break
			}
			if err != nil {
				return Decision{}, err
			}
			for _, e := range page {
				if !e.RecordedAt.After(q.At) {
					evs = append(evs, e)
					if e.Stream == ledger.ContactStream(q.Tenant, q.Subject) {
						rev = e.Revision
					}
				}
			}
			if len(page) < 1024 {
				break
			}
			from += uint64(len(page))
		}
	}
	slices.SortFunc(evs, func(a, b ledger.Event) int { return int64cmp(a.Position, b.Position) })
	st := NewState(cfg)
	st.regions, st.partial = regions, true
	for i := range evs {
		if err := st.apply(&evs[i]); err != nil {
			return Decision{}, err
		}
		st.pos = evs[i].Position
		known[evs[i].Position] = evs[i].ID
	}
	if q.Line != "" && len(trips) > 0 {
		st.line(q.Tenant, q.Line).Trips = trips
	}
	// The line's own figures are in the live state only: a crossing the log
	// knew of by At refuses, as it did then (Decide checks when it was known).
	if q.Line != "" && over.Known != 0 {
		if l := st.line(q.Tenant, q.Line); !l.Suspended {
			l.Over = over
		}
	}
	d, err := st.Decide(q, q.At)
	d.Revision = rev
	return d, err
}

func int64cmp(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// resolve fills each reason's event ids from their positions.
func resolve(ctx context.Context, store ledger.Store, d *Decision, known map[uint64]string) error {
	for i := range d.Reasons {
		rs := &d.Reasons[i]
		for _, p := range rs.Positions {
			id, ok := known[p]
			if !ok {
				evs, err := store.ReadAll(ctx, p, 1)
				if err != nil {
					return err
				}
				if len(evs) == 0 {
					return fmt.Errorf("%w: position %d", ledger.ErrNotFound, p)
				}
				id = evs[0].ID
				known[p] = id
			}
			rs.Events = append(rs.Events, id)
		}
	}
	return nil
}

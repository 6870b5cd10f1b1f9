// Package kurrent is a ledger.Store on a KurrentDB (EventStoreDB) cluster,
// through github.com/kurrent-io/KurrentDB-Client-Go, for deployments with
// more traffic than one machine carries.
//
// Each heed stream is a KurrentDB stream named with a prefix ("heed-" by
// default). Appends carry the heed event id as the KurrentDB event id and an
// exact expected revision, so the server itself makes a retried append a
// no-op. heed's gap-free global position is the rank of an event among the
// prefixed streams' events in $all order, which is the same for every
// reader; each Store keeps an in-memory index from position to $all
// position, built by a catch-up read at Open and kept current by a
// supervised, filtered $all subscription. See docs/kurrent.md.
package kurrent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/kurrent-io/KurrentDB-Client-Go/kurrentdb"

	"github.com/heed/heed/ledger"
)

// Options tune a Store. The zero value is usable.
type Options struct {
	// Prefix is prepended to every heed stream name in KurrentDB, and
	// selects heed's events in $all. Default "heed-".
	Prefix string
	// Retries is how many times a call is attempted when the node is
	// unavailable or not the leader. Default 6.
	Retries int
	// Backoff is the first pause between attempts, doubled each time up to
	// 2 s. Default 50 ms.
	Backoff time.Duration
	// Log receives the client library's messages at debug level; nil
	// discards them.
	Log *slog.Logger
	// IndexPath, if set, is a local bbolt file that keeps the position
	// index between runs, so a start reads only the part of $all written
	// since instead of all of it. heed serve puts it in --data.
	IndexPath string
	// IndexFlush is how often the index is written to IndexPath.
	// Default 1 s.
	IndexFlush time.Duration
}

func (o *Options) logf(msg string, args ...any) {
	if o.Log != nil {
		o.Log.Warn(msg, args...)
	}
}

func (o *Options) defaults() {
	if o.Prefix == "" {
		o.Prefix = "heed-"
	}
	if o.Retries <= 0 {
		o.Retries = 6
	}
	if o.Backoff <= 0 {
		o.Backoff = 50 * time.Millisecond
	}
	if o.IndexFlush <= 0 {
		o.IndexFlush = time.Second
	}
}

// Store is a ledger.Store on KurrentDB. It is safe for concurrent use.
type Store struct {
	opts Options
	cfg  *kurrentdb.Configuration

	cmu    sync.Mutex // guards client
	client *kurrentdb.Client

	imu     sync.RWMutex
	pos     []kurrentdb.Position // $all position of heed position p at pos[p-1]
	ids     map[uuid.UUID]uint64 // event id -> heed position
	seen    kurrentdb.Position   // the indexer has passed every event up to here
	started bool                 // seen is meaningful
	changed chan struct{}        // closed and replaced when the index grows
	pending []entry              // indexed, not yet in the index file
	idx     *indexFile           // nil without Options.IndexPath
	loaded  int64                // positions loaded from the index file at Open

	lmu      sync.RWMutex // orders enter against Close
	closed   atomic.Bool
	closing  chan struct{}  // closed when Close starts: no new calls, Follow ends
	inflight sync.WaitGroup // calls Close lets finish
	done     chan struct{}  // closed when the connection is going away
	stop     context.CancelFunc
	wg       sync.WaitGroup
	retries  atomic.Int64 // transient failures retried, for tests and metrics
	resubs   atomic.Int64 // subscriptions re-established after a drop
}

var _ ledger.Store = (*Store)(nil)

// Open connects to the cluster at url (kurrentdb://, esdb://, or their
// +discover forms; ?tls=false for an insecure node), reads heed's events
// in $all to build the position index, and starts following $all. It
// returns when the index has caught up with the log as it was at Open.
func Open(ctx context.Context, url string, opts Options) (*Store, error) {
	opts.defaults()
	cfg, err := configure(url, opts)
	if err != nil {
		return nil, err
	}
	c, err := kurrentdb.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("kurrent: client: %w", err)
	}
	s := &Store{opts: opts, cfg: cfg, client: c, ids: map[uuid.UUID]uint64{}, changed: make(chan struct{}), closing: make(chan struct{}), done: make(chan struct{})}
	if opts.IndexPath != "" {
		err = s.loadIndex(ctx, opts.IndexPath)
	}
	if err == nil {
		err = s.catchUp(ctx)
	}
	if err == nil {
		err = s.flushIndex()
	}
	if err != nil {
		if s.idx != nil {
			_ = s.idx.db.Close()
		}
		_ = c.Close()
		return nil, err
	}
	bg, stop := context.WithCancel(context.Background())
	s.stop = stop
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.follow(bg)
	}()
	if s.idx != nil {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.flushLoop(bg, opts.IndexFlush)
		}()
	}
	return s, nil
}

// Close stops the indexer and closes the connection. Calls after Close
// fail with ledger.ErrClosed.
//
// Calls in progress are given a few seconds to finish, so an append the
// server has committed is acknowledged to its caller rather than lost to
// the shutdown.
func (s *Store) Close() error {
	s.lmu.Lock()
	if s.closed.Load() {
		s.lmu.Unlock()
		return nil
	}
	s.closed.Store(true)
	close(s.closing)
	s.lmu.Unlock()
	drained := make(chan struct{})
	go func() {
		s.inflight.Wait()
		close(drained)
	}()
	select {
	case <-drained:
	case <-time.After(5 * time.Second):
	}
	close(s.done)
	s.stop()
	s.wg.Wait()
	ierr := s.closeIndex()
	s.cmu.Lock()
	defer s.cmu.Unlock()
	return errors.Join(s.client.Close(), ierr)
}

// enter admits a call unless the store is closed; the caller must call
// s.inflight.Done when it returns.
func (s *Store) enter() error {
	s.lmu.RLock()
	defer s.lmu.RUnlock()
	if s.closed.Load() {
		return ledger.ErrClosed
	}
	s.inflight.Add(1)
	return nil
}

// body is what a KurrentDB event's data holds: the event minus what the
// store assigns (stream, revision and position come from KurrentDB and the
// index; recorded_at is the server's created timestamp).
type body struct {
	Tenant     string          `json:"tenant,omitempty"`
	Subject    string          `json:"subject,omitempty"`
	OccurredAt time.Time       `json:"occurred_at"`
	Actor      string          `json:"actor,omitempty"`
	Schema     int             `json:"schema"`
	Data       json.RawMessage `json:"data"`
	PII        []byte          `json:"pii,omitempty"`
}

func (s *Store) name(stream string) string { return s.opts.Prefix + stream }

// encode turns a proposed event into KurrentDB event data.
func encode(e *ledger.Event) (kurrentdb.EventData, error) {
	id, err := uuid.Parse(e.ID)
	if err != nil {
		return kurrentdb.EventData{}, fmt.Errorf("%w: event id %q is not a UUID", ledger.ErrInvalid, e.ID)
	}
	b := body{Tenant: e.Tenant, Subject: e.Subject, OccurredAt: e.OccurredAt.UTC(), Actor: e.Actor, Schema: e.Schema, Data: e.Data, PII: e.PII}
	if len(b.Data) == 0 {
		b.Data = json.RawMessage("{}")
	}
	data, err := json.Marshal(&b)
	if err != nil {
		return kurrentdb.EventData{}, fmt.Errorf("%w: event %s: %v", ledger.ErrInvalid, e.ID, err)
	}
	return kurrentdb.EventData{EventID: id, EventType: e.Type, ContentType: kurrentdb.ContentTypeJson, Data: data}, nil
}

// decode rebuilds the ledger event stored as r at heed position pos, in
// canonical form so it re-encodes to the leaf the tree covers.
func (s *Store) decode(r *kurrentdb.RecordedEvent, pos uint64) (ledger.Event, error) {
	var b body
	if err := json.Unmarshal(r.Data, &b); err != nil {
		return ledger.Event{}, fmt.Errorf("%w: stored event %s is not a heed event: %v", ledger.ErrInvalid, r.EventID, err)
	}
	e := ledger.Event{
		ID: r.EventID.String(), Type: r.EventType, Tenant: b.Tenant, Subject: b.Subject,
		Stream: strings.TrimPrefix(r.StreamID, s.opts.Prefix), Revision: r.EventNumber + 1, Position: pos,
		OccurredAt: b.OccurredAt, RecordedAt: r.CreatedDate, Actor: b.Actor, Schema: b.Schema, Data: b.Data, PII: b.PII,
	}
	leaf, err := e.Leaf()
	if err != nil {
		return ledger.Event{}, err
	}
	return ledger.ParseLeaf(leaf)
}

func expectation(x ledger.Expected) kurrentdb.StreamState {
	switch {
	case x.IsAny():
		return kurrentdb.Any{}
	case x.Revision() == 0:
		return kurrentdb.NoStream{}
	default:
		return kurrentdb.StreamRevision{Value: x.Revision() - 1}
	}
}

// Append implements ledger.Store. A transient failure is retried with the
// same ids and expected revision, which the server treats as a no-op if
// the first attempt was written; an Any append checks the stream for its
// ids before it is repeated, since the server's idempotence is best effort
// there.
//
// The events come back Replayed when they were found stored before this
// call could have written them: their ids were in the index, or the server
// refused or skipped the write and the stream holds them. Found after an
// attempt whose outcome is unknown, they count as this call's. An append
// the server skips because another instance stored the same events a
// moment ago, before the index has them, is indistinguishable from a write
// and is not marked.
func (s *Store) Append(ctx context.Context, stream string, expected ledger.Expected, events []ledger.Event) ([]ledger.Event, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.inflight.Done()
	if stream == "" || len(events) == 0 {
		return nil, fmt.Errorf("%w: append needs a stream and at least one event", ledger.ErrInvalid)
	}
	proposed := make([]ledger.Event, len(events))
	data := make([]kurrentdb.EventData, len(events))
	seen := map[string]bool{}
	for i, e := range events {
		if err := ledger.Validate(&e); err != nil {
			return nil, err
		}
		if e.ID == "" {
			e.ID = ledger.NewID()
		}
		// JSON would replace invalid UTF-8, and the event read back would
		// no longer be the one proposed.
		for _, f := range []string{stream, e.Type, e.Tenant, e.Subject, e.Actor} {
			if !utf8.ValidString(f) {
				return nil, fmt.Errorf("%w: %s: envelope field is not valid UTF-8", ledger.ErrInvalid, e.Type)
			}
		}
		if seen[e.ID] {
			return nil, fmt.Errorf("%w: id %s appears twice in one append", ledger.ErrIDConflict, e.ID)
		}
		seen[e.ID] = true
		d, err := encode(&e)
		if err != nil {
			return nil, err
		}
		e.ID = d.EventID.String() // canonical spelling, as read back
		c, err := canonical(e)
		if err != nil {
			return nil, err
		}
		proposed[i], data[i] = c, d
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// An id this instance has indexed is either a retry of events in this
	// stream or a conflict; KurrentDB alone would accept it in another
	// stream, or write it twice when the expected revision matches.
	if s.known(data) {
		out, found, err := s.findStored(ctx, stream, proposed)
		if err != nil {
			return nil, err
		}
		if found {
			return replayed(out), nil
		}
		return nil, fmt.Errorf("%w: an id of this append is stored in another stream", ledger.ErrIDConflict)
	}
	var res *kurrentdb.WriteResult
	var stored []ledger.Event
	attempts := 0
	err := s.do(ctx, "append to "+stream, func(c *kurrentdb.Client, attempt int) error {
		attempts = attempt
		if attempt > 1 && expected.IsAny() {
			out, found, err := s.findStored(ctx, stream, proposed)
			if err != nil || found {
				stored = out
				return err
			}
		}
		r, err := c.AppendToStream(ctx, s.name(stream), kurrentdb.AppendToStreamOptions{StreamState: expectation(expected)}, data...)
		res = r
		return err
	})
	if stored != nil {
		return stored, nil
	}
	if errors.Is(err, ledger.ErrWrongRevision) {
		// A retry of events already stored is a no-op whatever revision
		// it expected; otherwise the revision was wrong.
		out, found, ferr := s.findStored(ctx, stream, proposed)
		if ferr != nil {
			return nil, ferr
		}
		if found {
			if attempts <= 1 {
				out = replayed(out)
			}
			return out, nil
		}
		rev, rerr := s.streamRevision(ctx, stream)
		if rerr != nil {
			return nil, err
		}
		if cerr := expected.Check(stream, rev); cerr != nil {
			return nil, cerr
		}
		// The stream reached the expected revision after the refusal.
		return nil, err
	}
	if err != nil {
		return nil, err
	}
	first := uint64(res.NextExpectedVersion) + 1 - uint64(len(proposed))
	if !expected.IsAny() {
		first = expected.Revision()
	}
	out, skipped, err := s.readBack(ctx, stream, first, proposed)
	if err != nil {
		return nil, err
	}
	if skipped && attempts <= 1 {
		out = replayed(out)
	}
	return out, nil
}

// replayed marks evs as found stored, not written by this append.
func replayed(evs []ledger.Event) []ledger.Event {
	for i := range evs {
		evs[i].Replayed = true
	}
	return evs
}

// canonical returns e as it will read back: its leaf decoded. Stored
// events are compared with proposals in this form, because the leaf
// encoding changes bytes SameContent compares (JSON's escaping of <, >
// and & in Data), so a raw proposal would not match its own stored copy.
func canonical(e ledger.Event) (ledger.Event, error) {
	leaf, err := e.Leaf()
	if err != nil {
		return ledger.Event{}, err
	}
	return ledger.ParseLeaf(leaf)
}

// known reports whether any of the events' ids is in the index.
func (s *Store) known(data []kurrentdb.EventData) bool {
	s.imu.RLock()
	defer s.imu.RUnlock()
	for _, d := range data {
		if _, ok := s.ids[d.EventID]; ok {
			return true
		}
	}
	return false
}

// readBack reads the events an append wrote (or found already written)
// from revision first (0-based), checks they are the proposed ones, and
// returns them with their positions. skipped means they are elsewhere in
// the stream: the server found them stored and wrote nothing.
func (s *Store) readBack(ctx context.Context, stream string, first uint64, proposed []ledger.Event) (_ []ledger.Event, skipped bool, _ error) {
	got, err := s.readStream(ctx, stream, first, len(proposed))
	if err != nil {
		return nil, false, err
	}
	match := len(got) == len(proposed)
	for i := 0; match && i < len(got); i++ {
		match = got[i].ID == proposed[i].ID
	}
	if !match {
		out, found, err := s.findStored(ctx, stream, proposed)
		if err != nil {
			return nil, false, err
		}
		if !found {
			return nil, false, fmt.Errorf("kurrent: append to %s succeeded but its events are not in the stream", stream)
		}
		return out, true, nil
	}
	for i := range got {
		if !ledger.SameContent(&got[i], &proposed[i]) {
			// The server matched the id and skipped the write.
			return nil, false, fmt.Errorf("%w: id %s", ledger.ErrIDConflict, got[i].ID)
		}
	}
	return got, false, nil
}

// findStored looks for the proposed ids in stream. found means every id is
// stored with the same content (the append is a retry); an id stored with
// other content, or a mix of stored and new ids, is ErrIDConflict.
func (s *Store) findStored(ctx context.Context, stream string, proposed []ledger.Event) ([]ledger.Event, bool, error) {
	all, err := s.readStream(ctx, stream, 0, 0)
	if errors.Is(err, ledger.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	byID := make(map[string]*ledger.Event, len(all))
	for i := range all {
		byID[all[i].ID] = &all[i]
	}
	var out []ledger.Event
	for i := range proposed {
		old, ok := byID[proposed[i].ID]
		if !ok {
			continue
		}
		if !ledger.SameContent(old, &proposed[i]) {
			return nil, false, fmt.Errorf("%w: id %s", ledger.ErrIDConflict, old.ID)
		}
		out = append(out, *old)
	}
	if len(out) == 0 {
		return nil, false, nil
	}
	if len(out) != len(proposed) {
		return nil, false, fmt.Errorf("%w: append to %s mixes stored and new ids", ledger.ErrIDConflict, stream)
	}
	return out, true, nil
}

// ReadStream implements ledger.Store.
func (s *Store) ReadStream(ctx context.Context, stream string, from uint64, limit int) ([]ledger.Event, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.inflight.Done()
	if from < 1 {
		from = 1
	}
	return s.readStream(ctx, stream, from-1, limit)
}

// readStream reads from 0-based revision first; limit <= 0 reads to the
// end.
func (s *Store) readStream(ctx context.Context, stream string, first uint64, limit int) ([]ledger.Event, error) {
	count := uint64(math.MaxInt32)
	if limit > 0 {
		count = uint64(limit)
	}
	var recs []*kurrentdb.RecordedEvent
	err := s.do(ctx, "read "+stream, func(c *kurrentdb.Client, _ int) error {
		recs = recs[:0]
		rs, err := c.ReadStream(ctx, s.name(stream), kurrentdb.ReadStreamOptions{From: kurrentdb.Revision(first)}, count)
		if err != nil {
			return err
		}
		return drain(rs, func(r *kurrentdb.RecordedEvent) { recs = append(recs, r) })
	})
	if err != nil {
		return nil, err
	}
	out := make([]ledger.Event, 0, len(recs))
	for _, r := range recs {
		pos, err := s.positionOf(ctx, r)
		if err != nil {
			return nil, err
		}
		e, err := s.decode(r, pos)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

// StreamRevision implements ledger.Store.
func (s *Store) StreamRevision(ctx context.Context, stream string) (uint64, error) {
	if err := s.enter(); err != nil {
		return 0, err
	}
	defer s.inflight.Done()
	return s.streamRevision(ctx, stream)
}

func (s *Store) streamRevision(ctx context.Context, stream string) (uint64, error) {
	var rev uint64
	err := s.do(ctx, "revision of "+stream, func(c *kurrentdb.Client, _ int) error {
		rs, err := c.ReadStream(ctx, s.name(stream), kurrentdb.ReadStreamOptions{Direction: kurrentdb.Backwards, From: kurrentdb.End{}}, 1)
		if err != nil {
			return err
		}
		defer rs.Close()
		ev, err := rs.Recv()
		if errors.Is(err, io.EOF) {
			rev = 0
			return nil
		}
		if code(err) == kurrentdb.ErrorCodeResourceNotFound {
			rev = 0
			return nil
		}
		if err != nil {
			return err
		}
		rev = ev.OriginalEvent().EventNumber + 1
		return nil
	})
	return rev, err
}

// ReadAll implements ledger.Store. It returns what this instance has
// indexed: an event appended through another instance appears once the
// subscription has delivered it, typically within milliseconds.
func (s *Store) ReadAll(ctx context.Context, from uint64, limit int) ([]ledger.Event, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.inflight.Done()
	if from < 1 {
		from = 1
	}
	s.imu.RLock()
	n := uint64(len(s.pos))
	if from > n {
		s.imu.RUnlock()
		return nil, nil
	}
	end := n
	if limit > 0 && from-1+uint64(limit) < end {
		end = from - 1 + uint64(limit)
	}
	want := append([]kurrentdb.Position(nil), s.pos[from-1:end]...)
	// Start at the previous heed event so the first wanted one is included
	// whether or not the server treats the position as inclusive.
	var start kurrentdb.Position
	if from > 1 {
		start = s.pos[from-2]
	}
	s.imu.RUnlock()

	out := make([]ledger.Event, 0, len(want))
	for len(out) < len(want) {
		page := uint64(min(len(want)-len(out)+64, 1024))
		var recs []*kurrentdb.RecordedEvent
		err := s.do(ctx, "read $all", func(c *kurrentdb.Client, _ int) error {
			recs = recs[:0]
			var at kurrentdb.AllPosition = kurrentdb.Start{}
			if start != (kurrentdb.Position{}) {
				at = start
			}
			rs, err := c.ReadAll(ctx, kurrentdb.ReadAllOptions{From: at}, page)
			if err != nil {
				return err
			}
			return drain(rs, func(r *kurrentdb.RecordedEvent) { recs = append(recs, r) })
		})
		if err != nil {
			return nil, err
		}
		progressed := false
		for _, r := range recs {
			if len(out) == len(want) {
				break
			}
			next := want[len(out)]
			if !strings.HasPrefix(r.StreamID, s.opts.Prefix) || less(r.Position, next) {
				continue
			}
			if r.Position != next {
				return nil, fmt.Errorf("%w: expected an event at %v, found one at %v", ErrDiverged, next, r.Position)
			}
			e, err := s.decode(r, from+uint64(len(out)))
			if err != nil {
				return nil, err
			}
			out = append(out, e)
			start, progressed = r.Position, true
		}
		if !progressed {
			if len(recs) == 0 || !less(start, recs[len(recs)-1].Position) {
				return nil, fmt.Errorf("%w: indexed events missing from $all", ErrDiverged)
			}
			start = recs[len(recs)-1].Position
		}
	}
	return out, nil
}

// Follow implements ledger.Store. It reads the index in order, so after
// the subscription behind it drops and resumes there is no gap and no
// duplicate; a read that fails transiently is repeated from the position
// after the last event handed to fn.
func (s *Store) Follow(ctx context.Context, from uint64, fn func(ledger.Event) error) error {
	if from < 1 {
		from = 1
	}
	wait := s.opts.Backoff
	for {
		if s.closed.Load() {
			return ledger.ErrClosed
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		batch, err := s.ReadAll(ctx, from, 256)
		if errors.Is(err, ErrUnavailable) {
			select {
			case <-time.After(wait):
			case <-ctx.Done():
				return ctx.Err()
			case <-s.closing:
				return ledger.ErrClosed
			}
			wait = min(2*wait, 2*time.Second)
			continue
		}
		if err != nil {
			return err
		}
		wait = s.opts.Backoff
		for _, e := range batch {
			if err := fn(e); err != nil {
				return err
			}
			from = e.Position + 1
		}
		if len(batch) > 0 {
			continue
		}
		s.imu.RLock()
		ready, changed := uint64(len(s.pos)) >= from, s.changed
		s.imu.RUnlock()
		if ready {
			continue
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		case <-s.closing:
			return ledger.ErrClosed
		}
	}
}

// Stats are counters for metrics.
type Stats struct {
	// Indexed is the number of heed events in this instance's index.
	Indexed int64
	// Retries counts calls repeated after a transient failure.
	Retries int64
	// Resubscriptions counts $all subscriptions re-established after a
	// drop.
	Resubscriptions int64
	// Loaded is how many of the indexed events came from the index file
	// at Open rather than from reading $all.
	Loaded int64
}

// Stats returns the store's counters.
func (s *Store) Stats() Stats {
	s.imu.RLock()
	n := len(s.pos)
	s.imu.RUnlock()
	return Stats{Indexed: int64(n), Retries: s.retries.Load(), Resubscriptions: s.resubs.Load(), Loaded: s.loaded}
}

// Head implements ledger.Store: the last position this instance has
// indexed.
func (s *Store) Head(ctx context.Context) (uint64, error) {
	if s.closed.Load() {
		return 0, ledger.ErrClosed
	}
	s.imu.RLock()
	defer s.imu.RUnlock()
	return uint64(len(s.pos)), nil
}

// drain reads rs to its end, handing on every recorded event, and closes it.
func drain(rs *kurrentdb.ReadStream, fn func(*kurrentdb.RecordedEvent)) error {
	defer rs.Close()
	for {
		ev, err := rs.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if ev.Event != nil {
			fn(ev.Event)
		}
	}
}

package notify

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/heed/heed/ledger"
)

// recovery is what start-up recovery folds out of the log: the reminders
// not settled as of position through. It is carried from one run to the
// next in NotifierCheckpoint events, so a restart reads only the events
// after the last checkpoint instead of the whole log.
type recovery struct {
	through uint64
	open    map[string]*track // tenant/reminder id
}

type track struct {
	ref
	dispatched, outcome bool
	ids                 []string
	at                  time.Time
	first               uint64 // position of its first event read
}

// apply folds one event into r. A settled reminder is dropped as soon as
// its final event is read, so r holds the unsettled ones, not every
// reminder in the log.
func (r *recovery) apply(e *ledger.Event) {
	id := reminderID(e)
	if id == "" {
		return
	}
	key := e.Tenant + "/" + id
	t := r.open[key]
	if t == nil {
		t = &track{ref: ref{tenant: e.Tenant, subject: e.Subject, id: id}, first: e.Position}
		r.open[key] = t
	}
	switch e.Type {
	case ledger.TypeReminderDispatched:
		t.dispatched = true
	case ledger.TypeReminderSubmitted:
		t.outcome = true
		var p ledger.ReminderSubmitted
		if json.Unmarshal(e.Data, &p) == nil {
			t.ids, t.at = p.MessageIDs, e.RecordedAt
		}
	case ledger.TypeReminderOutcomeUnknown:
		t.outcome = true
	case ledger.TypeReminderDenied, ledger.TypeReminderDelivered, ledger.TypeReminderFailed:
		// Settled: nothing to mark or track. A stray later event of it
		// starts a track that is neither dispatched nor holding ids,
		// which recovery ignores.
		delete(r.open, key)
	}
}

// LeafReader reads the log's stored canonical leaves undecoded.
type LeafReader interface {
	ReadLeaves(ctx context.Context, from uint64, limit int) ([][]byte, error)
}

// fold reads the log from r.through+1 through position to into r.
func (n *Notifier) fold(ctx context.Context, r *recovery, to uint64) error {
	const batch = 4096
	if n.cfg.Leaves != nil {
		return n.foldLeaves(ctx, r, to)
	}
	for from := r.through + 1; from <= to; {
		evs, err := n.cfg.Store.ReadAll(ctx, from, batch)
		if err != nil {
			return fmt.Errorf("notify: recover: %w", err)
		}
		for i := range evs {
			if evs[i].Position > to {
				break
			}
			r.apply(&evs[i])
		}
		if len(evs) == 0 {
			break
		}
		from = evs[len(evs)-1].Position + 1
	}
	r.through = to
	return nil
}

// foldLeaves is fold over the stored leaves: a leaf whose type is no
// reminder's is skipped unread.
func (n *Notifier) foldLeaves(ctx context.Context, r *recovery, to uint64) error {
	const batch = 4096
	for from := r.through + 1; from <= to; {
		ls, err := n.cfg.Leaves.ReadLeaves(ctx, from, batch)
		if err != nil {
			return fmt.Errorf("notify: recover: %w", err)
		}
		if len(ls) == 0 {
			break
		}
		for _, l := range ls {
			h, ok := ledger.ReadLeafHead(l)
			if ok {
				from = h.Position + 1
				if _, reminder := stateOf[string(h.Type)]; !reminder {
					continue
				}
			}
			e, err := ledger.ParseLeaf(l)
			if err != nil {
				return fmt.Errorf("notify: recover: %w", err)
			}
			from = e.Position + 1
			if e.Position > to {
				break
			}
			r.apply(&e)
		}
	}
	r.through = to
	return nil
}

// keep says whether recovery must still carry t at now: it was dispatched
// without a submit outcome (a restart marks it), or it awaits a receipt
// that may yet come. Anything else a later event re-creates as needed.
func (n *Notifier) keep(t *track, now time.Time) bool {
	return (t.dispatched && !t.outcome) || (len(t.ids) > 0 && now.Sub(t.at) < n.cfg.ReceiptTimeout)
}

// lastCheckpoint reads the recovery state of the newest checkpoint, or an
// empty one at position 0 when there is none or it lies beyond the log.
func (n *Notifier) lastCheckpoint(ctx context.Context, head uint64) (*recovery, error) {
	r := &recovery{open: map[string]*track{}}
	rev, err := n.cfg.Store.StreamRevision(ctx, ledger.NotifierStream)
	if err != nil || rev == 0 {
		return r, err
	}
	evs, err := n.cfg.Store.ReadStream(ctx, ledger.NotifierStream, rev, 1)
	if errors.Is(err, ledger.ErrNotFound) {
		return r, nil
	}
	if err != nil {
		return nil, fmt.Errorf("notify: read checkpoint: %w", err)
	}
	if len(evs) != 1 {
		return r, nil
	}
	var cp ledger.NotifierCheckpoint
	if err := json.Unmarshal(evs[0].Data, &cp); err != nil {
		return nil, fmt.Errorf("notify: checkpoint at %d: %w", evs[0].Position, err)
	}
	if cp.Through > head {
		// A log shorter than its checkpoint says has been replaced;
		// recover from the start rather than trust it.
		n.cfg.Log.Warn("notifier checkpoint beyond the log's head; reading the whole log", "through", cp.Through, "head", head)
		return r, nil
	}
	r.through = cp.Through
	for _, o := range cp.Open {
		t := &track{ref: ref{tenant: o.Tenant, subject: o.Subject, id: o.ReminderID}, dispatched: o.Dispatched,
			outcome: o.Outcome, ids: o.MessageIDs, first: o.First}
		if o.SubmittedAt != nil {
			t.at = *o.SubmittedAt
		}
		r.open[o.Tenant+"/"+o.ReminderID] = t
	}
	return r, nil
}

// checkpoint appends r as a NotifierCheckpoint, carrying what keep keeps.
// It writes nothing when r carries more than a checkpoint may hold.
func (n *Notifier) checkpoint(ctx context.Context, r *recovery, now time.Time) error {
	cp := ledger.NotifierCheckpoint{Through: r.through}
	for key, t := range r.open {
		if !n.keep(t, now) {
			delete(r.open, key)
			continue
		}
		o := ledger.OpenReminder{Tenant: t.tenant, Subject: t.subject, ReminderID: t.id, First: t.first,
			Dispatched: t.dispatched, Outcome: t.outcome, MessageIDs: t.ids}
		if !t.at.IsZero() {
			at := t.at
			o.SubmittedAt = &at
		}
		cp.Open = append(cp.Open, o)
	}
	if len(cp.Open) > ledger.MaxCheckpointOpen {
		n.cfg.Log.Warn("notifier checkpoint skipped: too many unsettled reminders", "open", len(cp.Open))
		return nil
	}
	slices.SortFunc(cp.Open, func(a, b ledger.OpenReminder) int { return cmp.Compare(a.First, b.First) })
	ev, err := ledger.NewEvent("", "", now, cp)
	if err != nil {
		return err
	}
	ev.Actor = "heed:recover"
	if _, err := n.cfg.Store.Append(ctx, ledger.NotifierStream, ledger.Any(), []ledger.Event{ev}); err != nil {
		return fmt.Errorf("notify: checkpoint: %w", err)
	}
	return nil
}

// Recover runs once at start-up, before requests are served. From the
// last checkpoint on (the whole log when there is none) it indexes the
// reminders still awaiting receipts, and marks every reminder that was
// dispatched but never got a submit outcome as ReminderOutcomeUnknown (it
// may or may not have reached the SMSC, so it is never resubmitted). It
// then writes a checkpoint if it read CheckpointEvery events or more. It
// returns how many reminders it marked.
func (n *Notifier) Recover(ctx context.Context) (int, error) {
	head, err := n.cfg.Store.Head(ctx)
	if err != nil {
		return 0, fmt.Errorf("notify: recover: %w", err)
	}
	r, err := n.lastCheckpoint(ctx, head)
	if err != nil {
		return 0, err
	}
	read := head - r.through
	if err := n.fold(ctx, r, head); err != nil {
		return 0, err
	}
	pending := make([]*track, 0, len(r.open))
	for _, t := range r.open {
		pending = append(pending, t)
	}
	slices.SortFunc(pending, func(a, b *track) int { return cmp.Compare(a.first, b.first) })
	marked := 0
	for _, t := range pending {
		switch {
		case t.dispatched && !t.outcome:
			ev, err := ledger.NewEvent(t.tenant, t.subject, n.cfg.Now(), ledger.ReminderOutcomeUnknown{
				ReminderID: t.id, Detail: "dispatched before a restart without a recorded submit outcome; not resubmitted",
			})
			if err != nil {
				return marked, err
			}
			ev.Actor = "heed:recover"
			ev.ID = eventID(t.tenant, t.id, ledger.TypeReminderOutcomeUnknown)
			if _, err := n.cfg.Store.Append(ctx, ledger.ContactStream(t.tenant, t.subject), ledger.Any(), []ledger.Event{ev}); err != nil {
				return marked, fmt.Errorf("notify: recover: %w", err)
			}
			n.state(StateUnknown)
			t.outcome = true
			marked++
		case len(t.ids) > 0 && n.cfg.Now().Sub(t.at) < n.cfg.ReceiptTimeout:
			// Still waiting for a receipt, which may resolve it (a later
			// one is matched from the log by Sweep).
			n.track(t.ref, t.ids, t.at)
		}
	}
	n.recMu.Lock()
	defer n.recMu.Unlock()
	n.rec = r
	if read >= n.cfg.CheckpointEvery {
		if err := n.checkpoint(ctx, r, n.cfg.Now()); err != nil {
			return marked, err
		}
	}
	return marked, nil
}

// Checkpoint reads the log on from the last checkpoint and, if
// CheckpointEvery events or more have come since, records a new one, so
// the next start-up reads only what follows. Call it periodically after
// Recover; it does nothing before.
func (n *Notifier) Checkpoint(ctx context.Context) error {
	n.recMu.Lock()
	defer n.recMu.Unlock()
	if n.rec == nil {
		return nil
	}
	head, err := n.cfg.Store.Head(ctx)
	if err != nil {
		return fmt.Errorf("notify: checkpoint: %w", err)
	}
	if head-n.rec.through < n.cfg.CheckpointEvery {
		return nil
	}
	if err := n.fold(ctx, n.rec, head); err != nil {
		return err
	}
	return n.checkpoint(ctx, n.rec, n.cfg.Now())
}

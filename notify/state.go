package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/heed/heed/ledger"
)

// reminderID returns the reminder id of an event of a reminder's
// lifecycle (stateOf), or "". A planned reminder's timer events
// (ReminderScheduled, ReminderDeferred, ReminderCancelled) carry its id
// too, but say nothing of whether it was requested.
func reminderID(e *ledger.Event) string {
	if _, ok := stateOf[e.Type]; !ok {
		return ""
	}
	var p struct {
		ReminderID string   `json:"reminder_id"`
		MessageIDs []string `json:"message_ids"`
	}
	if json.Unmarshal(e.Data, &p) != nil {
		return ""
	}
	return p.ReminderID
}

// stateOf maps a reminder event type to the state it puts the reminder in.
var stateOf = map[string]string{
	ledger.TypeReminderRequested:      StateRequested,
	ledger.TypeReminderDenied:         StateDenied,
	ledger.TypeReminderDispatched:     StateDispatched,
	ledger.TypeReminderSubmitted:      StateSubmitted,
	ledger.TypeReminderDelivered:      StateDelivered,
	ledger.TypeReminderFailed:         StateFailed,
	ledger.TypeReminderOutcomeUnknown: StateUnknown,
}

// existing reads a reminder's state from its contact stream; ok is false
// when the reminder was never requested.
func (n *Notifier) existing(ctx context.Context, tenant, subject, id string) (Result, bool, error) {
	evs, err := n.cfg.Store.ReadStream(ctx, ledger.ContactStream(tenant, subject), 1, 0)
	if errors.Is(err, ledger.ErrNotFound) {
		return Result{}, false, nil
	}
	if err != nil {
		return Result{}, false, fmt.Errorf("notify: read reminder: %w", err)
	}
	res := Result{ReminderID: id, Replayed: true}
	found := false
	for i := range evs {
		e := &evs[i]
		if reminderID(e) != id {
			continue
		}
		found = true
		res.Events = append(res.Events, *e)
		// A late event never moves a final state back.
		if res.State == StateDelivered || res.State == StateFailed || res.State == StateDenied {
			continue
		}
		res.State = stateOf[e.Type]
		p, err := ledger.Decode(e)
		if err != nil {
			continue
		}
		switch p := p.(type) {
		case *ledger.ReminderDenied:
			res.Reasons = p.Reasons
		case *ledger.ReminderDispatched:
			res.Reasons = p.Reasons
		case *ledger.ReminderSubmitted:
			res.MessageIDs = p.MessageIDs
		}
	}
	return res, found, nil
}

// Get returns a reminder's state and events. A reminder that has reached a
// final state is found through Config.Lookup by the id of its
// ReminderRequested event; without one, in the log, newest first: a few
// pages for a recent one, the whole log for an id that does not exist.
func (n *Notifier) Get(ctx context.Context, tenant, id string) (Result, error) {
	n.mu.Lock()
	o, ok := n.open[tenant+"/"+id]
	var subject string
	if ok {
		subject = o.subject
	} else {
		subject, ok = n.recent[tenant+"/"+id]
	}
	n.mu.Unlock()
	if !ok && n.cfg.Lookup != nil {
		e, found, err := n.cfg.Lookup.Lookup(ctx, eventID(tenant, id, ledger.TypeReminderRequested))
		if err != nil {
			return Result{}, fmt.Errorf("notify: get: %w", err)
		}
		if !found || e.Tenant != tenant {
			return Result{}, ErrNotFound
		}
		subject, ok = e.Subject, true
	}
	if !ok {
		// Finished or forgotten: the log knows its subject.
		err := n.find(ctx, func(e *ledger.Event) bool {
			if e.Tenant == tenant && reminderID(e) == id {
				subject = e.Subject
				return true
			}
			return false
		}, id)
		if err != nil {
			return Result{}, err
		}
		if subject == "" {
			return Result{}, ErrNotFound
		}
	}
	res, ok, err := n.existing(ctx, tenant, subject, id)
	if err != nil {
		return Result{}, err
	}
	if !ok {
		return Result{}, ErrNotFound
	}
	res.Replayed = false
	return res, nil
}

// find reads the log from its head backwards, one scan at a time, and
// stops at the first event for which match is true. Only reminder events
// whose payload contains one of the needles are offered to match.
func (n *Notifier) find(ctx context.Context, match func(*ledger.Event) bool, needles ...string) error {
	select {
	case n.scan <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-n.scan }()
	to, err := n.cfg.Store.Head(ctx)
	if err != nil {
		return fmt.Errorf("notify: find: %w", err)
	}
	const page = 4096
	for to > 0 {
		from := to - min(to, page) + 1
		evs, err := n.cfg.Store.ReadAll(ctx, from, int(to-from+1))
		if err != nil {
			return fmt.Errorf("notify: find: %w", err)
		}
		for i := len(evs) - 1; i >= 0; i-- {
			e := &evs[i]
			if !strings.HasPrefix(e.Type, "Reminder") || !containsAny(e.Data, needles) {
				continue
			}
			if match(e) {
				return nil
			}
		}
		to = from - 1
	}
	return nil
}

func containsAny(data []byte, needles []string) bool {
	for _, s := range needles {
		if bytes.Contains(data, []byte(s)) {
			return true
		}
	}
	return false
}

// track remembers which reminder a message id belongs to, for receipts.
func (n *Notifier) track(r ref, ids []string, at time.Time) {
	key := r.tenant + "/" + r.id
	o := &open{ref: r, ids: ids, at: at}
	n.hold(o)
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.open[key] != o {
		return
	}
	// A converted form never takes the place of another message's own id.
	for _, id := range ids {
		for i, k := range idForms(id) {
			if _, taken := n.byMessage[k]; i == 0 || !taken {
				n.byMessage[k] = key
			}
		}
	}
}

// idForms returns the forms under which a message id may come back: some
// SMSCs answer the submit in decimal and the receipt in hex, or the reverse.
func idForms(id string) []string {
	forms := []string{strings.ToLower(id)}
	if v, err := strconv.ParseUint(id, 10, 64); err == nil {
		forms = append(forms, strconv.FormatUint(v, 16))
	}
	if v, err := strconv.ParseUint(id, 16, 64); err == nil {
		forms = append(forms, strconv.FormatUint(v, 10))
	}
	return forms
}

// OnReceipt records a delivery receipt. A receipt for a message id that is
// not known is kept a while for its submit response (see Sweep).
func (n *Notifier) OnReceipt(ctx context.Context, rc Receipt) error {
	id := strings.ToLower(rc.MessageID)
	n.mu.Lock()
	key := n.byMessage[id]
	o := n.open[key]
	if o == nil {
		if len(n.early) < 100_000 {
			n.early[id] = earlyReceipt{rc, n.cfg.Now()}
		}
		n.mu.Unlock()
		return nil
	}
	// The first receipt of any part settles the reminder; the reminder is
	// forgotten once every part's receipt has come (or at the timeout).
	for i, part := range o.ids {
		forms := idForms(part)
		if !slices.Contains(forms, id) {
			continue
		}
		for _, f := range forms {
			if n.byMessage[f] == key {
				delete(n.byMessage, f)
			}
		}
		o.ids = slices.Delete(slices.Clone(o.ids), i, i+1)
		break
	}
	first := !o.settled
	o.settled = true
	if len(o.ids) == 0 {
		n.forget(key, o.subject)
	}
	n.mu.Unlock()
	if !first {
		return nil
	}
	return n.receipt(ctx, o.ref, rc)
}

// receipt appends what a receipt says about reminder r.
func (n *Notifier) receipt(ctx context.Context, r ref, rc Receipt) error {
	var payload any = ledger.ReminderDelivered{ReminderID: r.id, MessageID: rc.MessageID}
	state := StateDelivered
	if !rc.Delivered {
		payload = ledger.ReminderFailed{ReminderID: r.id, MessageID: rc.MessageID, Status: rc.Status}
		state = StateFailed
	}
	ev, err := ledger.NewEvent(r.tenant, r.subject, n.cfg.Now(), payload)
	if err != nil {
		return err
	}
	ev.Actor = "smsc:" + n.cfg.SMSCOf(r.line)
	ev.ID = eventID(r.tenant, r.id, "receipt")
	if _, err := n.cfg.Store.Append(ctx, ledger.ContactStream(r.tenant, r.subject), ledger.Any(), []ledger.Event{ev}); err != nil {
		return fmt.Errorf("notify: record receipt: %w", err)
	}
	n.state(state)
	return nil
}

// replayEarly processes receipts that arrived before their submit response.
func (n *Notifier) replayEarly(ctx context.Context, ids []string) {
	for _, id := range ids {
		var found []Receipt
		n.mu.Lock()
		for _, f := range idForms(id) {
			if rc, ok := n.early[f]; ok {
				found = append(found, rc.Receipt)
				delete(n.early, f)
			}
		}
		n.mu.Unlock()
		for _, rc := range found {
			if err := n.OnReceipt(ctx, rc); err != nil {
				n.cfg.Log.Error("late receipt", "err", err)
			}
		}
	}
}

// Sweep forgets submitted reminders whose receipt has not come within
// ReceiptTimeout, and matches the receipts that have waited EarlyWait for
// a submit response against the log, as after a restart: a receipt for a
// reminder that is not settled yet is recorded, others are dropped. It
// also records the multi-part inbound messages whose parts stopped coming.
// Call it periodically; it returns how many receipts it recorded.
func (n *Notifier) Sweep(ctx context.Context) (int, error) {
	n.flushInbound(ctx)
	now := n.cfg.Now()
	var late []Receipt
	var needles []string
	n.mu.Lock()
	for k, o := range n.open {
		// Also whatever a failed append left behind: no reminder stays
		// between its request and its submit outcome for a day.
		if now.Sub(o.at) >= n.cfg.ReceiptTimeout {
			n.drop(k)
		}
	}
	for k, rc := range n.early {
		if now.Sub(rc.at) >= n.cfg.EarlyWait {
			delete(n.early, k)
			late = append(late, rc.Receipt)
			needles = append(needles, idForms(rc.MessageID)...)
		}
	}
	n.mu.Unlock()
	if len(late) == 0 {
		return 0, nil
	}
	want := map[string][]int{} // message id form → indexes in late
	for i, rc := range late {
		for _, f := range idForms(rc.MessageID) {
			want[f] = append(want[f], i)
		}
	}
	// An id in the submit's form wins over one that only matches once
	// converted between decimal and hex.
	exact := make([]*ref, len(late))
	converted := make([]*ref, len(late))
	left := len(late)
	quoted := make([]string, 0, 2*len(needles))
	for _, s := range needles {
		quoted = append(quoted, `"`+s+`"`)
		if u := strings.ToUpper(s); u != s {
			quoted = append(quoted, `"`+u+`"`)
		}
	}
	err := n.find(ctx, func(e *ledger.Event) bool {
		if e.Type != ledger.TypeReminderSubmitted {
			return false
		}
		var p ledger.ReminderSubmitted
		if json.Unmarshal(e.Data, &p) != nil {
			return false
		}
		r := &ref{tenant: e.Tenant, subject: e.Subject, id: p.ReminderID}
		for _, id := range p.MessageIDs {
			for _, f := range idForms(id) {
				for _, i := range want[f] {
					switch {
					case strings.EqualFold(late[i].MessageID, id):
						if exact[i] == nil {
							exact[i] = r
							left--
						}
					case converted[i] == nil:
						converted[i] = r
					}
				}
			}
		}
		return left == 0
	}, quoted...)
	refs := exact
	for i := range refs {
		if refs[i] == nil {
			refs[i] = converted[i]
		}
	}
	if err != nil {
		return 0, err
	}
	recorded := 0
	for i, r := range refs {
		if r == nil {
			continue // not ours, or older than the log
		}
		res, ok, err := n.existing(ctx, r.tenant, r.subject, r.id)
		if err != nil {
			return recorded, err
		}
		if !ok || res.State == StateDelivered || res.State == StateFailed || res.State == StateDenied {
			continue
		}
		n.finish(r.tenant, r.id)
		if err := n.receipt(ctx, *r, late[i]); err != nil {
			return recorded, err
		}
		recorded++
	}
	return recorded, nil
}

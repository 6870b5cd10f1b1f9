package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/heed/heed/ledger"
)

// reminderID returns the reminder id of a reminder event, or "".
func reminderID(e *ledger.Event) string {
	if !strings.HasPrefix(e.Type, "Reminder") {
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

// Get returns a reminder's state and events.
func (n *Notifier) Get(ctx context.Context, tenant, id string) (Result, error) {
	n.mu.Lock()
	subject, ok := n.reminders[tenant+"/"+id]
	n.mu.Unlock()
	if !ok {
		return Result{}, ErrNotFound
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

// track remembers which reminder a message id belongs to, for receipts.
func (n *Notifier) track(r ref, ids []string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, id := range ids {
		for _, k := range idForms(id) {
			n.byMessage[k] = r
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

// OnReceipt records a delivery receipt. A receipt for a message whose
// submit response has not been processed yet is kept until it is.
func (n *Notifier) OnReceipt(ctx context.Context, rc Receipt) error {
	n.mu.Lock()
	r, ok := n.byMessage[strings.ToLower(rc.MessageID)]
	if !ok {
		if len(n.early) < 100_000 {
			n.early[strings.ToLower(rc.MessageID)] = rc
		}
		n.mu.Unlock()
		return nil
	}
	key := r.tenant + "/" + r.id
	if _, done := n.resolved[key]; done {
		n.mu.Unlock()
		return nil
	}
	n.resolved[key] = struct{}{}
	for _, f := range idForms(rc.MessageID) {
		delete(n.byMessage, f)
	}
	n.mu.Unlock()

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
				found = append(found, rc)
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

// Recover reads the whole log once at start-up: it indexes reminders and
// the message ids still awaiting receipts, and marks every reminder that
// was dispatched but never got a submit outcome as ReminderOutcomeUnknown
// (it may or may not have reached the SMSC, so it is never resubmitted).
// It returns how many reminders it marked.
func (n *Notifier) Recover(ctx context.Context) (int, error) {
	type track struct {
		ref
		dispatched, outcome, final bool
		ids                        []string
	}
	all := map[string]*track{}
	var order []string
	from := uint64(1)
	for {
		evs, err := n.cfg.Store.ReadAll(ctx, from, 4096)
		if err != nil {
			return 0, fmt.Errorf("notify: recover: %w", err)
		}
		for i := range evs {
			e := &evs[i]
			id := reminderID(e)
			if id == "" {
				continue
			}
			key := e.Tenant + "/" + id
			t := all[key]
			if t == nil {
				t = &track{ref: ref{tenant: e.Tenant, subject: e.Subject, id: id}}
				all[key] = t
				order = append(order, key)
			}
			switch e.Type {
			case ledger.TypeReminderDispatched:
				t.dispatched = true
			case ledger.TypeReminderSubmitted:
				t.outcome = true
				var p ledger.ReminderSubmitted
				if json.Unmarshal(e.Data, &p) == nil {
					t.ids = p.MessageIDs
				}
			case ledger.TypeReminderOutcomeUnknown:
				t.outcome = true
			case ledger.TypeReminderDenied, ledger.TypeReminderDelivered, ledger.TypeReminderFailed:
				t.outcome, t.final = true, true
			}
		}
		if len(evs) < 4096 {
			break
		}
		from = evs[len(evs)-1].Position + 1
	}
	marked := 0
	for _, key := range order {
		t := all[key]
		n.mu.Lock()
		n.reminders[key] = t.subject
		if t.final {
			n.resolved[key] = struct{}{}
		}
		n.mu.Unlock()
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
			marked++
		case len(t.ids) > 0 && !t.final:
			// Still waiting for a receipt, which may resolve it.
			n.track(t.ref, t.ids)
		}
	}
	return marked, nil
}

// OnInbound handles a mobile-originated message. If it is an opt-out
// keyword sent to a known line, it appends ConsentWithdrawn for the tenant
// that owns the line and returns the event; otherwise it returns nil.
func (n *Notifier) OnInbound(ctx context.Context, in Inbound) (*ledger.Event, error) {
	word := strings.ToUpper(strings.Trim(strings.TrimSpace(in.Text), ".!。！ "))
	if !n.keywords[word] {
		return nil, nil
	}
	tenant, ok := n.cfg.Lines[in.To]
	if !ok {
		n.cfg.Log.Warn("opt-out to a line no tenant owns", "line", in.To)
		return nil, nil
	}
	subject := n.cfg.Pseudonym(in.From)
	ev, err := ledger.NewEvent(tenant, subject, n.cfg.Now(), ledger.ConsentWithdrawn{
		All: true, Via: "sms_keyword", RawText: in.Text, Line: in.To,
	})
	if err != nil {
		return nil, err
	}
	ev.Actor = "sms:" + in.To
	var stored []ledger.Event
	err = n.Exclusive(subject, func() error {
		var err error
		stored, err = n.cfg.Store.Append(ctx, ledger.ContactStream(tenant, subject), ledger.Any(), []ledger.Event{ev})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("notify: record opt-out: %w", err)
	}
	n.cfg.Log.Info("opt-out recorded", "tenant", tenant, "line", in.To, "position", stored[0].Position)
	return &stored[0], nil
}

package schedule

import (
	"context"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/heed/heed/ledger"
	"github.com/heed/heed/notify"
)

// Relationship is a contract as its contact stream tells it, for its
// planned reminders.
type Relationship struct {
	ContractRef string
	Product     string
	StartsAt    time.Time
	// ExpiresAt is the current expiry: the start's, or the latest
	// renewal's.
	ExpiresAt time.Time
	Plan      string
	// Started is the RelationshipStarted event; its sealed PII holds the
	// number.
	Started ledger.Event
	// DefinedAt is when heed recorded the start or the latest renewal.
	DefinedAt time.Time
	// Ended is the id of the RelationshipEnded event, if it ended.
	Ended string
	// Renewed is the id of the latest RelationshipRenewed event.
	Renewed string
}

// Timer is one planned reminder and what became of it.
type Timer struct {
	ReminderID string
	Scheduled  ledger.ReminderScheduled
	// DueAt is when it falls due: as scheduled, or as last deferred.
	DueAt time.Time
	// Pos is the position of the event that set DueAt.
	Pos       uint64
	Deferrals []ledger.ReminderDeferred
	Cancelled *ledger.ReminderCancelled
	// CancelledAt is when the cancellation was recorded.
	CancelledAt time.Time
	// State is the reminder's state once fired (notify.State*), empty
	// while it has not fired.
	State string
	// FiredAt is when its reminder was requested.
	FiredAt time.Time
	// Failure is the status of a final failure, and FailedAt its time.
	Failure  string
	FailedAt time.Time
}

// Pending reports whether the timer has neither fired nor been cancelled.
func (t *Timer) Pending() bool { return t.State == "" && t.Cancelled == nil }

// View is what one (tenant, subject) contact stream says about planned
// reminders: its relationships, timers and the facts that cancel them.
type View struct {
	Tenant, Subject string
	// Revision is the stream's revision when read.
	Revision      uint64
	Relationships map[string]*Relationship
	Timers        map[string]*Timer
	// Order lists the timers' reminder ids in the order first scheduled.
	Order []string

	optOut, grant uint64 // positions
	optOutID      string
	lists         map[string]string // tenant suppression list → the event that listed
	erased        uint64
	erasedID      string
	recorded      map[string]time.Time // event id → when recorded
	numbers       map[string]opened    // contract → its number, once opened
}

// blocker returns the cancellation reason that stops every reminder of
// the stream, and the id of the event that set it; "" when none does.
func (v *View) blocker() (reason, event string) {
	if v.optOut > v.grant {
		return ledger.CancelOptedOut, v.optOutID
	}
	if len(v.lists) > 0 {
		l := slices.Sorted(maps.Keys(v.lists))[0]
		return ledger.CancelSuppressed, v.lists[l]
	}
	return "", ""
}

// stateOf is the reminder state each reminder event puts a reminder in.
var stateOf = map[string]string{
	ledger.TypeReminderRequested:      notify.StateRequested,
	ledger.TypeReminderDenied:         notify.StateDenied,
	ledger.TypeReminderDispatched:     notify.StateDispatched,
	ledger.TypeReminderSubmitted:      notify.StateSubmitted,
	ledger.TypeReminderDelivered:      notify.StateDelivered,
	ledger.TypeReminderFailed:         notify.StateFailed,
	ledger.TypeReminderOutcomeUnknown: notify.StateUnknown,
}

func final(state string) bool {
	return state == notify.StateDelivered || state == notify.StateFailed || state == notify.StateDenied
}

// Read reads the contact stream of (tenant, subject) into a View.
func Read(ctx context.Context, st ledger.Store, tenant, subject string) (*View, error) {
	evs, err := st.ReadStream(ctx, ledger.ContactStream(tenant, subject), 1, 0)
	if err != nil && !errors.Is(err, ledger.ErrNotFound) {
		return nil, fmt.Errorf("schedule: read contact stream: %w", err)
	}
	v := &View{Tenant: tenant, Subject: subject, Relationships: map[string]*Relationship{}, Timers: map[string]*Timer{},
		lists: map[string]string{}, recorded: map[string]time.Time{}}
	for i := range evs {
		v.add(&evs[i])
	}
	return v, nil
}

func (v *View) add(e *ledger.Event) {
	v.Revision = e.Revision
	if e.Tenant != v.Tenant {
		return
	}
	v.recorded[e.ID] = e.RecordedAt
	if state, ok := stateOf[e.Type]; ok && e.Type != ledger.TypeReminderFailed {
		// Of a reminder's other events only the id matters here: their
		// reasons, texts and message ids are not decoded. They are most of
		// a contact stream by its last reminder, which is read whole on
		// every firing.
		v.reached(reminderIDOf(e.Data), state, e)
		return
	}
	p, err := ledger.Decode(e)
	if err != nil {
		return
	}
	switch p := p.(type) {
	case *ledger.RelationshipStarted:
		r := &Relationship{ContractRef: p.ContractRef, Product: p.Product, StartsAt: p.StartsAt, Plan: p.Plan,
			Started: *e, DefinedAt: e.RecordedAt}
		if p.ExpiresAt != nil {
			r.ExpiresAt = *p.ExpiresAt
		}
		v.Relationships[p.ContractRef] = r
	case *ledger.RelationshipRenewed:
		if r := v.Relationships[p.ContractRef]; r != nil {
			r.ExpiresAt, r.DefinedAt, r.Renewed = p.ExpiresAt, e.RecordedAt, e.ID
		}
	case *ledger.RelationshipEnded:
		if r := v.Relationships[p.ContractRef]; r != nil {
			r.Ended = e.ID
		}
	case *ledger.ConsentWithdrawn:
		if p.All || (covers(p.Purposes, ledger.PurposeService) &&
			(covers(p.Channels, ledger.ChannelFlash) || covers(p.Channels, ledger.ChannelSMS))) {
			v.optOut, v.optOutID = e.Position, e.ID
		}
	case *ledger.ConsentGranted:
		if slices.Contains(p.Purposes, ledger.PurposeService) && slices.Contains(p.Channels, ledger.ChannelFlash) {
			v.grant = e.Position
		}
	case *ledger.SuppressionListed:
		if p.Scope == "tenant" {
			v.lists[p.List] = e.ID
		}
	case *ledger.SuppressionLifted:
		if p.Scope == "tenant" {
			delete(v.lists, p.List)
		}
	case *ledger.SubjectErased:
		v.erased, v.erasedID = e.Position, e.ID
	case *ledger.ReminderScheduled:
		t := v.Timers[p.ReminderID]
		if t == nil {
			t = &Timer{ReminderID: p.ReminderID}
			v.Timers[p.ReminderID] = t
			v.Order = append(v.Order, p.ReminderID)
		}
		if t.Pending() {
			t.Scheduled, t.DueAt, t.Pos = *p, p.DueAt, e.Position
		}
	case *ledger.ReminderDeferred:
		if t := v.Timers[p.ReminderID]; t != nil && t.Pending() {
			t.Deferrals = append(t.Deferrals, *p)
			t.DueAt, t.Pos = p.NextAt, e.Position
		}
	case *ledger.ReminderCancelled:
		if t := v.Timers[p.ReminderID]; t != nil && t.Pending() {
			t.Cancelled, t.CancelledAt = p, e.RecordedAt
		}
	case *ledger.ReminderFailed:
		if t := v.reached(p.ReminderID, notify.StateFailed, e); t != nil {
			t.Failure, t.FailedAt = p.Status, e.OccurredAt
		}
	}
}

// reached moves timer id to state, unless its reminder has already ended,
// and returns the timer it moved.
func (v *View) reached(id, state string, e *ledger.Event) *Timer {
	t := v.Timers[id]
	if t == nil || final(t.State) {
		return nil
	}
	if t.State == "" {
		t.FiredAt = e.RecordedAt
	}
	t.State = state
	return t
}

func covers(list []string, v string) bool { return len(list) == 0 || slices.Contains(list, v) }

// ReminderID is the id of the reminder planned offset before a contract's
// expiry: the same whichever plan version plans it, so that a new version
// reschedules a timer not yet fired instead of adding a second one, and
// a new expiry (a renewal) plans new ones.
func ReminderID(tenant, subject, contract string, expires time.Time, offset string) string {
	h := sha256.Sum256([]byte(tenant + "\x00" + subject + "\x00" + contract + "\x00" +
		expires.UTC().Format(time.RFC3339Nano) + "\x00" + offset))
	return "plan-" + strings.ToLower(b32.EncodeToString(h[:15]))
}

// retryID is the id of a planned reminder's n-th retry.
func retryID(id string, n int) string { return fmt.Sprintf("%s-r%d", id, n) }

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

var idSpace = uuid.MustParse("8f0c2a4e-7b1d-4c93-a6e5-3d9b0f17c2a8")

// eventID derives the id of a scheduler event, so that deriving the same
// timers again after a crash appends nothing new.
func eventID(tenant, reminder string, parts ...any) string {
	return uuid.NewSHA1(idSpace, fmt.Appendf(nil, "%s\x00%s\x00%v", tenant, reminder, parts)).String()
}

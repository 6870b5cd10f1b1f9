// Package report computes the auditor's reports over a period of the log:
// contacts per line and channel, denials by rule, complaint rates per line
// against the suspension threshold, opt-outs and any contact after them,
// and reminders by outcome.
//
// A period is a range of ledger time (each event's recorded_at), the order
// the log and its signed checkpoints attest, so a report reads one
// contiguous run of positions, found by binary search, and nothing else.
// A report is a pure function of the log up to the head it names.
package report

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

// ErrPeriod means a period ends before it starts.
var ErrPeriod = errors.New("report: the period ends before it starts")

// Rules are the numbers of the line-suspension rule that complaint rates
// are measured against.
type Rules struct {
	// Threshold is the complaint rate that suspends a line.
	Threshold float64 `json:"threshold"`
	// MinContacts is the fewest contacts for the rate to count.
	MinContacts int `json:"min_contacts"`
	// WindowDays is the rule's own window, shown beside the period's rate.
	WindowDays int `json:"window_days"`
}

// Report is every figure of one period.
type Report struct {
	From time.Time `json:"from" doc:"start of the period, inclusive (ledger time)"`
	To   time.Time `json:"to" doc:"end of the period, exclusive (ledger time)"`
	// First and Last are the positions the period covers; Last < First
	// when no event was recorded in it.
	First  uint64 `json:"first"`
	Last   uint64 `json:"last"`
	Head   uint64 `json:"head" doc:"the log's head when the report was computed"`
	Events int    `json:"events" doc:"events recorded in the period"`
	Rules  Rules  `json:"rules"`

	Contacts   []Contacts `json:"contacts" doc:"contacts per tenant, line and channel"`
	Denials    []Denials  `json:"denials" doc:"refused reminders and calls per rule"`
	Complaints []LineRate `json:"complaints" doc:"complaint rate per line against the suspension threshold"`
	OptOuts    []OptOut   `json:"opt_outs" doc:"each opt-out, with the contacts it covers made after it"`
	Reminders  []Outcome  `json:"reminders" doc:"reminders requested or scheduled in the period, by their state at its end"`
}

// Contacts counts the contacts of one line on one channel: ContactMade
// events, and flash reminders the SMSC accepted (ReminderSubmitted).
type Contacts struct {
	Tenant   string `json:"tenant"`
	Line     string `json:"line"`
	Channel  string `json:"channel"`
	Contacts int    `json:"contacts"`
}

// Denials counts refusals that named Rule: a refusal naming two rules
// counts for each.
type Denials struct {
	Rule      string `json:"rule"`
	Reminders int    `json:"reminders" doc:"ReminderDenied events naming the rule"`
	Calls     int    `json:"calls" doc:"CallRefused events naming the rule"`
}

// LineRate is one line's complaints over its contacts in the period.
type LineRate struct {
	Tenant     string  `json:"tenant"`
	Line       string  `json:"line" doc:"empty for complaints that named no line"`
	Contacts   int     `json:"contacts"`
	Complaints int     `json:"complaints"`
	Rate       float64 `json:"rate" doc:"complaints / contacts; 0 without contacts"`
	// AtThreshold: the rate reaches the threshold; Over: and the contacts
	// reach the minimum, so the rule would suspend the line.
	AtThreshold bool `json:"at_threshold"`
	Over        bool `json:"over"`
	Suspensions int  `json:"suspensions" doc:"LineSuspended events in the period"`
}

// OptOut is a ConsentWithdrawn and the contacts it covers that happened
// after it: recorded after it, at a business time at or after its own, of
// a channel and purpose it withdrew, and not after a new consent that
// covers them. There should be none.
type OptOut struct {
	Position   uint64    `json:"position"`
	ID         string    `json:"id"`
	Tenant     string    `json:"tenant" doc:"empty: every business"`
	Subject    string    `json:"subject"`
	OccurredAt time.Time `json:"occurred_at"`
	Via        string    `json:"via"`
	Channels   []string  `json:"channels" doc:"empty: every channel"`
	Purposes   []string  `json:"purposes" doc:"empty: every purpose"`
	// ContactsAfter counts the contacts after it within the period.
	ContactsAfter int `json:"contacts_after"`
	// LastContact is the position and business time of the last of them,
	// and Gap the time from the opt-out to it.
	LastContact   uint64     `json:"last_contact,omitempty"`
	LastContactAt *time.Time `json:"last_contact_at,omitempty"`
	GapSeconds    float64    `json:"gap_seconds,omitempty"`
}

// Outcome counts the reminders requested or scheduled in the period by the
// state they were in at its end.
type Outcome struct {
	Outcome   string `json:"outcome"`
	Reminders int    `json:"reminders"`
}

// Reminder outcomes, in the order a report lists them.
const (
	Requested = "requested"
	Denied    = "denied"
	// Dispatched: handed to the gateway, no answer from the SMSC yet.
	Dispatched = "dispatched"
	// Submitted: the SMSC accepted it, no delivery receipt yet.
	Submitted = "submitted"
	Delivered = "delivered"
	Failed    = "failed"
	Unknown   = "outcome unknown"
	// Scheduled and Deferred: a renewal timer not yet fired; Cancelled:
	// one ended without sending.
	Scheduled = "scheduled"
	Deferred  = "deferred"
	Cancelled = "cancelled"
)

// Outcomes lists the reminder outcomes in report order.
var Outcomes = []string{Delivered, Submitted, Dispatched, Failed, Unknown, Denied, Cancelled, Deferred, Scheduled, Requested}

var outcomeOf = map[string]string{
	ledger.TypeReminderRequested:      Requested,
	ledger.TypeReminderDenied:         Denied,
	ledger.TypeReminderDispatched:     Dispatched,
	ledger.TypeReminderSubmitted:      Submitted,
	ledger.TypeReminderDelivered:      Delivered,
	ledger.TypeReminderFailed:         Failed,
	ledger.TypeReminderOutcomeUnknown: Unknown,
	ledger.TypeReminderScheduled:      Scheduled,
	ledger.TypeReminderDeferred:       Deferred,
	ledger.TypeReminderCancelled:      Cancelled,
}

// Seek returns the first position whose event was recorded at or after t,
// or head+1 if none was. It reads O(log head) events, relying on recorded
// times growing with position, as every store assigns them.
func Seek(ctx context.Context, st ledger.Store, head uint64, t time.Time) (uint64, error) {
	lo, hi := uint64(1), head+1
	for lo < hi {
		mid := lo + (hi-lo)/2
		evs, err := st.ReadAll(ctx, mid, 1)
		if err != nil {
			return 0, err
		}
		if len(evs) == 0 {
			return 0, fmt.Errorf("%w: no event at position %d below head %d", ledger.ErrNotFound, mid, head)
		}
		if evs[0].RecordedAt.Before(t) {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo, nil
}

// batch is how many events a report reads at once.
const batch = 1000

// Compute reads the events recorded in [from, to) up to the log's current
// head and returns their report.
func Compute(ctx context.Context, st ledger.Store, from, to time.Time, rules Rules) (Report, error) {
	if to.Before(from) {
		return Report{}, ErrPeriod
	}
	head, err := st.Head(ctx)
	if err != nil {
		return Report{}, err
	}
	return ComputeAt(ctx, st, head, from, to, rules)
}

// ComputeAt is Compute over the log up to head.
func ComputeAt(ctx context.Context, st ledger.Store, head uint64, from, to time.Time, rules Rules) (Report, error) {
	if to.Before(from) {
		return Report{}, ErrPeriod
	}
	first, err := Seek(ctx, st, head, from)
	if err != nil {
		return Report{}, err
	}
	a := newAggregate(st)
	r := Report{From: from.UTC(), To: to.UTC(), First: first, Last: first - 1, Head: head, Rules: rules}
	for pos := first; pos <= head; {
		evs, err := st.ReadAll(ctx, pos, int(min(batch, head-pos+1)))
		if err != nil {
			return Report{}, err
		}
		if len(evs) == 0 {
			break
		}
		for i := range evs {
			e := &evs[i]
			if !e.RecordedAt.Before(to) {
				pos = head + 1
				break
			}
			if err := a.add(ctx, e); err != nil {
				return Report{}, fmt.Errorf("report: event at %d: %w", e.Position, err)
			}
			r.Last, r.Events = e.Position, r.Events+1
			pos = e.Position + 1
		}
	}
	a.finish(&r, rules)
	return r, nil
}

// Channel-purpose pairs as bits, for what a withdrawal or a grant covers.
func pairs(channels, purposes []string, all bool) uint8 {
	var m uint8
	for ci, c := range ledger.Channels {
		if !all && len(channels) > 0 && !slices.Contains(channels, c) {
			continue
		}
		for pi, p := range ledger.Purposes {
			if !all && len(purposes) > 0 && !slices.Contains(purposes, p) {
				continue
			}
			m |= 1 << (ci*len(ledger.Purposes) + pi)
		}
	}
	return m
}

func pair(channel, purpose string) uint8 {
	ci, pi := slices.Index(ledger.Channels, channel), slices.Index(ledger.Purposes, purpose)
	if ci < 0 || pi < 0 {
		return 0
	}
	return 1 << (ci*len(ledger.Purposes) + pi)
}

type lineKey struct{ tenant, line string }

type contactKey struct{ tenant, line, channel string }

type reminderKey struct{ tenant, id string }

// watch follows one opt-out through the rest of the period.
type watch struct {
	out    *OptOut
	covers uint8
	lifted map[string]uint8 // by tenant: pairs a later consent allowed again
}

type aggregate struct {
	st         ledger.Store
	contacts   map[contactKey]int
	denials    map[string]*Denials
	lines      map[lineKey]*LineRate
	optOuts    []*OptOut
	watches    map[string][]*watch // by subject
	reminders  map[reminderKey]string
	order      []reminderKey
	dispatched map[reminderKey]string // line of each dispatched reminder
}

func newAggregate(st ledger.Store) *aggregate {
	return &aggregate{st: st, contacts: map[contactKey]int{}, denials: map[string]*Denials{}, lines: map[lineKey]*LineRate{},
		watches: map[string][]*watch{}, reminders: map[reminderKey]string{}, dispatched: map[reminderKey]string{}}
}

func (a *aggregate) line(tenant, line string) *LineRate {
	k := lineKey{tenant, line}
	l := a.lines[k]
	if l == nil {
		l = &LineRate{Tenant: tenant, Line: line}
		a.lines[k] = l
	}
	return l
}

func (a *aggregate) deny(reasons []ledger.Reason, call bool) {
	seen := map[string]bool{}
	for _, r := range reasons {
		if r.Effect != "deny" || seen[r.Rule] {
			continue
		}
		seen[r.Rule] = true
		d := a.denials[r.Rule]
		if d == nil {
			d = &Denials{Rule: r.Rule}
			a.denials[r.Rule] = d
		}
		if call {
			d.Calls++
		} else {
			d.Reminders++
		}
	}
}

// contact counts a contact and checks it against the opt-outs before it.
func (a *aggregate) contact(e *ledger.Event, line, channel, purpose string) {
	a.contacts[contactKey{e.Tenant, line, channel}]++
	a.line(e.Tenant, line).Contacts++
	p := pair(channel, purpose)
	for _, w := range a.watches[e.Subject] {
		if w.out.Tenant != "" && w.out.Tenant != e.Tenant {
			continue
		}
		if w.covers&p == 0 || w.lifted[e.Tenant]&p != 0 || e.OccurredAt.Before(w.out.OccurredAt) {
			continue
		}
		w.out.ContactsAfter++
		if w.out.LastContactAt == nil || !e.OccurredAt.Before(*w.out.LastContactAt) {
			at := e.OccurredAt.UTC()
			w.out.LastContact, w.out.LastContactAt = e.Position, &at
			w.out.GapSeconds = at.Sub(w.out.OccurredAt).Seconds()
		}
	}
}

func (a *aggregate) reminder(e *ledger.Event, id string) {
	k := reminderKey{e.Tenant, id}
	out := outcomeOf[e.Type]
	if _, ok := a.reminders[k]; !ok {
		// A reminder requested or scheduled before the period is not this
		// period's.
		if out != Requested && out != Denied && out != Dispatched && out != Scheduled {
			return
		}
		a.order = append(a.order, k)
	}
	a.reminders[k] = out
}

// submittedLine finds the line of a reminder dispatched before the period.
func (a *aggregate) submittedLine(ctx context.Context, e *ledger.Event, id string) (string, error) {
	if l, ok := a.dispatched[reminderKey{e.Tenant, id}]; ok {
		return l, nil
	}
	evs, err := a.st.ReadStream(ctx, e.Stream, 1, int(e.Revision))
	if err != nil {
		return "", err
	}
	for i := len(evs) - 1; i >= 0; i-- {
		if evs[i].Type != ledger.TypeReminderDispatched {
			continue
		}
		var d ledger.ReminderDispatched
		if err := json.Unmarshal(evs[i].Data, &d); err == nil && d.ReminderID == id {
			return d.Line, nil
		}
	}
	return "", nil
}

func (a *aggregate) add(ctx context.Context, e *ledger.Event) error {
	switch e.Type {
	case ledger.TypeContactMade, ledger.TypeComplaintReceived, ledger.TypeConsentWithdrawn, ledger.TypeConsentGranted,
		ledger.TypeReminderDenied, ledger.TypeCallRefused, ledger.TypeLineSuspended:
	default:
		if _, ok := outcomeOf[e.Type]; !ok {
			return nil
		}
	}
	p, err := ledger.Decode(e)
	if err != nil {
		return err
	}
	switch p := p.(type) {
	case *ledger.ContactMade:
		a.contact(e, p.Line, p.Channel, p.Purpose)
	case *ledger.ComplaintReceived:
		a.line(e.Tenant, p.Line).Complaints++
	case *ledger.LineSuspended:
		a.line(e.Tenant, p.Line).Suspensions++
	case *ledger.CallRefused:
		a.deny(p.Reasons, true)
	case *ledger.ConsentGranted:
		m := pairs(p.Channels, p.Purposes, false)
		for _, w := range a.watches[e.Subject] {
			if w.out.Tenant == "" || w.out.Tenant == e.Tenant {
				w.lifted[e.Tenant] |= m
			}
		}
	case *ledger.ConsentWithdrawn:
		o := &OptOut{Position: e.Position, ID: e.ID, Tenant: e.Tenant, Subject: e.Subject, OccurredAt: e.OccurredAt.UTC(),
			Via: p.Via, Channels: nonNil(p.Channels), Purposes: nonNil(p.Purposes)}
		if p.All {
			o.Channels, o.Purposes = []string{}, []string{}
		}
		a.optOuts = append(a.optOuts, o)
		a.watches[e.Subject] = append(a.watches[e.Subject], &watch{out: o, covers: pairs(p.Channels, p.Purposes, p.All), lifted: map[string]uint8{}})
	case *ledger.ReminderRequested:
		a.reminder(e, p.ReminderID)
	case *ledger.ReminderDenied:
		a.deny(p.Reasons, false)
		a.reminder(e, p.ReminderID)
	case *ledger.ReminderDispatched:
		a.dispatched[reminderKey{e.Tenant, p.ReminderID}] = p.Line
		a.reminder(e, p.ReminderID)
	case *ledger.ReminderSubmitted:
		line, err := a.submittedLine(ctx, e, p.ReminderID)
		if err != nil {
			return err
		}
		a.contact(e, line, ledger.ChannelFlash, ledger.PurposeService)
		a.reminder(e, p.ReminderID)
	case *ledger.ReminderDelivered:
		a.reminder(e, p.ReminderID)
	case *ledger.ReminderFailed:
		a.reminder(e, p.ReminderID)
	case *ledger.ReminderOutcomeUnknown:
		a.reminder(e, p.ReminderID)
	case *ledger.ReminderScheduled:
		a.reminder(e, p.ReminderID)
	case *ledger.ReminderDeferred:
		a.reminder(e, p.ReminderID)
	case *ledger.ReminderCancelled:
		a.reminder(e, p.ReminderID)
	}
	return nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func (a *aggregate) finish(r *Report, rules Rules) {
	r.Contacts = make([]Contacts, 0, len(a.contacts))
	for k, n := range a.contacts {
		r.Contacts = append(r.Contacts, Contacts{Tenant: k.tenant, Line: k.line, Channel: k.channel, Contacts: n})
	}
	slices.SortFunc(r.Contacts, func(x, y Contacts) int {
		return cmp.Or(cmp.Compare(x.Tenant, y.Tenant), cmp.Compare(x.Line, y.Line),
			cmp.Compare(slices.Index(ledger.Channels, x.Channel), slices.Index(ledger.Channels, y.Channel)), cmp.Compare(x.Channel, y.Channel))
	})
	r.Denials = make([]Denials, 0, len(a.denials))
	for _, d := range a.denials {
		r.Denials = append(r.Denials, *d)
	}
	slices.SortFunc(r.Denials, func(x, y Denials) int {
		return cmp.Or(cmp.Compare(y.Reminders+y.Calls, x.Reminders+x.Calls), cmp.Compare(x.Rule, y.Rule))
	})
	r.Complaints = make([]LineRate, 0, len(a.lines))
	for _, l := range a.lines {
		if l.Contacts > 0 {
			l.Rate = float64(l.Complaints) / float64(l.Contacts)
			l.AtThreshold = l.Rate >= rules.Threshold
			l.Over = l.AtThreshold && l.Contacts >= rules.MinContacts
		}
		r.Complaints = append(r.Complaints, *l)
	}
	slices.SortFunc(r.Complaints, func(x, y LineRate) int {
		return cmp.Or(cmp.Compare(x.Tenant, y.Tenant), cmp.Compare(x.Line, y.Line))
	})
	r.OptOuts = make([]OptOut, len(a.optOuts))
	for i, o := range a.optOuts {
		r.OptOuts[i] = *o
	}
	counts := map[string]int{}
	for _, k := range a.order {
		counts[a.reminders[k]]++
	}
	r.Reminders = make([]Outcome, 0, len(Outcomes))
	for _, o := range Outcomes {
		if counts[o] > 0 {
			r.Reminders = append(r.Reminders, Outcome{Outcome: o, Reminders: counts[o]})
		}
	}
}

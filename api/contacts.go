package api

import (
	"context"
	"errors"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heed/heed/ledger"
	"github.com/heed/heed/notify"
)

// index knows which tenants hold a contact stream for each subject, so a
// customer's view reads a handful of streams instead of scanning the log.
type index struct {
	mu      sync.RWMutex
	tenants map[string]map[string]struct{} // subject → tenants
	seen    atomic.Uint64                  // last log position applied
}

func newIndex() *index { return &index{tenants: map[string]map[string]struct{}{}} }

func (x *index) note(e ledger.Event) {
	if e.Tenant == "" || e.Subject == "" || e.Stream != ledger.ContactStream(e.Tenant, e.Subject) {
		return
	}
	x.mu.RLock()
	_, ok := x.tenants[e.Subject][e.Tenant]
	x.mu.RUnlock()
	if ok {
		return
	}
	x.mu.Lock()
	m := x.tenants[e.Subject]
	if m == nil {
		m = map[string]struct{}{}
		x.tenants[e.Subject] = m
	}
	m[e.Tenant] = struct{}{}
	x.mu.Unlock()
}

func (x *index) run(ctx context.Context, st ledger.Store) error {
	return st.Follow(ctx, x.seen.Load()+1, func(e ledger.Event) error {
		x.note(e)
		x.seen.Store(e.Position)
		return nil
	})
}

// of returns the tenants of subject once the index has caught up with the
// log's head (or after a short wait, with what it has).
func (x *index) of(ctx context.Context, st ledger.Store, subject string) ([]string, error) {
	head, err := st.Head(ctx)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(2 * time.Second)
	for x.seen.Load() < head && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	x.mu.RLock()
	defer x.mu.RUnlock()
	out := make([]string, 0, len(x.tenants[subject]))
	for t := range x.tenants[subject] {
		out = append(out, t)
	}
	sort.Strings(out)
	return out, nil
}

// Basis is the recorded fact a contact relied on.
type Basis struct {
	EventID     string    `json:"event_id"`
	Type        string    `json:"type" doc:"ConsentGranted or RelationshipStarted"`
	Source      string    `json:"source,omitempty" doc:"how the consent was given"`
	ContractRef string    `json:"contract_ref,omitempty"`
	At          time.Time `json:"at" doc:"when it was given or started"`
}

// Contact is one contact or reminder to the customer's number.
type Contact struct {
	Tenant   string          `json:"tenant"`
	Kind     string          `json:"kind" enum:"contact,reminder"`
	ID       string          `json:"id" doc:"event id of the contact, or the reminder id"`
	At       time.Time       `json:"at"`
	Channel  string          `json:"channel"`
	Purpose  string          `json:"purpose"`
	Line     string          `json:"line,omitempty"`
	State    string          `json:"state,omitempty" doc:"for reminders: denied, submitted, delivered…"`
	Allowed  bool            `json:"allowed" doc:"whether the rules allowed it"`
	Reasons  []ledger.Reason `json:"reasons"`
	Basis    []Basis         `json:"basis" doc:"the consents or relationships it relied on"`
	Template string          `json:"template,omitempty"`
	Hash     string          `json:"content_hash,omitempty" doc:"SHA-256 of the exact text sent"`
}

// contactsOf lists every contact and reminder to a number, across tenants.
func (s *Server) contactsOf(ctx context.Context, e164 string) ([]Contact, error) {
	subject := s.cfg.Pseudonyms.Pseudonym(e164)
	tenants, err := s.contacts.of(ctx, s.cfg.Store, subject)
	if err != nil {
		return nil, err
	}
	out := []Contact{}
	for _, t := range tenants {
		evs, err := s.cfg.Store.ReadStream(ctx, ledger.ContactStream(t, subject), 1, 0)
		if errors.Is(err, ledger.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		byID := map[string]*ledger.Event{}
		for i := range evs {
			byID[evs[i].ID] = &evs[i]
		}
		reminders := map[string]int{} // reminder id → index in out
		at := func(id string) *Contact {
			if i, ok := reminders[id]; ok {
				return &out[i]
			}
			return nil
		}
		for i := range evs {
			e := &evs[i]
			p, err := ledger.Decode(e)
			if err != nil {
				continue
			}
			switch p := p.(type) {
			case *ledger.ContactMade:
				c := Contact{Tenant: t, Kind: "contact", ID: e.ID, At: e.OccurredAt, Channel: p.Channel, Purpose: p.Purpose, Line: p.Line}
				if s.cfg.Decider != nil {
					// Ask what the rules said at that moment, from the log alone.
					d, err := s.cfg.Decider.Decide(ctx, notify.Query{Tenant: t, Subject: subject, Number: e164,
						Channel: p.Channel, Purpose: p.Purpose, Line: p.Line, At: e.OccurredAt.Add(-time.Nanosecond)})
					if err == nil {
						c.Allowed, c.Reasons = d.Allowed, d.Reasons
					}
				}
				out = append(out, c)
			case *ledger.ReminderRequested:
				out = append(out, Contact{Tenant: t, Kind: "reminder", ID: p.ReminderID, At: e.OccurredAt,
					Channel: ledger.ChannelFlash, Purpose: ledger.PurposeService, Line: p.Line,
					State: notify.StateRequested, Template: p.TemplateID, Hash: p.ContentHash})
				reminders[p.ReminderID] = len(out) - 1
			case *ledger.ReminderDenied:
				if c := at(p.ReminderID); c != nil {
					c.State, c.Allowed, c.Reasons = notify.StateDenied, false, p.Reasons
				}
			case *ledger.ReminderDispatched:
				if c := at(p.ReminderID); c != nil {
					c.State, c.Allowed, c.Reasons = notify.StateDispatched, true, p.Reasons
				}
			case *ledger.ReminderSubmitted:
				if c := at(p.ReminderID); c != nil {
					c.State = notify.StateSubmitted
				}
			case *ledger.ReminderDelivered:
				if c := at(p.ReminderID); c != nil {
					c.State = notify.StateDelivered
				}
			case *ledger.ReminderFailed:
				if c := at(p.ReminderID); c != nil {
					c.State = notify.StateFailed
				}
			case *ledger.ReminderOutcomeUnknown:
				if c := at(p.ReminderID); c != nil {
					c.State = notify.StateUnknown
				}
			}
		}
		for i := range out {
			if out[i].Tenant == t {
				out[i].Basis = basesOf(out[i].Reasons, byID)
				if len(out[i].Basis) == 0 && out[i].Allowed {
					out[i].Basis = latestBasis(evs, out[i].At)
				}
			}
		}
	}
	for i := range out {
		if out[i].Reasons == nil {
			out[i].Reasons = []ledger.Reason{}
		}
		if out[i].Basis == nil {
			out[i].Basis = []Basis{}
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].At.Before(out[j].At) })
	return out, nil
}

func basesOf(reasons []ledger.Reason, byID map[string]*ledger.Event) []Basis {
	var out []Basis
	seen := map[string]bool{}
	for _, r := range reasons {
		for _, id := range r.Events {
			e := byID[id]
			if e == nil || seen[id] {
				continue
			}
			seen[id] = true
			p, err := ledger.Decode(e)
			if err != nil {
				continue
			}
			switch p := p.(type) {
			case *ledger.ConsentGranted:
				out = append(out, Basis{EventID: id, Type: e.Type, Source: p.Source, At: e.OccurredAt})
			case *ledger.RelationshipStarted:
				out = append(out, Basis{EventID: id, Type: e.Type, ContractRef: p.ContractRef, Source: "contract", At: p.StartsAt})
			}
		}
	}
	return out
}

// latestBasis is the most recent consent or relationship recorded before
// at, for decisions whose reasons name no events.
func latestBasis(evs []ledger.Event, at time.Time) []Basis {
	for i := len(evs) - 1; i >= 0; i-- {
		e := &evs[i]
		if e.OccurredAt.After(at) {
			continue
		}
		if e.Type == ledger.TypeConsentGranted || e.Type == ledger.TypeRelationshipStarted {
			return basesOf([]ledger.Reason{{Events: []string{e.ID}}}, map[string]*ledger.Event{e.ID: e})
		}
	}
	return nil
}

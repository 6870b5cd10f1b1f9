package api

import (
	"context"
	"errors"
	"slices"
	"sort"
	"time"

	"github.com/heed/heed/ledger"
	"github.com/heed/heed/notify"
	"github.com/heed/heed/projections/contactindex"
)

// LeafReader reads the log's stored canonical leaves (ledger.Event.Leaf)
// without decoding them, as ledger/bolt does.
type LeafReader interface {
	ReadLeaves(ctx context.Context, from uint64, limit int) ([][]byte, error)
}

// ContactIndex is the cross-tenant projection the customer's pages, the
// erasure and the template review read (contactindex.Index): it answers
// once it has caught up with the log's head, or after a short wait with
// what it has, and stops waiting when ctx ends.
type ContactIndex interface {
	// Run keeps the index current until ctx is done.
	Run(ctx context.Context) error
	// Tenants lists, sorted, the tenants that recorded something about
	// subject.
	Tenants(ctx context.Context, subject string) ([]string, error)
	// Templates lists every tenant's proposed templates.
	Templates(ctx context.Context) ([]contactindex.Template, error)
}

// Basis is the recorded fact a contact relied on.
type Basis struct {
	EventID     string    `json:"event_id"`
	Type        string    `json:"type" doc:"ConsentGranted or RelationshipStarted"`
	Source      string    `json:"source,omitempty" doc:"how the consent was given"`
	ContractRef string    `json:"contract_ref,omitempty"`
	At          time.Time `json:"at" doc:"when it was given or started"`
}

// Access is a read of the customer's personal data by staff.
type Access struct {
	By        string `json:"by" doc:"the API key that read it"`
	Role      string `json:"role" doc:"auditor, admin…"`
	Purpose   string `json:"purpose" doc:"why, as the reader stated it"`
	EventID   string `json:"event_id" doc:"the event whose personal fields were read"`
	EventType string `json:"event_type,omitempty"`
}

// Contact is one contact or reminder to the customer's number, or a read
// of the customer's personal data by staff (kind access).
type Contact struct {
	Tenant   string          `json:"tenant"`
	Kind     string          `json:"kind" enum:"contact,reminder,access"`
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
	Version  int             `json:"template_version,omitempty"`
	Hash     string          `json:"content_hash,omitempty" doc:"SHA-256 of the sealed nonce and the exact text sent"`
	// Text is what the customer was sent, rebuilt from the template
	// version and the sealed parameters; empty once they were erased.
	Text     string  `json:"text,omitempty" doc:"the text sent, rebuilt from the approved template and the sealed parameters"`
	Verified bool    `json:"text_verified,omitempty" doc:"the rebuilt text matches the content hash recorded when it was sent"`
	Access   *Access `json:"access,omitempty" doc:"for kind access: who read which personal data, and why"`
}

// contactsOf lists every contact and reminder to a number, across tenants.
func (s *Server) contactsOf(ctx context.Context, e164 string) ([]Contact, error) {
	subject := s.cfg.Pseudonyms.Pseudonym(e164)
	tenants, err := s.contacts.Tenants(ctx, subject)
	if err != nil {
		return nil, err
	}
	out := []Contact{}
	// The subject's own stream ("" here) holds reads of personal data
	// kept for no tenant.
	for _, t := range append(slices.Clip(tenants), "") {
		stream := ledger.ContactStream(t, subject)
		if t == "" {
			stream = ledger.SubjectStream(subject)
		}
		evs, err := s.cfg.Store.ReadStream(ctx, stream, 1, 0)
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
		versions := map[string][]notify.Version{}
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
			case *ledger.PersonalDataAccessed:
				a := &Access{By: e.Actor, Role: p.Role, Purpose: p.Purpose, EventID: p.EventID}
				if read := byID[p.EventID]; read != nil {
					a.EventType = read.Type
				}
				out = append(out, Contact{Tenant: t, Kind: "access", ID: e.ID, At: e.RecordedAt, Access: a})
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
				c := Contact{Tenant: t, Kind: "reminder", ID: p.ReminderID, At: e.OccurredAt,
					Channel: ledger.ChannelFlash, Purpose: ledger.PurposeService, Line: p.Line,
					State: notify.StateRequested, Template: p.TemplateID, Version: p.TemplateVersion, Hash: p.ContentHash}
				c.Text, c.Verified = s.rebuild(ctx, e, p, versions)
				out = append(out, c)
				reminders[p.ReminderID] = len(out) - 1
			case *ledger.ReminderDenied:
				if c := at(p.ReminderID); c != nil {
					// Nothing was sent.
					c.State, c.Allowed, c.Reasons, c.Text, c.Verified = notify.StateDenied, false, p.Reasons, "", false
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
			if out[i].Tenant == t && out[i].Kind != "access" {
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

// rebuild returns the text a reminder carried, from its template version
// and its sealed parameters, and whether it matches the recorded hash; ""
// when the parameters cannot be opened (erased) or the template is gone.
func (s *Server) rebuild(ctx context.Context, e *ledger.Event, p *ledger.ReminderRequested, cache map[string][]notify.Version) (string, bool) {
	if s.cfg.PII == nil || len(e.PII) == 0 {
		return "", false
	}
	// The customer reads what was sent to them: no staff access to record.
	fields, err := s.cfg.PII.OpenEvent(ctx, e)
	if err != nil {
		return "", false
	}
	var v notify.Version
	if p.TemplateID != "" {
		vs, ok := cache[p.TemplateID]
		if !ok {
			if vs, _, err = notify.ReadTemplate(ctx, s.cfg.Store, e.Tenant, p.TemplateID); err != nil {
				return "", false
			}
			cache[p.TemplateID] = vs
		}
		i := slices.IndexFunc(vs, func(v notify.Version) bool { return v.Version == p.TemplateVersion })
		if i < 0 {
			return "", false
		}
		v = vs[i]
	}
	text, ok, err := notify.Rebuild(v, fields, p.ContentHash)
	if err != nil {
		return "", false
	}
	return text, ok
}

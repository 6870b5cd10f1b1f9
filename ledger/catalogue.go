package ledger

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	jsonv2 "github.com/go-json-experiment/json"
)

// Event types of the catalogue.
const (
	TypeConsentGranted         = "ConsentGranted"
	TypeConsentWithdrawn       = "ConsentWithdrawn"
	TypeRelationshipStarted    = "RelationshipStarted"
	TypeRelationshipEnded      = "RelationshipEnded"
	TypeSuppressionListed      = "SuppressionListed"
	TypeSuppressionLifted      = "SuppressionLifted"
	TypeContactMade            = "ContactMade"
	TypeComplaintReceived      = "ComplaintReceived"
	TypeReminderRequested      = "ReminderRequested"
	TypeReminderDenied         = "ReminderDenied"
	TypeReminderDispatched     = "ReminderDispatched"
	TypeReminderSubmitted      = "ReminderSubmitted"
	TypeReminderDelivered      = "ReminderDelivered"
	TypeReminderFailed         = "ReminderFailed"
	TypeReminderOutcomeUnknown = "ReminderOutcomeUnknown"
	TypeLineSuspended          = "LineSuspended"
	TypeLineReinstated         = "LineReinstated"
	TypeSubjectErased          = "SubjectErased"
	TypeVerificationSent       = "VerificationSent"
)

// Channels a contact can use.
const (
	ChannelCall  = "call"
	ChannelSMS   = "sms"
	ChannelFlash = "flash"
)

// Purposes a contact can serve.
const (
	PurposeService   = "service"
	PurposeMarketing = "marketing"
)

// Channels and Purposes list the accepted values, for validation and for
// API enums.
var (
	Channels       = []string{ChannelCall, ChannelSMS, ChannelFlash}
	Purposes       = []string{PurposeService, PurposeMarketing}
	ConsentSources = []string{"web_form", "call_recording", "paper", "sms_reply", "bundled_terms", "api"}
	WithdrawVias   = []string{"sms_keyword", "call", "agent", "web", "api", ViaSelfService}
	Scopes         = []string{"tenant", "global"}
	ComplaintFrom  = []string{"customer", "operator", "regulator"}
)

// ViaSelfService marks what a customer did on their own page after
// proving the number: an opt-out, a complaint, an erasure.
const ViaSelfService = "self-service"

// Evidence is what proves a consent was given.
type Evidence struct {
	Text        string `json:"text,omitempty"`
	URL         string `json:"url,omitempty"`
	RecordingID string `json:"recording_id,omitempty"`
	ContentHash string `json:"content_hash,omitempty"`
}

// ConsentGranted records an explicit permission to contact.
type ConsentGranted struct {
	Purposes  []string   `json:"purposes"`
	Channels  []string   `json:"channels"`
	Source    string     `json:"source"`
	Evidence  Evidence   `json:"evidence"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

// ConsentWithdrawn records an opt-out. Empty Purposes or Channels, or All,
// cover everything.
type ConsentWithdrawn struct {
	Purposes []string `json:"purposes,omitempty"`
	Channels []string `json:"channels,omitempty"`
	All      bool     `json:"all,omitempty"`
	Via      string   `json:"via"`
	RawText  string   `json:"raw_text,omitempty"`
	Line     string   `json:"line,omitempty"`
}

// RelationshipStarted records a contract between the tenant and the subject.
type RelationshipStarted struct {
	ContractRef string     `json:"contract_ref"`
	Product     string     `json:"product,omitempty"`
	StartsAt    time.Time  `json:"starts_at"`
	ExpiresAt   *time.Time `json:"expires_at,omitempty"`
	// Plan names the tenant's reminder plan (ReminderPlanDefined) that
	// reminds of the expiry; it needs ExpiresAt.
	Plan string `json:"plan,omitempty"`
	// Number is the E.164 number, a personal field sealed into PII (see
	// catalogue_schedules.go): a relationship with a plan carries it so
	// its reminders can be sent.
	Number string `json:"number,omitempty"`
}

// RelationshipEnded records the end of a contract.
type RelationshipEnded struct {
	ContractRef string    `json:"contract_ref"`
	EndedAt     time.Time `json:"ended_at"`
	Reason      string    `json:"reason,omitempty"`
}

// SuppressionListed puts a subject on a do-not-contact list.
type SuppressionListed struct {
	Scope  string `json:"scope"`
	List   string `json:"list"`
	Source string `json:"source,omitempty"`
}

// SuppressionLifted takes a subject off a list.
type SuppressionLifted struct {
	Scope  string `json:"scope"`
	List   string `json:"list"`
	Reason string `json:"reason,omitempty"`
}

// ContactMade records a call or message placed by an outside system.
type ContactMade struct {
	Line       string `json:"line"`
	Channel    string `json:"channel"`
	Purpose    string `json:"purpose"`
	Campaign   string `json:"campaign,omitempty"`
	Outcome    string `json:"outcome,omitempty"`
	DurationS  int    `json:"duration_s,omitempty"`
	DecisionID string `json:"decision_id,omitempty"`
	Region     string `json:"region,omitempty"`
	// Backfill marks a contact imported from before heed knew of it, by a
	// key allowed to backfill: the rules count it at its occurred_at (never
	// later than it was recorded) instead of when it was recorded.
	Backfill bool `json:"backfill,omitempty"`
	// Decision is the decision the contact cited, as heed verified it when
	// the contact was recorded; absent on contacts recorded before heed
	// issued decision ids.
	Decision *CitedDecision `json:"decision,omitempty"`
	// CallID and Trunk identify a call the call gate allowed (SIP Call-ID
	// and the trunk that asked), so a CDR can be matched to it.
	CallID string `json:"call_id,omitempty"`
	Trunk  string `json:"trunk,omitempty"`
}

// ComplaintReceived records a complaint against the tenant or a line.
// One a customer made on their own page is via self-service and names the
// contact (its event id, or the reminder id) it is about.
type ComplaintReceived struct {
	Line    string `json:"line,omitempty"`
	Channel string `json:"channel,omitempty"`
	Source  string `json:"source"`
	Reason  string `json:"reason,omitempty"`
	Via     string `json:"via,omitempty"`
	Contact string `json:"contact,omitempty"`
}

// Reason is one rule's contribution to a decision. Events are the ids of
// the events it rests on; Positions, their log positions, are known to
// the decision only and never recorded.
type Reason struct {
	Rule      string   `json:"rule"`
	Effect    string   `json:"effect"`
	Text      string   `json:"text"`
	TextZH    string   `json:"text_zh,omitempty"`
	Events    []string `json:"events,omitempty"`
	Positions []uint64 `json:"-"`
}

// ReminderRequested records a business's request for a service reminder.
// Its parameters, or a free text, are sealed in the envelope's PII.
type ReminderRequested struct {
	ReminderID      string `json:"reminder_id"`
	ContractRef     string `json:"contract_ref"`
	TemplateID      string `json:"template_id,omitempty"`
	TemplateVersion int    `json:"template_version,omitempty"`
	ContentHash     string `json:"content_hash"`
	Line            string `json:"line,omitempty"`
}

// ReminderDenied records that the gate refused a reminder, and why.
type ReminderDenied struct {
	ReminderID   string   `json:"reminder_id"`
	Reasons      []Reason `json:"reasons"`
	RulesVersion string   `json:"rules_version"`
	AsOf         uint64   `json:"as_of"`
}

// ReminderDispatched is written before the SMPP submit, at the stream
// revision the allowing decision read.
type ReminderDispatched struct {
	ReminderID      string   `json:"reminder_id"`
	ContractRef     string   `json:"contract_ref"`
	TemplateID      string   `json:"template_id,omitempty"`
	TemplateVersion int      `json:"template_version,omitempty"`
	ContentHash     string   `json:"content_hash"`
	Line            string   `json:"line,omitempty"`
	SMSC            string   `json:"smsc,omitempty"`
	Reasons         []Reason `json:"reasons"`
	RulesVersion    string   `json:"rules_version"`
	AsOf            uint64   `json:"as_of"`
}

// ReminderSubmitted records the SMSC's acceptance.
type ReminderSubmitted struct {
	ReminderID string   `json:"reminder_id"`
	MessageIDs []string `json:"message_ids"`
	Parts      int      `json:"parts"`
	SMSC       string   `json:"smsc,omitempty"`
}

// ReminderDelivered records a final delivery receipt.
type ReminderDelivered struct {
	ReminderID string `json:"reminder_id"`
	MessageID  string `json:"message_id,omitempty"`
}

// ReminderFailed records a permanent failure.
type ReminderFailed struct {
	ReminderID string `json:"reminder_id"`
	MessageID  string `json:"message_id,omitempty"`
	Status     string `json:"status"`
	Detail     string `json:"detail,omitempty"`
}

// ReminderOutcomeUnknown records a dispatched reminder whose fate cannot be
// known (the link or the process died mid-submit); it is never resubmitted.
type ReminderOutcomeUnknown struct {
	ReminderID string `json:"reminder_id"`
	Detail     string `json:"detail,omitempty"`
}

// LineSuspended records that a line tripped a rule.
type LineSuspended struct {
	Line       string  `json:"line"`
	Rule       string  `json:"rule"`
	Contacts   int     `json:"contacts"`
	Complaints int     `json:"complaints"`
	Rate       float64 `json:"rate"`
	WindowDays int     `json:"window_days"`
}

// LineReinstated records an admin's decision to lift a suspension.
type LineReinstated struct {
	Line   string `json:"line"`
	Reason string `json:"reason,omitempty"`
}

// SubjectErased records that the subject's data key was destroyed; via
// self-service when the customer asked on their own page.
type SubjectErased struct {
	Reason string `json:"reason,omitempty"`
	Via    string `json:"via,omitempty"`
}

// VerificationSent records a one-time code sent to a customer (never the
// code itself).
type VerificationSent struct {
	Channel string `json:"channel"`
}

// schemas maps each type to its payload constructors by schema version;
// register fills it, once for each type, next to the type's payload and its
// check.
var schemas = map[string]map[int]func() any{}

func init() {
	register(TypeConsentGranted, map[int]func() any{1: func() any { return new(ConsentGranted) }})
	register(TypeConsentWithdrawn, map[int]func() any{1: func() any { return new(ConsentWithdrawn) }})
	register(TypeRelationshipStarted, map[int]func() any{1: func() any { return new(RelationshipStarted) }})
	register(TypeRelationshipEnded, map[int]func() any{1: func() any { return new(RelationshipEnded) }})
	register(TypeSuppressionListed, map[int]func() any{1: func() any { return new(SuppressionListed) }})
	register(TypeSuppressionLifted, map[int]func() any{1: func() any { return new(SuppressionLifted) }})
	register(TypeContactMade, map[int]func() any{1: func() any { return new(ContactMade) }})
	register(TypeComplaintReceived, map[int]func() any{1: func() any { return new(ComplaintReceived) }})
	register(TypeReminderRequested, map[int]func() any{1: func() any { return new(ReminderRequested) }})
	register(TypeReminderDenied, map[int]func() any{1: func() any { return new(ReminderDenied) }})
	register(TypeReminderDispatched, map[int]func() any{1: func() any { return new(ReminderDispatched) }})
	register(TypeReminderSubmitted, map[int]func() any{1: func() any { return new(ReminderSubmitted) }})
	register(TypeReminderDelivered, map[int]func() any{1: func() any { return new(ReminderDelivered) }})
	register(TypeReminderFailed, map[int]func() any{1: func() any { return new(ReminderFailed) }})
	register(TypeReminderOutcomeUnknown, map[int]func() any{1: func() any { return new(ReminderOutcomeUnknown) }})
	register(TypeLineSuspended, map[int]func() any{1: func() any { return new(LineSuspended) }})
	register(TypeLineReinstated, map[int]func() any{1: func() any { return new(LineReinstated) }})
	register(TypeSubjectErased, map[int]func() any{1: func() any { return new(SubjectErased) }})
	register(TypeVerificationSent, map[int]func() any{1: func() any { return new(VerificationSent) }})
}

// Types returns the catalogue's event types, sorted.
func Types() []string {
	out := make([]string, 0, len(schemas))
	for t := range schemas {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}

// Decode parses e.Data into the payload type registered for e.Type and
// e.Schema. It refuses an unknown type or schema version, naming it, and
// unknown fields in the payload. It reads stored events, so it accepts
// whatever encoding/json accepted when they were appended; Validate is the
// stricter gate in front of the log.
func Decode(e *Event) (any, error) {
	v, err := payload(e)
	if err != nil {
		return nil, err
	}
	data := e.Data
	if len(data) == 0 {
		data = json.RawMessage("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return nil, fmt.Errorf("%w: %s data: %v", ErrInvalid, e.Type, err)
	}
	if err := validate(v); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrInvalid, e.Type, err)
	}
	return v, nil
}

// payload returns a new value of the payload type registered for e's type
// and schema version.
func payload(e *Event) (any, error) {
	versions, ok := schemas[e.Type]
	if !ok {
		return nil, fmt.Errorf("%w: unknown event type %q", ErrInvalid, e.Type)
	}
	mk, ok := versions[e.Schema]
	if !ok {
		return nil, fmt.Errorf("%w: unknown schema version %d for %s", ErrInvalid, e.Schema, e.Type)
	}
	return mk(), nil
}

// strict is how Validate reads a payload: unknown, duplicate or
// differently cased member names and invalid UTF-8 are refused, so that
// every reader of the leaf (heed's projections, an auditor's tool) sees
// the same values; encoding/json would take the last of two duplicates
// and match names in any case. It is also cheaper than encoding/json's
// strict Decoder, and Validate runs on every append.
var strict = jsonv2.RejectUnknownMembers(true)

// MaxIDLen bounds an event id. Stores index events by id, and a key too
// long for the index (bbolt refuses keys over 32 KiB) would fail every
// append committed with it, not only its own.
const MaxIDLen = 256

// Validate checks e's envelope and payload against the catalogue.
func Validate(e *Event) error {
	if e.Type == "" {
		return fmt.Errorf("%w: missing type", ErrInvalid)
	}
	if len(e.ID) > MaxIDLen {
		return fmt.Errorf("%w: %s: id longer than %d bytes", ErrInvalid, e.Type, MaxIDLen)
	}
	if e.OccurredAt.IsZero() {
		return fmt.Errorf("%w: %s: missing occurred_at", ErrInvalid, e.Type)
	}
	v, err := payload(e)
	if err != nil {
		return err
	}
	data := e.Data
	if len(data) == 0 {
		data = json.RawMessage("{}")
	}
	if err := jsonv2.Unmarshal(data, v, strict); err != nil {
		return fmt.Errorf("%w: %s data: %v", ErrInvalid, e.Type, err)
	}
	if err := validate(v); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrInvalid, e.Type, err)
	}
	return nil
}

// NewEvent builds a proposed event of schema 1 with payload marshalled to
// JSON, ready to append. Its type is taken from the payload's Go type.
func NewEvent(tenant, subject string, occurredAt time.Time, payload any) (Event, error) {
	t := fmt.Sprintf("%T", payload)
	t = t[strings.LastIndexByte(t, '.')+1:]
	if _, ok := schemas[t]; !ok {
		return Event{}, fmt.Errorf("%w: unknown event type %q", ErrInvalid, t)
	}
	data, err := json.Marshal(payload)
	if err != nil {
		return Event{}, fmt.Errorf("%w: %s: %v", ErrInvalid, t, err)
	}
	return Event{ID: NewID(), Type: t, Tenant: tenant, Subject: subject, OccurredAt: occurredAt.UTC(), Schema: 1, Data: data}, nil
}

// checker is a payload that validates itself: every payload type with a
// rule beyond its JSON shape implements it next to its definition.
type checker interface{ check() error }

// register adds an event type's payload constructors by schema version. It
// is called from init functions, so it panics on a type registered twice.
func register(typ string, versions map[int]func() any) {
	if _, dup := schemas[typ]; dup {
		panic("ledger: event type " + typ + " registered twice")
	}
	schemas[typ] = versions
}

func validate(v any) error {
	if c, ok := v.(checker); ok {
		return c.check()
	}
	return nil
}

// oneOf refuses val unless it is one of allowed.
func oneOf(field, val string, allowed []string) error {
	if !slices.Contains(allowed, val) {
		return fmt.Errorf("%s %q is not one of %s", field, val, strings.Join(allowed, ", "))
	}
	return nil
}

// eachOf refuses vals unless each is one of allowed.
func eachOf(field string, vals []string, allowed []string) error {
	for _, x := range vals {
		if err := oneOf(field, x, allowed); err != nil {
			return err
		}
	}
	return nil
}

func (p *ConsentGranted) check() error {
	if len(p.Purposes) == 0 || len(p.Channels) == 0 {
		return fmt.Errorf("purposes and channels are required")
	}
	if err := checkCover(p.Purposes, p.Channels); err != nil {
		return err
	}
	return oneOf("source", p.Source, ConsentSources)
}

func (p *ConsentWithdrawn) check() error {
	if err := checkCover(p.Purposes, p.Channels); err != nil {
		return err
	}
	return oneOf("via", p.Via, WithdrawVias)
}

// checkCover checks the purposes and channels a consent or an opt-out
// covers.
func checkCover(purposes, channels []string) error {
	if err := eachOf("purpose", purposes, Purposes); err != nil {
		return err
	}
	return eachOf("channel", channels, Channels)
}

func (p *RelationshipStarted) check() error {
	if p.ContractRef == "" {
		return fmt.Errorf("contract_ref is required")
	}
	return p.checkPlan()
}

func (p *RelationshipEnded) check() error {
	if p.ContractRef == "" {
		return fmt.Errorf("contract_ref is required")
	}
	return nil
}

func (p *SuppressionListed) check() error { return checkList(p.List, p.Scope) }

func (p *SuppressionLifted) check() error { return checkList(p.List, p.Scope) }

// checkList checks what a listing and a lifting both name.
func checkList(list, scope string) error {
	if list == "" {
		return fmt.Errorf("list is required")
	}
	return oneOf("scope", scope, Scopes)
}

func (p *ContactMade) check() error {
	if p.Line == "" {
		return fmt.Errorf("line is required")
	}
	if p.Decision != nil {
		if err := p.Decision.check(); err != nil {
			return err
		}
	}
	if err := oneOf("channel", p.Channel, Channels); err != nil {
		return err
	}
	return oneOf("purpose", p.Purpose, Purposes)
}

func (p *ComplaintReceived) check() error {
	if p.Via != "" && p.Via != ViaSelfService {
		return fmt.Errorf("via %q is not %s", p.Via, ViaSelfService)
	}
	if len(p.Contact) > MaxIDLen {
		return fmt.Errorf("contact is longer than %d bytes", MaxIDLen)
	}
	if p.Channel != "" {
		if err := oneOf("channel", p.Channel, Channels); err != nil {
			return err
		}
	}
	return oneOf("source", p.Source, ComplaintFrom)
}

func (p *SubjectErased) check() error {
	if p.Via != "" && p.Via != ViaSelfService {
		return fmt.Errorf("via %q is not %s", p.Via, ViaSelfService)
	}
	return nil
}

func (p *LineSuspended) check() error {
	if p.Line == "" || p.Rule == "" {
		return fmt.Errorf("line and rule are required")
	}
	return nil
}

func (p *LineReinstated) check() error {
	if p.Line == "" {
		return fmt.Errorf("line is required")
	}
	return nil
}

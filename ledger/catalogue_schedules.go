package ledger

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Event types of renewal schedules. A tenant defines a reminder plan, one
// version at a time, in PlanStream(tenant, plan id), without a subject. A
// relationship started with a plan and an expiry gets one durable timer per
// offset of the plan: ReminderScheduled, appended by the scheduler to the
// relationship's contact stream, next to the opt-outs, suppressions,
// erasures and ends that must cancel it and the reminder events its firing
// appends. A timer is pending until its reminder is requested (it fired) or
// a ReminderCancelled ends it; a ReminderDeferred moves it to a later time.
// The latest ReminderScheduled of a reminder id wins, so a plan's new
// version reschedules a timer not yet fired under the same id.
const (
	TypeReminderPlanDefined = "ReminderPlanDefined"
	TypeRelationshipRenewed = "RelationshipRenewed"
	TypeReminderScheduled   = "ReminderScheduled"
	TypeReminderDeferred    = "ReminderDeferred"
	TypeReminderCancelled   = "ReminderCancelled"
)

// PlanIDPattern is what a plan id may look like. Ids are part of stream
// names.
const PlanIDPattern = `^[A-Za-z0-9_.-]{1,64}$`

var planID = regexp.MustCompile(PlanIDPattern)

// Sources a plan's template parameter can be filled from: a field of the
// relationship the reminder is about. Dates are written YYYY-MM-DD in the
// customer's time zone.
const (
	SourceProduct     = "product"
	SourceContractRef = "contract_ref"
	SourceExpiresAt   = "expires_at"
	SourceStartsAt    = "starts_at"
)

// ParamSources lists the accepted parameter sources.
var ParamSources = []string{SourceProduct, SourceContractRef, SourceExpiresAt, SourceStartsAt}

// Reasons a timer is cancelled.
const (
	CancelEnded       = "relationship_ended"
	CancelRenewed     = "relationship_renewed"
	CancelOptedOut    = "opted_out"
	CancelSuppressed  = "suppressed"
	CancelErased      = "erased"
	CancelPlanChanged = "plan_changed"
	CancelByBusiness  = "cancelled_by_business"
	CancelExpired     = "expired"
)

// CancelReasons lists the accepted cancellation reasons.
var CancelReasons = []string{CancelEnded, CancelRenewed, CancelOptedOut, CancelSuppressed, CancelErased,
	CancelPlanChanged, CancelByBusiness, CancelExpired}

// Limits of a plan.
const (
	MaxPlanOffsets = 10
	// MaxOffset is the furthest before expiry a reminder may be planned.
	MaxOffset = 400 * 24 * time.Hour
	// MaxRetryAfter bounds the wait before a retry after a failed receipt.
	MaxRetryAfter = 7 * 24 * time.Hour
	// MaxRetries bounds the retries of one reminder.
	MaxRetries = 3
	// MaxPlanParams bounds the template parameters a plan fills.
	MaxPlanParams = 20
)

// SendWindow is a daily span of local time, in the customer's own time
// zone, within which a planned reminder may be sent: Start inclusive, End
// exclusive, both "HH:MM" on the same day.
type SendWindow struct {
	Start string `json:"start"`
	End   string `json:"end"`
}

// Minutes returns the window's start and end as minutes after midnight.
func (w SendWindow) Minutes() (start, end int, err error) {
	if start, err = clock(w.Start); err != nil {
		return 0, 0, fmt.Errorf("window start: %w", err)
	}
	if end, err = clock(w.End); err != nil {
		return 0, 0, fmt.Errorf("window end: %w", err)
	}
	if start >= end {
		return 0, 0, errors.New("window start must be before its end on the same day (e.g. 10:00-18:00)")
	}
	return start, end, nil
}

var hhmm = regexp.MustCompile(`^([01][0-9]|2[0-3]):([0-5][0-9])$|^24:00$`)

func clock(s string) (int, error) {
	if !hhmm.MatchString(s) {
		return 0, fmt.Errorf("%q is not a time of day HH:MM", s)
	}
	h, _ := strconv.Atoi(s[:2])
	m, _ := strconv.Atoi(s[3:])
	return h*60 + m, nil
}

// PlanRetry asks for another attempt when a planned reminder's delivery
// receipt reports a failure: After the receipt (then into the send
// window), up to Attempts times.
type PlanRetry struct {
	After    string `json:"after"`
	Attempts int    `json:"attempts"`
}

// ReminderPlanDefined records one version of a tenant's reminder plan:
// when to remind before a relationship's expiry, within which local hours,
// with which approved template and how its parameters are filled from the
// relationship. Version n is appended at stream revision n-1, so versions
// count up from 1 without a gap. A new version applies to the timers not
// yet fired.
type ReminderPlanDefined struct {
	PlanID  string `json:"plan_id"`
	Version int    `json:"version"`
	// Offsets are how long before the expiry each reminder is due, as
	// whole days ("30d": the send window's opening, 30 local calendar days
	// before the expiry date) or hours ("12h": that long before the expiry
	// instant, moved into the window).
	Offsets         []string   `json:"offsets"`
	Window          SendWindow `json:"window"`
	TemplateID      string     `json:"template_id"`
	TemplateVersion int        `json:"template_version"`
	// Params maps each template parameter to the relationship field that
	// fills it (ParamSources).
	Params map[string]string `json:"params,omitempty"`
	Retry  *PlanRetry        `json:"retry,omitempty"`
	// Line is the line the reminders are sent from; empty means the
	// tenant's default line.
	Line string `json:"line,omitempty"`
}

// RelationshipRenewed records that a contract runs on to a new expiry. The
// timers planned from its old expiry are cancelled and its plan's timers
// are planned from the new one.
type RelationshipRenewed struct {
	ContractRef string    `json:"contract_ref"`
	ExpiresAt   time.Time `json:"expires_at"`
}

// ReminderScheduled is a durable timer: the reminder ReminderID falls due
// at DueAt, planned from the relationship's ExpiresAt by Offset of version
// PlanVersion of PlanID. Retry counts the attempts before it (0 for the
// planned one).
type ReminderScheduled struct {
	ReminderID  string    `json:"reminder_id"`
	ContractRef string    `json:"contract_ref"`
	PlanID      string    `json:"plan_id"`
	PlanVersion int       `json:"plan_version"`
	Offset      string    `json:"offset"`
	ExpiresAt   time.Time `json:"expires_at"`
	DueAt       time.Time `json:"due_at"`
	Retry       int       `json:"retry,omitempty"`
}

// ReminderDeferred records that a due timer met a rule that will pass
// later (quiet hours, a frequency cap, a region burst, a line's send rate)
// and moves it to NextAt, the first moment that rule allows.
type ReminderDeferred struct {
	ReminderID string    `json:"reminder_id"`
	Rule       string    `json:"rule"`
	Reason     string    `json:"reason,omitempty"`
	DueAt      time.Time `json:"due_at"`
	NextAt     time.Time `json:"next_at"`
}

// ReminderCancelled ends a pending timer without sending anything.
type ReminderCancelled struct {
	ReminderID string `json:"reminder_id"`
	Reason     string `json:"reason"`
	// Event is the id of the event that caused the cancellation, if any.
	Event string `json:"event,omitempty"`
}

func init() {
	register(TypeReminderPlanDefined, map[int]func() any{1: func() any { return new(ReminderPlanDefined) }})
	register(TypeRelationshipRenewed, map[int]func() any{1: func() any { return new(RelationshipRenewed) }})
	register(TypeReminderScheduled, map[int]func() any{1: func() any { return new(ReminderScheduled) }})
	register(TypeReminderDeferred, map[int]func() any{1: func() any { return new(ReminderDeferred) }})
	register(TypeReminderCancelled, map[int]func() any{1: func() any { return new(ReminderCancelled) }})
}

// ParseOffset reads a plan offset: a whole number of days ("30d") or
// hours ("12h"), from 0 up to MaxOffset. days reports which.
func ParseOffset(s string) (d time.Duration, days bool, err error) {
	if len(s) < 2 || len(s) > 5 {
		return 0, false, fmt.Errorf("offset %q is not a number of days or hours such as 30d or 12h", s)
	}
	n, err := strconv.Atoi(s[:len(s)-1])
	if err != nil || n < 0 || s[0] == '+' || s[0] == '-' {
		return 0, false, fmt.Errorf("offset %q is not a number of days or hours such as 30d or 12h", s)
	}
	switch s[len(s)-1] {
	case 'd':
		d, days = time.Duration(n)*24*time.Hour, true
	case 'h':
		d = time.Duration(n) * time.Hour
	default:
		return 0, false, fmt.Errorf("offset %q is not a number of days or hours such as 30d or 12h", s)
	}
	if d > MaxOffset {
		return 0, false, fmt.Errorf("offset %q is more than %d days before expiry", s, MaxOffset/(24*time.Hour))
	}
	return d, days, nil
}

// ParseRetryAfter reads a retry's wait: hours ("4h") or minutes ("30m"),
// from 1 minute up to MaxRetryAfter.
func ParseRetryAfter(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil || strings.ContainsAny(s, ".-+") || (!strings.HasSuffix(s, "h") && !strings.HasSuffix(s, "m")) {
		return 0, fmt.Errorf("retry after %q is not a whole number of hours or minutes such as 4h or 30m", s)
	}
	if d < time.Minute || d > MaxRetryAfter {
		return 0, fmt.Errorf("retry after %q must be between 1m and %dh", s, MaxRetryAfter/time.Hour)
	}
	return d, nil
}

func (p *ReminderPlanDefined) check() error {
	if !planID.MatchString(p.PlanID) {
		return errors.New("plan_id must be 1-64 letters, digits, '_', '.' or '-'")
	}
	if p.Version < 1 {
		return errors.New("version starts at 1")
	}
	if len(p.Offsets) == 0 || len(p.Offsets) > MaxPlanOffsets {
		return fmt.Errorf("offsets: between 1 and %d are required", MaxPlanOffsets)
	}
	seen := map[time.Duration]bool{}
	for _, o := range p.Offsets {
		d, _, err := ParseOffset(o)
		if err != nil {
			return err
		}
		if seen[d] {
			return fmt.Errorf("offset %q is given twice", o)
		}
		seen[d] = true
	}
	if _, _, err := p.Window.Minutes(); err != nil {
		return err
	}
	if err := checkTemplateVersion(p.TemplateID, p.TemplateVersion); err != nil {
		return err
	}
	if len(p.Params) > MaxPlanParams {
		return fmt.Errorf("params: at most %d", MaxPlanParams)
	}
	for name, src := range p.Params {
		if name == "" || len(name) > 64 {
			return errors.New("params: a parameter name is 1-64 bytes")
		}
		if !slices.Contains(ParamSources, src) {
			return fmt.Errorf("params: %s is filled from %q, which is not one of %s", name, src, strings.Join(ParamSources, ", "))
		}
	}
	if r := p.Retry; r != nil {
		if _, err := ParseRetryAfter(r.After); err != nil {
			return err
		}
		if r.Attempts < 1 || r.Attempts > MaxRetries {
			return fmt.Errorf("retry attempts must be between 1 and %d", MaxRetries)
		}
	}
	if len(p.Line) > 64 {
		return errors.New("line is at most 64 bytes")
	}
	return nil
}

func (p *RelationshipRenewed) check() error {
	if p.ContractRef == "" {
		return errors.New("contract_ref is required")
	}
	if p.ExpiresAt.IsZero() {
		return errors.New("expires_at is required: a renewal moves the expiry")
	}
	return nil
}

func checkReminderID(id string) error {
	if id == "" || len(id) > 128 {
		return errors.New("reminder_id is required, at most 128 bytes")
	}
	return nil
}

func (p *ReminderScheduled) check() error {
	if err := checkReminderID(p.ReminderID); err != nil {
		return err
	}
	if p.ContractRef == "" {
		return errors.New("contract_ref is required")
	}
	if !planID.MatchString(p.PlanID) || p.PlanVersion < 1 {
		return errors.New("plan_id and plan_version (from 1) are required")
	}
	if _, _, err := ParseOffset(p.Offset); err != nil {
		return err
	}
	if p.ExpiresAt.IsZero() || p.DueAt.IsZero() {
		return errors.New("expires_at and due_at are required")
	}
	if p.Retry < 0 || p.Retry > MaxRetries {
		return fmt.Errorf("retry must be between 0 and %d", MaxRetries)
	}
	return nil
}

func (p *ReminderDeferred) check() error {
	if err := checkReminderID(p.ReminderID); err != nil {
		return err
	}
	if p.Rule == "" {
		return errors.New("rule is required: the rule that deferred the reminder")
	}
	if p.DueAt.IsZero() || p.NextAt.IsZero() {
		return errors.New("due_at and next_at are required")
	}
	if !p.NextAt.After(p.DueAt) {
		return errors.New("next_at must be after due_at: a deferral moves a timer later")
	}
	return nil
}

func (p *ReminderCancelled) check() error {
	if err := checkReminderID(p.ReminderID); err != nil {
		return err
	}
	if !slices.Contains(CancelReasons, p.Reason) {
		return fmt.Errorf("reason %q is not one of %s", p.Reason, strings.Join(CancelReasons, ", "))
	}
	return nil
}

// RelationshipStarted's number is sealed: the scheduler opens it to send
// the plan's reminders, and an erasure shreds it with the rest.
func (p *RelationshipStarted) personal() map[string]*string {
	return map[string]*string{"number": &p.Number}
}

func (p *RelationshipStarted) checkPlan() error {
	if p.Plan == "" {
		return nil
	}
	if !planID.MatchString(p.Plan) {
		return errors.New("plan must be 1-64 letters, digits, '_', '.' or '-'")
	}
	if p.ExpiresAt == nil || p.ExpiresAt.IsZero() {
		return errors.New("a relationship with a plan needs expires_at: the plan reminds before it")
	}
	return nil
}

// Package notify sends service reminders as flash SMS, gated by the
// eligibility decision, and turns inbound opt-out keywords into withdrawals.
//
// A reminder goes: ReminderRequested → decide → ReminderDenied, or
// ReminderDispatched appended at the contact-stream revision the decision
// read (so a concurrent opt-out makes it fail and the decision is made
// again) → if the subject's or the line's stream gained a fact since the
// decision, decide again as of the dispatch and, on a denial, ReminderDenied
// instead of a submit → submit → ReminderSubmitted, ReminderFailed or
// ReminderOutcomeUnknown → receipt → ReminderDelivered or ReminderFailed.
package notify

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/heed/heed/ledger"
	"github.com/heed/heed/projections"
	"github.com/heed/heed/smpp"
)

// Sentinel errors.
var (
	// ErrPermanent is what a Sender wraps when the SMSC refused a message for good.
	ErrPermanent = errors.New("notify: submit refused")
	// ErrNotSent is what a Sender wraps when the message certainly did not
	// reach the SMSC (no bind, throttled past its retries).
	ErrNotSent = errors.New("notify: not sent")
	// ErrUnavailable is what a Sender wraps when no SMSC is bound to take
	// the message: nothing was sent, and the reminder fails at once with
	// status smsc_unavailable.
	ErrUnavailable = fmt.Errorf("%w: smsc unavailable", ErrNotSent)
	// ErrFreeText means a reminder carried free text: flash carries only
	// approved templates (unless Config.FreeText, for trials).
	ErrFreeText = errors.New("notify: free text is not sent as flash; name an approved template")
	// ErrNoText means a reminder had neither text nor template.
	ErrNoText = errors.New("notify: reminder needs a template")
	// ErrContended means the decision kept being overtaken by new events on
	// the contact stream; the caller may retry.
	ErrContended = errors.New("notify: contact stream kept changing, try again")
	// ErrForeignLine means a reminder named a line another tenant owns:
	// replies to it would withdraw consent for the wrong business.
	ErrForeignLine = errors.New("notify: line belongs to another tenant")
	// ErrNotFound means no such reminder for this tenant.
	ErrNotFound = errors.New("notify: no such reminder")
)

// Query asks whether a contact is allowed (see [projections.Query]).
type Query = projections.Query

// Decision is the gate's answer. Revision is the ContactStream revision the
// decision read; ReminderDispatched is appended with exactly that revision.
type Decision = projections.Decision

// Decider decides whether a contact is allowed.
type Decider interface {
	Decide(ctx context.Context, q Query) (Decision, error)
}

// Message is one SMS to submit.
type Message struct {
	Number string // E.164
	Line   string // source address
	Text   string
	Flash  bool
}

// Sender submits messages to an SMSC. An error wrapping ErrPermanent means
// the message was refused and will never be delivered, one wrapping
// ErrNotSent that it never left; any other error means the outcome is
// unknown.
type Sender interface {
	Submit(ctx context.Context, m Message) (messageIDs []string, err error)
}

// Receipt is a delivery receipt from the SMSC.
type Receipt struct {
	MessageID string
	Delivered bool
	Status    string // e.g. DELIVRD, UNDELIV, EXPIRED
}

// States of a reminder, as reported to callers and metrics.
const (
	StateRequested  = "requested"
	StateDenied     = "denied"
	StateDispatched = "dispatched"
	StateSubmitted  = "submitted"
	StateDelivered  = "delivered"
	StateFailed     = "failed"
	StateUnknown    = "outcome_unknown"
	// StateDeferred is a planned reminder's answer when only rules that
	// will pass later deny it (see Request.Defer): nothing was recorded.
	StateDeferred = "deferred"
)

// DefaultKeywords are the opt-out replies recognised when none are configured.
var DefaultKeywords = []string{"TD", "退订", "STOP", "UNSUBSCRIBE", "END", "QUIT", "STOPALL", "REVOKE", "OPTOUT", "CANCEL", "ARRET", "REMOVE"}

// Config wires a Notifier.
type Config struct {
	// Store is where the notifier writes; personal fields (a reply's text
	// and sender) are in Data, so it should seal them (pii.Seal).
	Store   ledger.Store
	Decider Decider
	Sender  Sender
	// Lookup, when set, finds a stored event by its id (ledger/bolt's
	// store does). Get then finds a settled or unknown reminder with one
	// index read instead of a scan of the log from its head.
	Lookup Looker
	// Sealer seals a reminder's parameters (and nonce) under the key of
	// its (tenant, subject); nil records none, so the text cannot be
	// rebuilt.
	Sealer Sealer
	// FreeText lets reminders carry free text instead of a template: for
	// local trials only (heed serve --dev-free-text).
	FreeText bool
	// Keywords are the opt-out replies, matched on the whole message as
	// Keyword folds it (width, case, spaces, punctuation around it); nil
	// means DefaultKeywords.
	Keywords []string
	// Lines maps each line (source address) to the tenant that owns it, so
	// a reply to a line withdraws consent for that tenant. A line heed
	// sends from that is not here is shared: a reply to it withdraws at
	// every tenant that sent to the number from it.
	Lines map[string]string
	// Senders names the line a tenant's reminders go from when they name
	// none; a tenant owning one line needs no entry, one owning several
	// must have one (see Check).
	Senders map[string]string
	// DefaultLine is used when a reminder names no line and its tenant has
	// no sender line.
	DefaultLine string
	// Region reads national sender addresses of inbound messages (see
	// SenderNumber); empty means "CN".
	Region string
	// Tenants lists the tenants holding contact events about a subject,
	// for replies to a shared line; nil reads the whole log instead.
	Tenants func(ctx context.Context, subject string) ([]string, error)
	// OnUnmatched, if set, is told the reason of each inbound message
	// recorded as unmatched (for metrics).
	OnUnmatched func(reason string)
	// InboundParts bounds the multi-part inbound messages held for their
	// missing parts (zero: 10,000) and InboundWait how long they are
	// awaited (zero: a minute; Sweep records those given up on).
	InboundParts int
	InboundWait  time.Duration
	// Pseudonym turns an E.164 number into the subject.
	Pseudonym func(number string) string
	// SMSC names the connection in events; SMSCOf, if set, names the one
	// that carries a line instead.
	SMSC   string
	SMSCOf func(line string) string
	// OnState, if set, is told each state a reminder enters (for metrics).
	OnState func(state string)
	Log     *slog.Logger
	Now     func() time.Time
	// ReceiptTimeout is how long a submitted reminder is kept in memory
	// waiting for its receipt (zero: a day). A receipt that comes later is
	// matched from the log by Sweep.
	ReceiptTimeout time.Duration
	// Leaves, if set, reads the log's stored leaves (ledger/bolt): recovery
	// then decodes the reminders' events only, not every event of the log.
	Leaves LeafReader
	// CheckpointEvery is how many log events may pass before the notifier
	// records where its start-up recovery may resume (zero: 100,000), so a
	// restart reads that many events at most, not the whole log.
	CheckpointEvery uint64
	// MaxOpen caps the reminders kept in memory (zero: 1<<20); past it an
	// arbitrary one is dropped, and its receipt too is matched from the log.
	MaxOpen int
	// EarlyWait is how long a receipt whose message id is unknown is kept
	// for a submit response that may still come (zero: a minute); after
	// it, Sweep looks the message id up in the log.
	EarlyWait time.Duration
	// Recent is how many settled reminders Get finds without reading the
	// log (zero: 65536).
	Recent int
	// SubmitTimeout bounds one submit, whether or not the caller is still
	// waiting (zero: 30 s).
	SubmitTimeout time.Duration
}

// Notifier runs reminders and inbound opt-outs.
type Notifier struct {
	gate      gate
	templates templates
	cfg       Config
	keywords  map[string]bool
	lineOf    map[string]string // tenant → the line its reminders use by default
	mo        *smpp.Reassembler[Inbound]

	// Only reminders without a final state are held in memory; the log
	// answers for the others (see find).
	mu        sync.Mutex
	open      map[string]*open        // tenant/reminder id → reminder not yet final
	byMessage map[string]string       // SMSC message id (each form) → tenant/reminder id
	early     map[string]earlyReceipt // receipts whose message id is not (yet) known
	scan      chan struct{}           // one log scan at a time
	// recent remembers the subjects of the last reminders to leave open,
	// so a client polling a reminder it just sent is not a log scan.
	recent     map[string]string // tenant/reminder id → subject
	recentKeys []string          // ring, oldest at recentNext
	recentNext int

	recMu sync.Mutex
	rec   *recovery // what Recover read, carried on by Checkpoint
}

type ref struct{ tenant, subject, id, line string }

// open is a reminder that has not reached a final state.
type open struct {
	ref
	ids     []string  // SMSC message ids whose receipt has not come, once submitted
	at      time.Time // when it was requested or submitted
	settled bool      // a receipt for one part has been recorded
}

type earlyReceipt struct {
	Receipt
	at time.Time
}

// Stats counts what the notifier holds in memory.
type Stats struct {
	Open     int // reminders not yet in a final state
	Awaiting int // message ids (in every form) awaiting a receipt
	Early    int // receipts whose message id is not known yet
	Recent   int // settled reminders remembered for Get (at most Config.Recent)
}

// Stats reports what the notifier holds in memory.
func (n *Notifier) Stats() Stats {
	n.mu.Lock()
	defer n.mu.Unlock()
	return Stats{Open: len(n.open), Awaiting: len(n.byMessage), Early: len(n.early), Recent: len(n.recent)}
}

// New returns a Notifier. Call Recover before serving requests.
func New(cfg Config) *Notifier {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Keywords == nil {
		cfg.Keywords = DefaultKeywords
	}
	if cfg.ReceiptTimeout <= 0 {
		cfg.ReceiptTimeout = 24 * time.Hour
	}
	if cfg.MaxOpen <= 0 {
		cfg.MaxOpen = 1 << 20
	}
	if cfg.Recent <= 0 {
		cfg.Recent = 1 << 16
	}
	if cfg.SubmitTimeout <= 0 {
		cfg.SubmitTimeout = 30 * time.Second
	}
	if cfg.EarlyWait <= 0 {
		cfg.EarlyWait = time.Minute
	}
	if cfg.CheckpointEvery == 0 {
		cfg.CheckpointEvery = 100_000
	}
	if cfg.SMSCOf == nil {
		name := cfg.SMSC
		cfg.SMSCOf = func(string) string { return name }
	}
	kw := map[string]bool{}
	for _, k := range cfg.Keywords {
		kw[Keyword(k)] = true
	}
	return &Notifier{
		cfg: cfg, keywords: kw, lineOf: senderLines(cfg), mo: smpp.NewReassembler[Inbound](cfg.InboundParts, cfg.InboundWait),
		open: map[string]*open{}, byMessage: map[string]string{}, early: map[string]earlyReceipt{},
		scan: make(chan struct{}, 1), recent: map[string]string{},
	}
}

// Request asks for one reminder.
type Request struct {
	Tenant, Actor   string
	Number, Subject string
	ContractRef     string
	// TemplateID and TemplateVersion name an approved template version of
	// the tenant; Params fill its parameters.
	TemplateID      string
	TemplateVersion int
	Params          map[string]string
	// Text is free text, refused unless Config.FreeText.
	Text string
	Line string
	// ID is the reminder id; a retried request with the same id returns the
	// reminder's state instead of sending again. Empty means a fresh id.
	ID string
	// Unseen says the caller read the contact stream and found no event
	// of reminder ID, so Remind need not read it again; a request racing
	// it under the same id still ends answered from the stream (the ids
	// of a reminder's events derive from it, and the store refuses a
	// second content under one).
	Unseen bool
	// Defer, if set, is shown the reasons of a denying decision; when it
	// returns true (every denying rule is one that passes later, such as
	// quiet hours), Remind records nothing and answers StateDeferred, so a
	// planned reminder can be tried again later under the same id.
	Defer func(reasons []ledger.Reason) bool
}

// Result is a reminder's state after a request.
type Result struct {
	ReminderID string
	State      string
	Reasons    []ledger.Reason
	MessageIDs []string
	// Events are the reminder's events: those this request appended, or
	// all of them when Replayed.
	Events []ledger.Event
	// Replayed is set when the reminder id was already known and nothing
	// was done but report its state.
	Replayed bool
}

// LineOf returns the line a reminder of tenant naming line goes from:
// line itself, else the tenant's sender line, else the default line.
func (n *Notifier) LineOf(tenant, line string) string {
	if line == "" {
		line = n.lineOf[tenant]
	}
	if line == "" {
		line = n.cfg.DefaultLine
	}
	return line
}

// Remind runs one reminder through the gate and, if allowed, submits it.
func (n *Notifier) Remind(ctx context.Context, r Request) (Result, error) {
	fresh := r.ID == ""
	if fresh {
		r.ID = ledger.NewID()
	}
	r.Line = n.LineOf(r.Tenant, r.Line)
	if owner, ok := n.cfg.Lines[r.Line]; ok && owner != r.Tenant {
		return Result{}, ErrForeignLine
	}
	stream := ledger.ContactStream(r.Tenant, r.Subject)
	if !fresh && !r.Unseen {
		// A caller's id may be a retry: answer with what happened then.
		if res, ok, err := n.existing(ctx, r.Tenant, r.Subject, r.ID); err != nil || ok {
			return res, err
		}
	}
	res := Result{ReminderID: r.ID}
	prep, err := n.prepare(ctx, r)
	if err != nil {
		return res, err
	}
	// The request is recorded together with its outcome, in one append:
	// [Requested, Denied] or [Requested, Dispatched] at the revision the
	// decision read.
	q := Query{Tenant: r.Tenant, Subject: r.Subject, Number: r.Number, Channel: ledger.ChannelFlash,
		Purpose: ledger.PurposeService, Line: r.Line, Contract: r.ContractRef}
	// asOf is the log position the allowing decision read, pos that of the
	// dispatch.
	var asOf, pos uint64
	var allowed Decision
	for attempt := 0; ; attempt++ {
		if attempt == 200 {
			return res, ErrContended
		}
		now := n.cfg.Now().UTC()
		req, err := n.event(r, now, ledger.ReminderRequested{
			ReminderID: r.ID, ContractRef: r.ContractRef, TemplateID: r.TemplateID, TemplateVersion: r.TemplateVersion,
			ContentHash: prep.hash, Line: r.Line,
		})
		if err != nil {
			return Result{}, err
		}
		req.ID = eventID(r.Tenant, r.ID, ledger.TypeReminderRequested)
		req.PII = prep.sealed
		d, err := n.cfg.Decider.Decide(ctx, q)
		if err != nil {
			return res, fmt.Errorf("notify: decide: %w", err)
		}
		// The template's reasons come first: they say what would be sent.
		d.Reasons = append(slices.Clone(prep.reasons), d.Reasons...)
		d.Allowed = d.Allowed && prep.ok
		if !d.Allowed && r.Defer != nil && r.Defer(d.Reasons) {
			res.State, res.Reasons = StateDeferred, d.Reasons
			return res, nil
		}
		expected := ledger.Exact(d.Revision)
		var ev ledger.Event
		if d.Allowed {
			ev, err = n.event(r, now, ledger.ReminderDispatched{
				ReminderID: r.ID, ContractRef: r.ContractRef, TemplateID: r.TemplateID, TemplateVersion: r.TemplateVersion,
				ContentHash: prep.hash, Line: r.Line, SMSC: n.cfg.SMSCOf(r.Line), Reasons: d.Reasons, RulesVersion: d.RulesVersion, AsOf: d.AsOf,
			})
		} else {
			// A denial needs no revision check: nothing is sent.
			expected = ledger.Any()
			ev, err = n.event(r, now, ledger.ReminderDenied{ReminderID: r.ID, Reasons: d.Reasons, RulesVersion: d.RulesVersion, AsOf: d.AsOf})
		}
		if err != nil {
			return res, err
		}
		// From the dispatch until the submit has been made, opt-outs for this
		// subject wait (see Exclusive): an opt-out acknowledged before the
		// dispatch makes it fail; one acknowledged after finds it submitted.
		gate := n.gate.of(r.Subject)
		if d.Allowed {
			gate.RLock()
		}
		stored, err := n.cfg.Store.Append(ctx, stream, expected, []ledger.Event{req, ev})
		if err != nil && d.Allowed {
			gate.RUnlock()
		}
		if errors.Is(err, ledger.ErrWrongRevision) {
			// Something happened to this number since the decision read its
			// stream (maybe an opt-out): decide again on the new state.
			if err := sleep(ctx, time.Duration(min(attempt, 20))*time.Millisecond); err != nil {
				return res, err
			}
			continue
		}
		if errors.Is(err, ledger.ErrIDConflict) {
			// The same reminder id raced in from another request.
			if res, ok, err := n.existing(ctx, r.Tenant, r.Subject, r.ID); err != nil || ok {
				return res, err
			}
		}
		if err != nil {
			return res, fmt.Errorf("notify: record request: %w", err)
		}
		if d.Allowed {
			n.hold(&open{ref: ref{r.Tenant, r.Subject, r.ID, r.Line}, at: now})
		}
		res.Events = append(res.Events, stored...)
		res.Reasons = d.Reasons
		n.state(StateRequested)
		if !d.Allowed {
			n.mu.Lock()
			n.forget(r.Tenant+"/"+r.ID, r.Subject)
			n.mu.Unlock()
			res.State = StateDenied
			n.state(StateDenied)
			return res, nil
		}
		n.state(StateDispatched)
		asOf, pos, allowed = d.AsOf, stored[len(stored)-1].Position, d
		break
	}

	// The dispatch is recorded: a caller going away must not abandon the
	// submit half-way, which would leave its outcome unknown. Its own
	// deadline bounds it instead, as the gate is held until it returns.
	rec := context.WithoutCancel(ctx)
	sctx, cancel := context.WithTimeout(rec, n.cfg.SubmitTimeout)
	var ids []string
	denied, err := n.recheck(sctx, q, asOf, pos)
	if err == nil && denied == nil {
		denied, err = n.stillApproved(sctx, r, prep, allowed)
	}
	if err != nil {
		// Unsure whether the reminder is still allowed: do not send it.
		err = fmt.Errorf("%w: check before submit: %w", ErrNotSent, err)
	} else if denied == nil {
		ids, err = n.cfg.Sender.Submit(sctx, Message{Number: r.Number, Line: r.Line, Text: prep.text, Flash: true})
	}
	cancel()
	n.gate.of(r.Subject).RUnlock()
	var ev ledger.Event
	var build error
	switch {
	case denied != nil:
		// Dispatched but never submitted: the denial is its final state, with
		// the reasons of the decision as of the dispatch.
		n.cfg.Log.Info("reminder cancelled before submit: denied as of its dispatch",
			"reminder", r.ID, "tenant", r.Tenant, "rules", denyRules(denied.Reasons), "as_of", denied.AsOf)
		ev, build = n.event(r, n.cfg.Now(), ledger.ReminderDenied{ReminderID: r.ID, Reasons: denied.Reasons,
			RulesVersion: denied.RulesVersion, AsOf: denied.AsOf})
		res.State, res.Reasons = StateDenied, denied.Reasons
	case err == nil:
		n.track(ref{r.Tenant, r.Subject, r.ID, r.Line}, ids, n.cfg.Now())
		ev, build = n.event(r, n.cfg.Now(), ledger.ReminderSubmitted{ReminderID: r.ID, MessageIDs: ids, Parts: len(ids), SMSC: n.cfg.SMSCOf(r.Line)})
		res.State, res.MessageIDs = StateSubmitted, ids
	case errors.Is(err, ErrPermanent):
		ev, build = n.event(r, n.cfg.Now(), ledger.ReminderFailed{ReminderID: r.ID, Status: "refused", Detail: err.Error()})
		res.State = StateFailed
	case errors.Is(err, ErrUnavailable):
		ev, build = n.event(r, n.cfg.Now(), ledger.ReminderFailed{ReminderID: r.ID, Status: "smsc_unavailable", Detail: err.Error()})
		res.State = StateFailed
	case errors.Is(err, ErrNotSent):
		// Never reached the SMSC: failed, and a new reminder may be requested.
		ev, build = n.event(r, n.cfg.Now(), ledger.ReminderFailed{ReminderID: r.ID, Status: "not_sent", Detail: err.Error()})
		res.State = StateFailed
	default:
		n.cfg.Log.Warn("submit outcome unknown", "reminder", r.ID, "tenant", r.Tenant, "err", err)
		ev, build = n.event(r, n.cfg.Now(), ledger.ReminderOutcomeUnknown{ReminderID: r.ID, Detail: "submit: " + err.Error()})
		res.State = StateUnknown
	}
	if build != nil {
		return res, build
	}
	stored, err := n.cfg.Store.Append(rec, stream, ledger.Any(), []ledger.Event{ev})
	if err != nil {
		return res, fmt.Errorf("notify: record submit outcome: %w", err)
	}
	res.Events = append(res.Events, stored...)
	if res.State != StateSubmitted {
		n.finish(r.Tenant, r.ID)
	}
	n.state(res.State)
	if res.State == StateSubmitted {
		n.replayEarly(rec, ids)
	}
	return res, nil
}

// ownCounted reports whether rule counts contacts (projections.Rule.Counts):
// the reminder's own dispatch feeds it, so a decision made after it may
// deny by it without anything having changed.
func ownCounted(rule string) bool {
	r, ok := projections.LookupRule(rule)
	return ok && r.Counts != ""
}

// recheck closes the gap the dispatch's revision check leaves: facts in the
// subject's stream (global suppression, erasure) and the line's stream
// (suspension) also deny, and may have been appended after the decision
// read the log at asOf. If either stream's last event lies after asOf, the
// reminder is decided again as of its dispatch at pos; recheck returns that
// decision if it denies by a rule other than ownCounted, else nil.
func (n *Notifier) recheck(ctx context.Context, q Query, asOf, pos uint64) (*Decision, error) {
	streams := []string{ledger.SubjectStream(q.Subject)}
	if q.Line != "" {
		streams = append(streams, ledger.LineStream(q.Tenant, q.Line))
	}
	moved := false
	for _, s := range streams {
		rev, err := n.cfg.Store.StreamRevision(ctx, s)
		if err != nil {
			return nil, err
		}
		if rev == 0 {
			continue
		}
		last, err := n.cfg.Store.ReadStream(ctx, s, rev, 1)
		if err != nil {
			return nil, err
		}
		if len(last) > 0 && last[len(last)-1].Position > asOf {
			moved = true
			break
		}
	}
	if !moved {
		return nil, nil
	}
	q.After = pos
	d, err := n.cfg.Decider.Decide(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("decide again: %w", err)
	}
	if d.Allowed || denyRules(d.Reasons) == "" {
		return nil, nil
	}
	return &d, nil
}

// denyRules lists the rules that deny in reasons, except ownCounted.
func denyRules(reasons []ledger.Reason) string {
	var rules []string
	for _, r := range reasons {
		if r.Effect == "deny" && !ownCounted(r.Rule) {
			rules = append(rules, r.Rule)
		}
	}
	return strings.Join(rules, ",")
}

// gate orders reminders and opt-outs per subject: a reminder holds its
// subject's stripe shared from dispatch to submit; Exclusive holds it alone.
// Exclusive holds a stripe across a durable append, so there are enough
// stripes that concurrent writes about different subjects rarely share one.
type gate struct{ stripes [4096]sync.RWMutex }

func (g *gate) of(subject string) *sync.RWMutex {
	h := fnv.New32a()
	h.Write([]byte(subject))
	return &g.stripes[h.Sum32()%uint32(len(g.stripes))]
}

// Exclusive runs fn, typically the append of an opt-out or of anything
// else that can turn a decision, while no reminder to subject is between
// its dispatch and its submit. Once fn has returned, no reminder to subject
// that has not already been submitted will be, unless a new decision
// allows it: the dispatches still pending fail on the new revision.
// It may wait as long as one submit takes.
func (n *Notifier) Exclusive(subject string, fn func() error) error {
	g := n.gate.of(subject)
	g.Lock()
	defer g.Unlock()
	return fn()
}

func (n *Notifier) event(r Request, at time.Time, payload any) (ledger.Event, error) {
	e, err := ledger.NewEvent(r.Tenant, r.Subject, at, payload)
	if err != nil {
		return ledger.Event{}, err
	}
	e.Actor = r.Actor
	return e, nil
}

func (n *Notifier) state(s string) {
	if n.cfg.OnState != nil {
		n.cfg.OnState(s)
	}
}

// finish forgets a reminder that reached a final state.
func (n *Notifier) finish(tenant, id string) {
	n.mu.Lock()
	n.drop(tenant + "/" + id)
	n.mu.Unlock()
}

// drop forgets a reminder and its message ids; n.mu must be held.
func (n *Notifier) drop(key string) {
	o := n.open[key]
	if o == nil {
		return
	}
	n.forget(key, o.subject)
	for _, id := range o.ids {
		for _, f := range idForms(id) {
			if n.byMessage[f] == key {
				delete(n.byMessage, f)
			}
		}
	}
}

// forget moves a reminder from open to recent; n.mu must be held.
func (n *Notifier) forget(key, subject string) {
	delete(n.open, key)
	if _, ok := n.recent[key]; ok {
		return
	}
	if len(n.recentKeys) < n.cfg.Recent {
		n.recentKeys = append(n.recentKeys, key)
	} else {
		delete(n.recent, n.recentKeys[n.recentNext])
		n.recentKeys[n.recentNext] = key
		n.recentNext = (n.recentNext + 1) % len(n.recentKeys)
	}
	n.recent[key] = subject
}

// hold keeps a reminder in memory until it reaches a final state. At the
// cap, some other reminder is dropped: its receipt will be matched from
// the log instead, and Get reads the log for it.
func (n *Notifier) hold(o *open) {
	key := o.tenant + "/" + o.id
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, ok := n.open[key]; !ok && len(n.open) >= n.cfg.MaxOpen {
		for k := range n.open {
			n.drop(k)
			break
		}
	}
	n.open[key] = o
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// eventID derives a stable event id so a retried request cannot append the
// same step twice.
// Looker finds a stored event by its id.
type Looker interface {
	Lookup(ctx context.Context, id string) (ledger.Event, bool, error)
}

func eventID(tenant, reminder, typ string) string {
	return uuid.NewSHA1(idSpace, []byte(tenant+"/"+reminder+"/"+typ)).String()
}

var idSpace = uuid.MustParse("5d3c9f0e-6a51-4f4e-9b7a-2f1d0c8e7a10")

package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/google/uuid"

	"github.com/heed/heed/api/auth"
	"github.com/heed/heed/ledger"
	"github.com/heed/heed/ledger/book"
	"github.com/heed/heed/ledger/pii"
	"github.com/heed/heed/notify"
)

// Written is what every write answers: where the event landed.
type Written struct {
	ID         string    `json:"id" doc:"event id"`
	Type       string    `json:"type"`
	Stream     string    `json:"stream"`
	Revision   uint64    `json:"revision" doc:"1-based index in the stream"`
	Position   uint64    `json:"position" doc:"1-based, gap-free index in the global log"`
	RecordedAt time.Time `json:"recorded_at"`
	Replayed   bool      `json:"replayed,omitempty" doc:"true when this was a retry of an already-recorded write"`
}

func written(e ledger.Event, replayed bool) Written {
	return Written{ID: e.ID, Type: e.Type, Stream: e.Stream, Revision: e.Revision, Position: e.Position, RecordedAt: e.RecordedAt, Replayed: replayed}
}

type writeOutput struct {
	Status int
	Body   Written
}

// Common carries what every write body may hold.
type Common struct {
	ID         string     `json:"id,omitempty" format:"uuid" doc:"client event id; a retry with the same id and content is a no-op"`
	OccurredAt *time.Time `json:"occurred_at,omitempty" doc:"business time; defaults to now. At most 5 minutes ahead of heed's clock and 30 days back (both configurable), unless backfill is set"`
	Backfill   bool       `json:"backfill,omitempty" doc:"record history older than the back-dating window; only keys allowed to backfill may set it, and a backfilled contact counts for the limits at its occurred_at"`
}

// IdempotencyKey is the Idempotency-Key header of a write input: a retry
// with the same key (per tenant and event type) is a no-op.
type IdempotencyKey struct {
	Key string `header:"Idempotency-Key" maxLength:"200" doc:"makes a retried request a no-op (alternative to a client event id)"`
}

type consentIn struct {
	IdempotencyKey
	Body struct {
		Common
		Number    string          `json:"number" maxLength:"32" example:"+8613800138000"`
		Purposes  []purpose       `json:"purposes" minItems:"1"`
		Channels  []channel       `json:"channels" minItems:"1"`
		Source    consentSource   `json:"source"`
		Evidence  ledger.Evidence `json:"evidence,omitempty"`
		ExpiresAt *time.Time      `json:"expires_at,omitempty"`
	}
}

type withdrawalIn struct {
	IdempotencyKey
	Body struct {
		Common
		Number   string      `json:"number" maxLength:"32"`
		Purposes []purpose   `json:"purposes,omitempty" doc:"empty means every purpose"`
		Channels []channel   `json:"channels,omitempty" doc:"empty means every channel"`
		All      bool        `json:"all,omitempty"`
		Via      withdrawVia `json:"via"`
		RawText  string      `json:"raw_text,omitempty" maxLength:"1000"`
		Line     string      `json:"line,omitempty" maxLength:"64"`
	}
}

type relationshipIn struct {
	IdempotencyKey
	Body struct {
		Common
		Number      string     `json:"number" maxLength:"32"`
		ContractRef string     `json:"contract_ref" minLength:"1" maxLength:"128"`
		Product     string     `json:"product,omitempty" maxLength:"128"`
		StartsAt    *time.Time `json:"starts_at,omitempty" doc:"defaults to occurred_at"`
		ExpiresAt   *time.Time `json:"expires_at,omitempty"`
		Plan        string     `json:"plan,omitempty" pattern:"^[A-Za-z0-9_.-]{1,64}$" doc:"a reminder plan of this business (POST /v1/plans): its reminders are planned from expires_at, and the number is kept sealed to send them"`
	}
}

type relationshipEndIn struct {
	IdempotencyKey
	Ref  string `path:"ref" minLength:"1" maxLength:"128"`
	Body struct {
		Common
		Number  string     `json:"number" maxLength:"32"`
		EndedAt *time.Time `json:"ended_at,omitempty"`
		Reason  string     `json:"reason,omitempty" maxLength:"500"`
	}
}

type contactIn struct {
	IdempotencyKey
	Body struct {
		Common
		Number      string  `json:"number" maxLength:"32"`
		Line        string  `json:"line" minLength:"1" maxLength:"64"`
		Channel     channel `json:"channel"`
		Purpose     purpose `json:"purpose"`
		Campaign    string  `json:"campaign,omitempty" maxLength:"128"`
		Outcome     string  `json:"outcome,omitempty" maxLength:"64"`
		DurationS   int     `json:"duration_s,omitempty" minimum:"0"`
		DecisionID  string  `json:"decision_id,omitempty" maxLength:"200" doc:"the id of the decision the contact relied on (POST /v1/decisions)"`
		DecisionTag string  `json:"decision_tag,omitempty" maxLength:"64" doc:"that decision's tag"`
	}
}

type complaintIn struct {
	IdempotencyKey
	Body struct {
		Common
		Number  string          `json:"number" maxLength:"32"`
		Line    string          `json:"line,omitempty" maxLength:"64"`
		Channel channel         `json:"channel,omitempty"`
		Source  complaintSource `json:"source" doc:"a business key records customer complaints only"`
		Reason  string          `json:"reason,omitempty" maxLength:"1000"`
	}
}

type suppressionIn struct {
	IdempotencyKey
	Body struct {
		Common
		Number string `json:"number" maxLength:"32"`
		Action string `json:"action,omitempty" enum:"list,lift" default:"list"`
		List   string `json:"list" minLength:"1" maxLength:"64"`
		Source string `json:"source,omitempty" maxLength:"128"`
		Reason string `json:"reason,omitempty" maxLength:"500"`
	}
}

func (s *Server) registerBusiness() {
	biz := huma.Middlewares{s.requireKey(auth.RoleBusiness)}
	sec := []map[string][]string{{"key": {}}}
	post := func(id, path, summary string) huma.Operation {
		return huma.Operation{OperationID: id, Method: http.MethodPost, Path: path, Summary: summary,
			Tags: []string{"business"}, Middlewares: biz, Security: sec, DefaultStatus: http.StatusCreated,
			Errors: []int{400, 401, 403, 409, 413, 422}}
	}

	huma.Register(s.api, post("record-consent", "/v1/consents", "Record a consent"),
		func(ctx context.Context, in *consentIn) (*writeOutput, error) {
			b := in.Body
			return s.writeContact(ctx, "body.number", b.Number, b.Common, in.Key, &ledger.ConsentGranted{
				Purposes: strs(b.Purposes), Channels: strs(b.Channels), Source: string(b.Source), Evidence: b.Evidence, ExpiresAt: b.ExpiresAt})
		})
	huma.Register(s.api, post("record-withdrawal", "/v1/withdrawals", "Record an opt-out"),
		func(ctx context.Context, in *withdrawalIn) (*writeOutput, error) {
			b := in.Body
			return s.writeContact(ctx, "body.number", b.Number, b.Common, in.Key, &ledger.ConsentWithdrawn{
				Purposes: strs(b.Purposes), Channels: strs(b.Channels), All: b.All, Via: string(b.Via), RawText: b.RawText, Line: b.Line})
		})
	startOp := post("start-relationship", "/v1/relationships", "Record the start of a customer relationship (a contract)")
	startOp.Description = "The event's id derives from the business and the contract ref, as an imported book's does (a client id or " +
		"Idempotency-Key is not used): the same request again is a retry, and a contract ref already recorded for another number " +
		"is refused (409), whether that was recorded by this operation or by an import."
	huma.Register(s.api, startOp,
		func(ctx context.Context, in *relationshipIn) (*writeOutput, error) {
			b := in.Body
			if b.Plan != "" {
				if err := s.knownPlan(ctx, b.Plan, b.ExpiresAt); err != nil {
					return nil, err
				}
			}
			// The id derives from the contract ref, as an imported book's
			// does: a ref recorded for one number is an id the store
			// refuses in another number's stream, whichever way each was
			// recorded, and a repeated request is a retry.
			c := b.Common
			c.ID = book.EventID(who(ctx).key.Tenant, b.ContractRef)
			return s.writeAt(ctx, "body.number", b.Number, c, "", func(at time.Time, e164 string) any {
				if b.StartsAt != nil {
					at = b.StartsAt.UTC()
				}
				r := &ledger.RelationshipStarted{ContractRef: b.ContractRef, Product: b.Product, StartsAt: at, ExpiresAt: b.ExpiresAt, Plan: b.Plan}
				if b.Plan != "" {
					r.Number = e164
				}
				return r
			})
		})
	endOp := post("end-relationship", "/v1/relationships/{ref}/end", "Record the end of a customer relationship")
	endOp.Errors = append(endOp.Errors, http.StatusNotFound)
	huma.Register(s.api, endOp,
		func(ctx context.Context, in *relationshipEndIn) (*writeOutput, error) {
			b := in.Body
			_, subject, err := s.person("body.number", b.Number)
			if err != nil {
				return nil, err
			}
			if err := s.started(ctx, who(ctx).key.Tenant, subject, in.Ref); err != nil {
				return nil, err
			}
			return s.writeAt(ctx, "body.number", b.Number, b.Common, in.Key, func(at time.Time, _ string) any {
				if b.EndedAt != nil {
					at = b.EndedAt.UTC()
				}
				return &ledger.RelationshipEnded{ContractRef: in.Ref, EndedAt: at, Reason: b.Reason}
			})
		})
	huma.Register(s.api, post("record-contact", "/v1/contacts", "Record a call or message placed by an outside system"),
		func(ctx context.Context, in *contactIn) (*writeOutput, error) {
			b := in.Body
			if err := s.ownLine(ctx, "body.line", b.Line); err != nil {
				return nil, err
			}
			var cited string
			out, err := s.writeAt(ctx, "body.number", b.Number, b.Common, in.Key, func(at time.Time, e164 string) any {
				// The projection never sees the number, so the callee's
				// region is recorded with the contact for the region-burst
				// rule; it is the same name Decide computes for the number
				// it is asked about.
				return &ledger.ContactMade{
					Line: b.Line, Channel: string(b.Channel), Purpose: string(b.Purpose), Campaign: b.Campaign, Outcome: b.Outcome,
					DurationS: b.DurationS, DecisionID: b.DecisionID, Region: s.region(e164), Backfill: b.Backfill,
					Decision: s.cite(who(ctx).key.Tenant, e164, string(b.Channel), string(b.Purpose), b.Line, at, b.DecisionID, b.DecisionTag, &cited)}
			})
			if err == nil && out.Status == http.StatusCreated {
				s.cfg.Metrics.contact(cited)
			}
			return out, err
		})
	huma.Register(s.api, post("record-complaint", "/v1/complaints", "Record a customer's complaint against the business or one of its lines"),
		func(ctx context.Context, in *complaintIn) (*writeOutput, error) {
			b := in.Body
			if b.Source != "customer" {
				return nil, huma.Error403Forbidden("a business records only its customers' complaints; operators and regulators use POST /v1/complaints/external with a regulator key")
			}
			if err := s.ownLine(ctx, "body.line", b.Line); err != nil {
				return nil, err
			}
			return s.writeContact(ctx, "body.number", b.Number, b.Common, in.Key, &ledger.ComplaintReceived{
				Line: b.Line, Channel: string(b.Channel), Source: string(b.Source), Reason: b.Reason})
		})
	huma.Register(s.api, post("record-suppression", "/v1/suppressions", "Put a number on, or take it off, the tenant's do-not-contact list"),
		func(ctx context.Context, in *suppressionIn) (*writeOutput, error) {
			b := in.Body
			var p any = &ledger.SuppressionListed{Scope: "tenant", List: b.List, Source: b.Source}
			if b.Action == "lift" {
				p = &ledger.SuppressionLifted{Scope: "tenant", List: b.List, Reason: b.Reason}
			}
			return s.writeContact(ctx, "body.number", b.Number, b.Common, in.Key, p)
		})

	s.registerDecisions(biz, sec)
	s.registerReminders(biz, sec)
	s.registerPlans(biz, sec)
	s.registerSubjects(biz, sec)
	s.registerImport(biz, sec)
	s.registerBook(biz, sec)
	s.registerCDR(biz, sec)
}

// occurred returns the business time of a write: the client's, bounded so
// that it cannot be dated ahead of heed's clock (beyond a small skew) nor
// further back than the back-dating window unless the key may backfill
// and asked to.
func (s *Server) occurred(ctx context.Context, loc string, c Common) (time.Time, error) {
	now := s.cfg.Now().UTC()
	if c.Backfill && !who(ctx).key.Backfill {
		return time.Time{}, huma.Error403Forbidden("this key may not backfill; an admin creates keys that may")
	}
	if c.OccurredAt == nil {
		return now, nil
	}
	at := c.OccurredAt.UTC()
	if err := s.bounded(loc, at, now, c.Backfill); err != nil {
		return time.Time{}, err
	}
	return at, nil
}

// bounded checks a client's occurred_at against now.
func (s *Server) bounded(loc string, at, now time.Time, backfill bool) error {
	if at.After(now.Add(s.cfg.MaxSkew)) {
		return huma.Error422UnprocessableEntity("occurred_at is in the future",
			&huma.ErrorDetail{Location: loc, Message: fmt.Sprintf("must not be more than %s ahead of the server's clock", span(s.cfg.MaxSkew))})
	}
	if !backfill && at.Before(now.Add(-s.cfg.MaxBackdate)) {
		return huma.Error422UnprocessableEntity("occurred_at is too far in the past",
			&huma.ErrorDetail{Location: loc, Message: fmt.Sprintf("must be within %s of now; older history needs backfill, by a key allowed to backfill", span(s.cfg.MaxBackdate))})
	}
	return nil
}

// cite verifies the decision a contact of e164 at occurred cites, and
// notes its status in *status. The contact is recorded whatever it finds.
func (s *Server) cite(tenant, e164, channel, purpose, line string, occurred time.Time, id, tag string, status *string) *ledger.CitedDecision {
	q := question{tenant: tenant, subject: s.cfg.Pseudonyms.Pseudonym(e164), channel: channel, purpose: purpose, line: line}
	c := s.tags.verify(q, occurred, id, tag, s.cfg.DecisionTTL, s.cfg.MaxSkew)
	*status = c.Status
	return c
}

// span writes d in days when it is whole days.
func span(d time.Duration) string {
	if d >= 24*time.Hour && d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%d days", d/(24*time.Hour))
	}
	return d.String()
}

// ownLine refuses a line that heed's configuration gives to another
// tenant: contacts and complaints on a line belong to the line's tenant.
func (s *Server) ownLine(ctx context.Context, loc, line string) error {
	if owner, ok := s.cfg.Lines[line]; ok && line != "" && owner != who(ctx).key.Tenant {
		return huma.Error403Forbidden("that line belongs to another business", &huma.ErrorDetail{Location: loc, Message: "not your line"})
	}
	return nil
}

// writeContact appends one event to the caller's contact stream for number.
func (s *Server) writeContact(ctx context.Context, loc, number string, c Common, idemKey string, payload any) (*writeOutput, error) {
	return s.writeAt(ctx, loc, number, c, idemKey, func(time.Time, string) any { return payload })
}

// writeAt is writeContact for payloads that hold the occurred time or
// depend on the number (payload gets both): a retry is compared with the
// payload rebuilt at the original time.
func (s *Server) writeAt(ctx context.Context, loc, number string, c Common, idemKey string, payload func(at time.Time, e164 string) any) (*writeOutput, error) {
	p := who(ctx)
	e164, subject, err := s.person(loc, number)
	if err != nil {
		return nil, err
	}
	build := func(at time.Time) any { return payload(at, e164) }
	at, err := s.occurred(ctx, "body.occurred_at", c)
	if err != nil {
		return nil, err
	}
	ev, err := ledger.NewEvent(p.key.Tenant, subject, at, build(at))
	if err != nil {
		return nil, s.storeError("build", err)
	}
	ev.Actor = p.key.ID
	ev.ID = s.eventID(p.key.Tenant, c.ID, idemKey, ev.Type)
	// The store validates the event and refuses it whole (ErrInvalid, a
	// 422 from storeError) before anything is written.
	var rebuild func(time.Time) any
	if c.OccurredAt == nil {
		rebuild = build
	}
	var e ledger.Event
	var replayed bool
	err = s.cfg.Gate.Exclusive(subject, func() error {
		var err error
		e, replayed, err = s.append(ctx, ledger.ContactStream(p.key.Tenant, subject), ev, rebuild)
		return err
	})
	if err != nil {
		return nil, err
	}
	out := &writeOutput{Status: http.StatusCreated, Body: written(e, replayed)}
	if replayed {
		out.Status = http.StatusOK
	}
	return out, nil
}

var idemSpace = uuid.MustParse("0b8e4f6a-3c2d-4e71-a9f5-7d6c5b4a3e21")

// eventID picks the event id: the client's, or one derived from the
// Idempotency-Key (scoped to tenant and event type), or a fresh one.
func (s *Server) eventID(tenant, clientID, idemKey, typ string) string {
	switch {
	case clientID != "":
		return clientID
	case idemKey != "":
		return uuid.NewSHA1(idemSpace, []byte(tenant+"\x00"+typ+"\x00"+idemKey)).String()
	}
	return ledger.NewID()
}

// append appends ev and treats a retry as a no-op. A retry whose
// occurred_at was defaulted carries a new time, so when rebuild is set a
// stored event with the same id, type, actor and the payload rebuilt at its
// time counts as the same write.
func (s *Server) append(ctx context.Context, stream string, ev ledger.Event, rebuild func(time.Time) any) (ledger.Event, bool, error) {
	out, err := s.cfg.Store.Append(ctx, stream, ledger.Any(), []ledger.Event{ev})
	if err == nil {
		// The contact index learns of the event from the log (a customer's
		// query catches it up first), not here: noting it in every writer
		// made the writers queue on the index's lock.
		// A retry with identical content comes back as originally stored.
		return out[0], out[0].Replayed, nil
	}
	started := ev.Type == ledger.TypeRelationshipStarted
	if !errors.Is(err, ledger.ErrIDConflict) || rebuild == nil && !started {
		return ledger.Event{}, false, s.storeError("append", err)
	}
	evs, rerr := s.cfg.Store.ReadStream(ctx, stream, 1, 0)
	if rerr != nil && !errors.Is(rerr, ledger.ErrNotFound) {
		return ledger.Event{}, false, s.storeError("append", err)
	}
	for i := range evs {
		old := &evs[i]
		if rebuild == nil || old.ID != ev.ID || old.Type != ev.Type || old.Actor != ev.Actor {
			continue
		}
		if s.sameWrite(ctx, old, rebuild(old.OccurredAt)) {
			return *old, true, nil
		}
	}
	if started {
		return ledger.Event{}, false, refTaken(evs, ev.ID)
	}
	return ledger.Event{}, false, s.storeError("append", err)
}

// refTaken is the answer to a RelationshipStarted whose id, derived from
// its contract ref, the store holds with other content: in this number's
// stream (evs), or else in another number's. It never names a number.
func refTaken(evs []ledger.Event, id string) error {
	for i := range evs {
		if evs[i].ID == id {
			return huma.Error409Conflict("contract ref already recorded for this number with another product, start, expiry or plan",
				&huma.ErrorDetail{Location: "body.contract_ref", Message: "already recorded: POST /v1/relationships/{ref}/renew moves its expiry"})
		}
	}
	return huma.Error409Conflict("contract ref already recorded for another number",
		&huma.ErrorDetail{Location: "body.contract_ref", Message: "already recorded for another number: a contract ref names one customer's contract"})
}

// sameWrite reports whether payload, written now, is what old recorded:
// the same Data once personal fields are split off, and the same personal
// fields once old's are opened. Sealed bytes cannot be compared: a retry
// after an erasure seals under a new key, and then it is not the same.
func (s *Server) sameWrite(ctx context.Context, old *ledger.Event, payload any) bool {
	data, err := json.Marshal(payload)
	if err != nil {
		return false
	}
	again := ledger.Event{Type: old.Type, Schema: old.Schema, Data: data}
	fields, err := ledger.SplitPersonal(&again)
	if err != nil || !sameJSON(old.Data, again.Data) {
		return false
	}
	if len(old.PII) == 0 || s.cfg.PII == nil {
		return len(old.PII) == 0 && fields == nil
	}
	opened, err := s.cfg.PII.OpenEvent(ctx, old)
	return err == nil && maps.Equal(opened, fields)
}

func sameJSON(a, b json.RawMessage) bool {
	var ca, cb bytes.Buffer
	if json.Compact(&ca, a) != nil || json.Compact(&cb, b) != nil {
		return false
	}
	return bytes.Equal(ca.Bytes(), cb.Bytes())
}

// Decisions.

type decisionIn struct {
	Body struct {
		Number  string     `json:"number" maxLength:"32"`
		Channel channel    `json:"channel"`
		Purpose purpose    `json:"purpose"`
		Line    string     `json:"line,omitempty" maxLength:"64"`
		At      *time.Time `json:"at,omitempty" doc:"ask about a past moment; defaults to now"`
	}
}

// DecisionBody is the eligibility answer.
type DecisionBody struct {
	ID           string          `json:"id" doc:"cite it as decision_id, with the tag as decision_tag, when recording the contact"`
	Tag          string          `json:"tag" doc:"heed's MAC over the decision: tenant, number, channel, purpose, line, allowed, rules version, as_of and time"`
	At           time.Time       `json:"at" doc:"the moment the decision is about"`
	Allowed      bool            `json:"allowed"`
	Reasons      []ledger.Reason `json:"reasons"`
	RulesVersion string          `json:"rules_version"`
	AsOf         uint64          `json:"as_of" doc:"log position the decision saw"`
	Revision     uint64          `json:"revision" doc:"revision of the contact stream the decision read"`
}

type decisionOut struct{ Body DecisionBody }

func (s *Server) registerDecisions(mw huma.Middlewares, sec []map[string][]string) {
	huma.Register(s.api, huma.Operation{OperationID: "decide", Method: http.MethodPost, Path: "/v1/decisions",
		Summary: "Ask whether a number may be contacted, and why", Tags: []string{"business"},
		Middlewares: mw, Security: sec, Errors: []int{400, 401, 403, 422}},
		func(ctx context.Context, in *decisionIn) (*decisionOut, error) {
			p := who(ctx)
			if err := s.ownLine(ctx, "body.line", in.Body.Line); err != nil {
				return nil, err
			}
			e164, subject, err := s.person("body.number", in.Body.Number)
			if err != nil {
				return nil, err
			}
			var at time.Time // zero: now
			if in.Body.At != nil {
				at = in.Body.At.UTC()
			}
			d, err := s.cfg.Decider.Decide(ctx, notify.Query{Tenant: p.key.Tenant, Subject: subject, Number: e164,
				Channel: string(in.Body.Channel), Purpose: string(in.Body.Purpose), Line: in.Body.Line, At: at})
			if err != nil {
				s.cfg.Log.Error("decide", "err", err)
				return nil, huma.Error500InternalServerError("decision failed")
			}
			if d.Reasons == nil {
				d.Reasons = []ledger.Reason{}
			}
			if at.IsZero() {
				at = s.cfg.Now().UTC()
			}
			id, tag := s.tags.issue(question{tenant: p.key.Tenant, subject: subject, channel: string(in.Body.Channel), purpose: string(in.Body.Purpose), line: in.Body.Line},
				d.Allowed, d.RulesVersion, d.AsOf, at)
			return &decisionOut{Body: DecisionBody{ID: id, Tag: tag, At: at, Allowed: d.Allowed, Reasons: d.Reasons, RulesVersion: d.RulesVersion, AsOf: d.AsOf, Revision: d.Revision}}, nil
		})
}

// Reminders.

type reminderIn struct {
	Key  string `header:"Idempotency-Key" maxLength:"200" doc:"alternative to id"`
	Body struct {
		ID              string            `json:"id,omitempty" maxLength:"64" pattern:"^[A-Za-z0-9._:-]+$" doc:"reminder id; a retry with the same id never sends twice"`
		Number          string            `json:"number" maxLength:"32"`
		RelationshipRef string            `json:"relationship_ref" minLength:"1" maxLength:"128" doc:"the contract the reminder is about: it must be active, or in its grace period, for this business and number"`
		TemplateID      string            `json:"template_id,omitempty" maxLength:"64" doc:"an approved template of this business (POST /v1/templates)"`
		TemplateVersion int               `json:"template_version,omitempty" minimum:"1" doc:"the approved version of template_id"`
		Params          map[string]string `json:"params,omitempty" maxProperties:"20" doc:"a value for each of the template's parameters, checked against its type"`
		Text            string            `json:"text,omitempty" maxLength:"500" doc:"free text: refused unless the server runs with --dev-free-text"`
		Line            string            `json:"line,omitempty" maxLength:"64"`
	}
}

// ReminderBody is a reminder's state.
type ReminderBody struct {
	ID         string          `json:"id"`
	State      string          `json:"state" enum:"requested,denied,dispatched,submitted,delivered,failed,outcome_unknown"`
	Denied     bool            `json:"denied"`
	Reasons    []ledger.Reason `json:"reasons"`
	MessageIDs []string        `json:"message_ids,omitempty"`
	Events     []Written       `json:"events"`
	Replayed   bool            `json:"replayed,omitempty" doc:"true when the id was known and nothing was sent"`
	Failure    string          `json:"failure,omitempty" doc:"why a failed reminder failed: smsc_unavailable (no SMSC bound: nothing was sent), the SMSC's refusal of the submit, or the receipt's final status"`
}

type reminderOut struct {
	Status int
	Body   ReminderBody
}

type reminderGetIn struct {
	ID string `path:"id" maxLength:"64"`
}

func reminderBody(r notify.Result) ReminderBody {
	b := ReminderBody{ID: r.ReminderID, State: r.State, Denied: r.State == notify.StateDenied, Reasons: r.Reasons,
		MessageIDs: r.MessageIDs, Events: make([]Written, 0, len(r.Events)), Replayed: r.Replayed}
	if b.Reasons == nil {
		b.Reasons = []ledger.Reason{}
	}
	for _, e := range r.Events {
		b.Events = append(b.Events, written(e, false))
		if e.Type == ledger.TypeReminderFailed && r.State == notify.StateFailed {
			var f ledger.ReminderFailed
			if json.Unmarshal(e.Data, &f) == nil {
				b.Failure = f.Status
			}
		}
	}
	return b
}

func (s *Server) registerReminders(mw huma.Middlewares, sec []map[string][]string) {
	huma.Register(s.api, huma.Operation{OperationID: "send-reminder", Method: http.MethodPost, Path: "/v1/reminders",
		Summary: "Send a service reminder as flash SMS, if the rules allow it", Tags: []string{"business"},
		Middlewares: mw, Security: sec, Errors: []int{400, 401, 403, 409, 422, 503}},
		func(ctx context.Context, in *reminderIn) (*reminderOut, error) {
			if s.cfg.Reminders == nil {
				return nil, huma.Error503ServiceUnavailable("the notifier is not running")
			}
			p := who(ctx)
			b := in.Body
			e164, subject, err := s.person("body.number", b.Number)
			if err != nil {
				return nil, err
			}
			switch {
			case b.Text != "" && b.TemplateID != "":
				return nil, huma.Error422UnprocessableEntity("give a template or a text, not both",
					&huma.ErrorDetail{Location: "body.text", Message: "a reminder names a template"})
			case b.TemplateID != "" && b.TemplateVersion == 0:
				return nil, huma.Error422UnprocessableEntity("name the approved version",
					&huma.ErrorDetail{Location: "body.template_version", Message: "required with template_id"})
			case b.TemplateID == "" && (b.TemplateVersion != 0 || len(b.Params) > 0):
				return nil, huma.Error422UnprocessableEntity("template_version and params need a template_id",
					&huma.ErrorDetail{Location: "body.template_id", Message: "required"})
			}
			id := b.ID
			if id == "" && in.Key != "" {
				id = uuid.NewSHA1(idemSpace, []byte(p.key.Tenant+"\x00reminder\x00"+in.Key)).String()
			}
			res, err := s.cfg.Reminders.Remind(ctx, notify.Request{Tenant: p.key.Tenant, Actor: p.key.ID, Number: e164,
				Subject: subject, ContractRef: b.RelationshipRef, Text: b.Text, TemplateID: b.TemplateID,
				TemplateVersion: b.TemplateVersion, Params: b.Params, Line: b.Line, ID: id})
			switch {
			case errors.Is(err, notify.ErrFreeText), errors.Is(err, notify.ErrNoText):
				return nil, huma.Error422UnprocessableEntity("flash carries only approved service templates: name template_id, template_version and params",
					&huma.ErrorDetail{Location: "body.template_id", Message: "required; free text is not sent as flash"})
			case errors.Is(err, notify.ErrForeignLine):
				return nil, huma.Error422UnprocessableEntity("that line belongs to another business", &huma.ErrorDetail{Location: "body.line", Message: "not your line"})
			case errors.Is(err, notify.ErrContended):
				return nil, huma.Error503ServiceUnavailable("the number's contact state kept changing; retry with the same id")
			case err != nil:
				return nil, s.storeError("remind", err)
			}
			st := http.StatusCreated
			if res.Replayed {
				st = http.StatusOK
			}
			return &reminderOut{Status: st, Body: reminderBody(res)}, nil
		})
	huma.Register(s.api, huma.Operation{OperationID: "get-reminder", Method: http.MethodGet, Path: "/v1/reminders/{id}",
		Summary: "Get a reminder's state and events", Tags: []string{"business"},
		Middlewares: mw, Security: sec, Errors: []int{401, 403, 404}},
		func(ctx context.Context, in *reminderGetIn) (*reminderOut, error) {
			if s.cfg.Reminders == nil {
				return nil, huma.Error503ServiceUnavailable("the notifier is not running")
			}
			res, err := s.cfg.Reminders.Get(ctx, who(ctx).key.Tenant, in.ID)
			if errors.Is(err, notify.ErrNotFound) {
				return nil, huma.Error404NotFound("no such reminder")
			}
			if err != nil {
				return nil, s.storeError("reminder", err)
			}
			return &reminderOut{Status: http.StatusOK, Body: reminderBody(res)}, nil
		})
}

// Subjects.

type subjectIn struct {
	Number string `path:"number" maxLength:"32"`
}

type historyOut struct {
	Body struct {
		Events []ledger.Event `json:"events"`
	}
}

// ErasureReasons are the reasons a business may give for an erasure. The
// reason stays readable in the log after the key is gone, so it is a code,
// not free text that could say something about the person.
var ErasureReasons = []string{"customer_request", "retention_expired", "legal_obligation", "consent_withdrawn", "other"}

type erasureIn struct {
	Number string `path:"number" maxLength:"32"`
	Body   *struct {
		Reason erasureReason `json:"reason,omitempty" doc:"defaults to customer_request"`
	} `required:"false"`
}

func (s *Server) registerSubjects(mw huma.Middlewares, sec []map[string][]string) {
	huma.Register(s.api, huma.Operation{OperationID: "subject-history", Method: http.MethodGet, Path: "/v1/subjects/{number}/history",
		Summary: "Everything this tenant recorded about a number, in order", Tags: []string{"business"},
		Middlewares: mw, Security: sec, Errors: []int{401, 403, 422}},
		func(ctx context.Context, in *subjectIn) (*historyOut, error) {
			_, subject, err := s.person("path.number", in.Number)
			if err != nil {
				return nil, err
			}
			evs, err := s.cfg.Store.ReadStream(ctx, ledger.ContactStream(who(ctx).key.Tenant, subject), 1, 0)
			if err != nil && !errors.Is(err, ledger.ErrNotFound) {
				return nil, s.storeError("history", err)
			}
			out := &historyOut{}
			out.Body.Events = evs
			if out.Body.Events == nil {
				out.Body.Events = []ledger.Event{}
			}
			return out, nil
		})
	huma.Register(s.api, huma.Operation{OperationID: "erase-subject", Method: http.MethodPost, Path: "/v1/subjects/{number}/erasure",
		Summary:     "Erase what this business holds of a number's personal data (its key is destroyed; opt-outs and suppressions keep working)",
		Description: "Destroys this tenant's data key for the number and records SubjectErased in this tenant's contact stream; other businesses' data and decisions are untouched.",
		Tags:        []string{"business"}, Middlewares: mw, Security: sec, DefaultStatus: http.StatusCreated, Errors: []int{401, 403, 422, 503}},
		func(ctx context.Context, in *erasureIn) (*writeOutput, error) {
			p := who(ctx)
			_, subject, err := s.person("path.number", in.Number)
			if err != nil {
				return nil, err
			}
			reason := "customer_request"
			if in.Body != nil && in.Body.Reason != "" {
				reason = string(in.Body.Reason)
			}
			evs, err := s.erase(ctx, subject, []string{p.key.Tenant}, false, p.key.ID, ledger.SubjectErased{Reason: reason})
			if err != nil {
				return nil, err
			}
			return erasedOutput(evs[0], evs[0].Replayed), nil
		})
}

// erase destroys each tenant's data key for subject and records
// SubjectErased in each tenant's contact stream; everywhere adds the key
// for no tenant, as a customer's erasure at every business asks.
func (s *Server) erase(ctx context.Context, subject string, tenants []string, everywhere bool, actor string, what ledger.SubjectErased) ([]ledger.Event, error) {
	if s.cfg.PII == nil {
		return nil, huma.Error503ServiceUnavailable("no key store is configured")
	}
	var evs []ledger.Event
	err := s.cfg.Gate.Exclusive(subject, func() error {
		var err error
		if !everywhere {
			var e ledger.Event
			e, err = pii.Erase(ctx, s.cfg.Store, s.cfg.PII, subject, tenants[0], actor, what)
			evs = []ledger.Event{e}
		} else {
			evs, err = pii.EraseAll(ctx, s.cfg.Store, s.cfg.PII, subject, tenants, actor, what)
		}
		return err
	})
	if err != nil {
		return nil, s.storeError("erase", err)
	}
	return evs, nil
}

func erasedOutput(e ledger.Event, replayed bool) *writeOutput {
	out := &writeOutput{Status: http.StatusCreated, Body: written(e, replayed)}
	if replayed {
		out.Status = http.StatusOK
	}
	return out
}

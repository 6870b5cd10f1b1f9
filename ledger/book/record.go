package book

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"time"
	"unicode"

	"github.com/google/uuid"

	"github.com/heed/heed/ledger"
	"github.com/heed/heed/ledger/pii"
)

// row is a checked row: what its relationship is, about whom.
type row struct {
	line    int
	subject string
	rel     ledger.RelationshipStarted
}

// record records a checked row, sealing its number with keys; it returns
// only errors that end the run (the store's, ctx's), having counted and
// reported the row otherwise.
func (im *Importer) record(ctx context.Context, r *row, keys *pii.Prepared) error {
	o, err := im.append(ctx, r, keys)
	switch {
	case err != nil:
		return err
	case o == recorded:
		im.recorded.Add(1)
	case o == renewed:
		im.renewed.Add(1)
	case o == already:
		im.already.Add(1)
	default:
		im.refuse(r.line, fieldError{o.field(), o.why()})
	}
	return nil
}

var planID = regexp.MustCompile(ledger.PlanIDPattern)

// check turns a row into its relationship, or says what is wrong with each
// of its fields; err is the store's, when it could not tell.
func (im *Importer) check(ctx context.Context, r *raw) (*row, []fieldError, error) {
	var errs []fieldError
	bad := func(field, why string) { errs = append(errs, fieldError{field, why}) }
	var e164, subject string
	switch {
	case r.number == "":
		bad("number", "missing")
	case len(r.number) > MaxNumber:
		bad("number", fmt.Sprintf("longer than %d bytes", MaxNumber))
	default:
		var err error
		if e164, subject, err = im.cfg.Subject(r.number); err != nil {
			bad("number", "not a valid phone number: give it in E.164 form (+ and the country code) or as a national number, ASCII digits only")
		}
	}
	text := func(field, v string, max int, need bool) bool {
		switch {
		case v == "" && need:
			bad(field, "missing")
		case len(v) > max:
			bad(field, fmt.Sprintf("longer than %d bytes", max))
		case hasControl(v):
			bad(field, "holds control characters")
		default:
			return true
		}
		return false
	}
	text("contract_ref", r.ref, MaxRef, true)
	text("product", r.product, MaxProduct, false)
	if text("plan", r.plan, MaxPlan, false) && r.plan != "" {
		if !planID.MatchString(r.plan) {
			bad("plan", "not a plan id: letters, digits, '_', '.' or '-'")
		} else if known, err := im.plans.defined(ctx, r.plan); err != nil {
			return nil, nil, err
		} else if !known {
			bad("plan", "no such reminder plan for this tenant")
		}
	}
	loc := im.cfg.Location
	if e164 != "" && im.cfg.Zone != nil {
		if z := im.cfg.Zone(e164); z != nil {
			loc = z
		}
	}
	starts, okS := date(r.starts, "starts_at", loc, bad)
	expires, okE := date(r.expires, "expires_at", loc, bad)
	if okS && okE && !expires.After(starts) {
		bad("expires_at", "not after starts_at")
	}
	if len(errs) > 0 {
		return nil, errs, nil
	}
	rel := ledger.RelationshipStarted{ContractRef: r.ref, Product: r.product, StartsAt: starts, ExpiresAt: &expires, Plan: r.plan}
	if r.plan != "" {
		// The scheduler sends the plan's reminders to it; the store
		// seals it (Config.Keys).
		rel.Number = e164
	}
	return &row{line: r.line, subject: subject, rel: rel}, nil, nil
}

func hasControl(s string) bool {
	for _, c := range s {
		if unicode.IsControl(c) {
			return true
		}
	}
	return false
}

// date reads a date: RFC 3339, or a bare day (its midnight in loc, the
// customer's zone).
func date(v, field string, loc *time.Location, bad func(field, why string)) (time.Time, bool) {
	switch {
	case v == "":
		bad(field, "missing")
		return time.Time{}, false
	case len(v) > maxDate:
		bad(field, fmt.Sprintf("longer than %d bytes", maxDate))
		return time.Time{}, false
	}
	layout := time.RFC3339Nano
	if len(v) == len(time.DateOnly) {
		layout = time.DateOnly
	}
	t, err := time.ParseInLocation(layout, v, loc)
	if err != nil {
		bad(field, "not a date: give 2026-12-31 or 2026-12-31T00:00:00+08:00")
		return time.Time{}, false
	}
	if y := t.Year(); y < 1900 || y > 2200 {
		bad(field, "not a plausible date (a year from 1900 to 2200)")
		return time.Time{}, false
	}
	return t.UTC(), true
}

// outcome is how a row ended: recorded, renewed, already, or a field and
// why the row was refused.
type outcome struct{ f, w string }

var (
	recorded = outcome{w: "recorded"}
	renewed  = outcome{w: "renewed"}
	already  = outcome{w: "already"}
)

func refused(field, why string) outcome { return outcome{field, why} }

func (o outcome) field() string { return o.f }
func (o outcome) why() string   { return o.w }

// renewalSpace namespaces the event ids of renewals an import records.
var renewalSpace = uuid.MustParse("9d4e1b7a-2c6f-4a83-b5e0-7f3c9a1d6e24")

// renewalID is the id of the RelationshipRenewed an import records for a
// ref's new expiry: the same in every run.
func renewalID(tenant, ref string, expires time.Time) string {
	return uuid.NewSHA1(renewalSpace, []byte(tenant+"\x00"+ref+"\x00"+expires.UTC().Format(time.RFC3339Nano))).String()
}

// append records a row in its contact stream, unless the stream already
// holds it. It reads the stream first, so that a re-run appends nothing
// and a ref already recorded is told apart: the same relationship
// (already), the same one running to a later expiry (a renewal), or
// another; then it appends at the revision it read, so that what it read
// still holds when the event lands.
func (im *Importer) append(ctx context.Context, r *row, keys *pii.Prepared) (outcome, error) {
	stream := ledger.ContactStream(im.cfg.Tenant, r.subject)
	for range 8 {
		// Most of a book's numbers are new: their streams are told absent
		// by the revision alone, cheaper than a read that fails.
		var evs []ledger.Event
		rev, err := im.cfg.Store.StreamRevision(ctx, stream)
		if err == nil && rev > 0 {
			evs, err = im.cfg.Store.ReadStream(ctx, stream, 1, 0)
		}
		if err != nil && !errors.Is(err, ledger.ErrNotFound) {
			return outcome{}, err
		}
		o, payload, id := im.compare(evs, r)
		if payload == nil {
			return o, nil
		}
		now := im.cfg.Now().UTC()
		at := now
		if s, ok := payload.(*ledger.RelationshipStarted); ok && !s.StartsAt.After(now) {
			// A relationship happened when it started: the event is then
			// the same in every run. One that starts later, heed learnt
			// of now.
			at = s.StartsAt
		}
		ev, err := im.event(ctx, r.subject, at, payload, id, keys)
		if errors.Is(err, ledger.ErrInvalid) {
			return refused("row", "cannot be encoded"), nil
		}
		if err != nil {
			return outcome{}, err
		}
		// Sealed by event: past the Sealing, which would only split it
		// again.
		_, err = im.cfg.Store.Append(ctx, stream, ledger.Exact(uint64(len(evs))), []ledger.Event{ev})
		switch {
		case err == nil:
			return o, nil
		case errors.Is(err, ledger.ErrWrongRevision):
			continue // the stream moved on: read it again
		case errors.Is(err, ledger.ErrIDConflict):
			// Not in this stream (it was read), so in another's.
			return refused("contract_ref", "already recorded for another number"), nil
		case errors.Is(err, ledger.ErrInvalid):
			return refused("row", "refused by the ledger as invalid"), nil
		}
		return outcome{}, err
	}
	return outcome{}, errors.New("book: a contact stream kept changing while a row was recorded")
}

// event is the event of a row's payload (a RelationshipStarted or a
// RelationshipRenewed) with id, its one personal field, the number,
// sealed with the prepared key of its subject: the event pii.Sealing
// makes of ledger.NewEvent's, byte for byte, without encoding the payload
// twice to split the number off.
func (im *Importer) event(ctx context.Context, subject string, at time.Time, payload any, id string, keys *pii.Prepared) (ledger.Event, error) {
	typ := ledger.TypeRelationshipRenewed
	var fields map[string]string
	if s, ok := payload.(*ledger.RelationshipStarted); ok {
		typ = ledger.TypeRelationshipStarted
		if s.Number != "" {
			c := *s
			fields, c.Number = map[string]string{"number": c.Number}, ""
			payload = &c
		}
	}
	data, err := json.Marshal(payload)
	if err != nil {
		return ledger.Event{}, fmt.Errorf("%w: %s: %v", ledger.ErrInvalid, typ, err)
	}
	ev := ledger.Event{ID: id, Type: typ, Tenant: im.cfg.Tenant, Subject: subject, OccurredAt: at.UTC(), Actor: im.cfg.Actor, Schema: 1, Data: data}
	if fields == nil {
		return ev, nil
	}
	owner := pii.Owner(ev.Tenant, ev.Subject)
	if ev.PII, err = keys.SealEvent(owner, ev.ID, fields); errors.Is(err, pii.ErrNoKey) {
		ev.PII, err = im.cfg.Keys.SealEvent(ctx, owner, ev.ID, fields)
	}
	return ev, err
}

// compare finds what a row's stream holds of its contract ref and says
// what to append (nil: nothing) with which id, and what it will mean.
func (im *Importer) compare(evs []ledger.Event, r *row) (outcome, any, string) {
	want := &r.rel
	id := EventID(im.cfg.Tenant, want.ContractRef)
	var got *ledger.RelationshipStarted
	var expires *time.Time
	for i := range evs {
		switch evs[i].Type {
		case ledger.TypeRelationshipStarted:
			var p ledger.RelationshipStarted
			if json.Unmarshal(evs[i].Data, &p) != nil || p.ContractRef != want.ContractRef && evs[i].ID != id {
				continue
			}
			got, expires = &p, p.ExpiresAt
		case ledger.TypeRelationshipRenewed:
			var p ledger.RelationshipRenewed
			if got == nil || json.Unmarshal(evs[i].Data, &p) != nil || p.ContractRef != want.ContractRef {
				continue
			}
			expires = &p.ExpiresAt
		}
	}
	switch {
	case got == nil:
		return recorded, want, id
	case got.ContractRef != want.ContractRef || got.Product != want.Product || !got.StartsAt.Equal(want.StartsAt) || got.Plan != want.Plan:
		return refused("contract_ref", "already recorded for this number with another product, start or plan"), nil, ""
	case expires != nil && expires.Equal(*want.ExpiresAt):
		return already, nil, ""
	case expires != nil && expires.After(*want.ExpiresAt):
		return refused("expires_at", "before the expiry already recorded for this contract: a renewal only moves it later"), nil, ""
	}
	return renewed, &ledger.RelationshipRenewed{ContractRef: want.ContractRef, ExpiresAt: *want.ExpiresAt},
		renewalID(im.cfg.Tenant, want.ContractRef, *want.ExpiresAt)
}

package book

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode"

	"github.com/heed/heed/ledger"
)

// record checks a row and records it; it returns only errors that end the
// run (the store's, ctx's), having counted and reported the row otherwise.
func (im *Importer) record(ctx context.Context, r *raw) error {
	ev, errs, err := im.check(ctx, r)
	if err != nil {
		return err
	}
	if len(errs) > 0 {
		im.refuse(r.line, errs...)
		return nil
	}
	outcome, err := im.append(ctx, ev)
	switch {
	case err != nil:
		return err
	case outcome == recorded:
		im.recorded.Add(1)
	case outcome == already:
		im.already.Add(1)
	default:
		im.refuse(r.line, fieldError{"contract_ref", string(outcome)})
	}
	return nil
}

// check turns a row into its event, or says what is wrong with each of
// its fields; err is the store's, when it could not tell.
func (im *Importer) check(ctx context.Context, r *raw) (*ledger.Event, []fieldError, error) {
	var errs []fieldError
	bad := func(field, why string) { errs = append(errs, fieldError{field, why}) }
	subject := ""
	switch {
	case r.number == "":
		bad("number", "missing")
	case len(r.number) > MaxNumber:
		bad("number", fmt.Sprintf("longer than %d bytes", MaxNumber))
	default:
		var err error
		if _, subject, err = im.cfg.Subject(r.number); err != nil {
			bad("number", "not a valid phone number: give it in E.164 form (+ and the country code) or as a national number, ASCII digits only")
		}
	}
	text := func(field, v string, max int, need bool) {
		switch {
		case v == "" && need:
			bad(field, "missing")
		case len(v) > max:
			bad(field, fmt.Sprintf("longer than %d bytes", max))
		case hasControl(v):
			bad(field, "holds control characters")
		}
	}
	text("contract_ref", r.ref, MaxRef, true)
	text("product", r.product, MaxProduct, false)
	text("plan", r.plan, MaxPlan, false)
	starts, okS := im.date(r.starts, "starts_at", bad)
	expires, okE := im.date(r.expires, "expires_at", bad)
	if okS && okE && !expires.After(starts) {
		bad("expires_at", "not after starts_at")
	}
	if r.plan != "" && len(r.plan) <= MaxPlan && !hasControl(r.plan) {
		known, err := im.plans.defined(ctx, r.plan)
		switch {
		case err != nil:
			return nil, nil, err
		case !known:
			bad("plan", "no such reminder plan for this tenant")
		}
	}
	if len(errs) > 0 {
		return nil, errs, nil
	}
	data, err := json.Marshal(&ledger.RelationshipStarted{ContractRef: r.ref, Product: r.product, StartsAt: starts, ExpiresAt: &expires})
	if err != nil {
		return nil, []fieldError{{"row", "cannot be encoded"}}, nil
	}
	// A relationship happened when it started, which makes the event the
	// same in every run (a retry the store recognises), unless it starts
	// in the future: then heed learnt of it now.
	at := starts
	if now := im.cfg.Now().UTC(); starts.After(now) {
		at = now
	}
	return &ledger.Event{ID: EventID(im.cfg.Tenant, r.ref), Type: ledger.TypeRelationshipStarted, Tenant: im.cfg.Tenant,
		Subject: subject, OccurredAt: at, Actor: im.cfg.Actor, Schema: 1, Data: data}, nil, nil
}

func hasControl(s string) bool {
	for _, c := range s {
		if unicode.IsControl(c) {
			return true
		}
	}
	return false
}

// date reads a date: RFC 3339, or a bare day (its midnight in the
// configured zone).
func (im *Importer) date(v, field string, bad func(field, why string)) (time.Time, bool) {
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
	t, err := time.ParseInLocation(layout, v, im.cfg.Location)
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

// outcome is how an append of a row ended: recorded, already, or why the
// store would not take it.
type outcome string

const (
	recorded outcome = ""
	already  outcome = "already"
)

// append appends a row's event to its contact stream, unless the stream
// already holds it. It reads the stream first, so that a re-run appends
// nothing and tells an identical row (already) from a ref recorded with
// other values, and appends at the revision it read, so that what it read
// still holds when the event lands.
func (im *Importer) append(ctx context.Context, ev *ledger.Event) (outcome, error) {
	stream := ledger.ContactStream(ev.Tenant, ev.Subject)
	for range 8 {
		evs, err := im.cfg.Store.ReadStream(ctx, stream, 1, 0)
		if err != nil && !errors.Is(err, ledger.ErrNotFound) {
			return "", err
		}
		if o, found := compare(evs, ev); found {
			return o, nil
		}
		start := time.Now()
		out, err := im.cfg.Store.Append(ctx, stream, ledger.Exact(uint64(len(evs))), []ledger.Event{*ev})
		switch {
		case err == nil:
			if out[0].RecordedAt.Before(start) {
				return already, nil
			}
			return recorded, nil
		case errors.Is(err, ledger.ErrWrongRevision):
			continue // the stream moved on: read it again
		case errors.Is(err, ledger.ErrIDConflict):
			// Not in this stream (it was read), so in another's.
			return "already recorded for another number", nil
		case errors.Is(err, ledger.ErrInvalid):
			return "refused by the ledger as invalid", nil
		}
		return "", err
	}
	return "", fmt.Errorf("book: the contact stream of row's subject kept changing")
}

// compare looks for a row's event among its stream's events: the same
// relationship is already recorded; the same id or contract ref with other
// values is refused.
func compare(evs []ledger.Event, ev *ledger.Event) (outcome, bool) {
	if len(evs) == 0 {
		return "", false
	}
	var want ledger.RelationshipStarted
	if err := json.Unmarshal(ev.Data, &want); err != nil {
		return "cannot be encoded", true
	}
	for i := range evs {
		if evs[i].Type != ledger.TypeRelationshipStarted {
			continue
		}
		var got ledger.RelationshipStarted
		if err := json.Unmarshal(evs[i].Data, &got); err != nil || got.ContractRef != want.ContractRef && evs[i].ID != ev.ID {
			continue
		}
		if sameRelationship(&got, &want) {
			return already, true
		}
		return "already recorded for this number with another product, dates or plan", true
	}
	return "", false
}

func sameRelationship(a, b *ledger.RelationshipStarted) bool {
	return a.ContractRef == b.ContractRef && a.Product == b.Product && a.StartsAt.Equal(b.StartsAt) &&
		(a.ExpiresAt == nil) == (b.ExpiresAt == nil) && (a.ExpiresAt == nil || a.ExpiresAt.Equal(*b.ExpiresAt))
}

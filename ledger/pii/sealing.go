package pii

import (
	"context"
	"fmt"

	"github.com/heed/heed/ledger"
)

// Sealing is a ledger.Store that seals every event's personal fields
// before the store below sees them: it moves them out of Data
// (ledger.SplitPersonal) into PII, sealed with SealEvent under
// Owner(tenant, subject). Whoever writes through it, no personal free text
// reaches the log in clear; reads pass through, so they return
// ciphertext.
//
// An event that arrives with PII already sealed (by a writer that sealed
// its own fields) passes as it is, provided Data holds no personal field.
// With nil keys, Sealing refuses events that have personal fields.
type Sealing struct {
	ledger.Store
	keys *Keys
}

// Seal returns store behind a Sealing that seals with keys.
func Seal(store ledger.Store, keys *Keys) *Sealing { return &Sealing{Store: store, keys: keys} }

// Append implements ledger.Store.
func (s *Sealing) Append(ctx context.Context, stream string, expected ledger.Expected, events []ledger.Event) ([]ledger.Event, error) {
	var out []ledger.Event
	for i := range events {
		e := events[i]
		fields, err := ledger.SplitPersonal(&e)
		if err != nil {
			return nil, err
		}
		if fields == nil {
			continue
		}
		if len(e.PII) > 0 {
			return nil, fmt.Errorf("%w: %s: personal fields both sealed and in data", ledger.ErrInvalid, e.Type)
		}
		if s.keys == nil {
			return nil, fmt.Errorf("%w: %s: personal fields, and no keys to seal them with", ledger.ErrInvalid, e.Type)
		}
		if e.Subject == "" {
			return nil, fmt.Errorf("%w: %s: personal fields without a subject to seal them for", ledger.ErrInvalid, e.Type)
		}
		if e.ID == "" {
			// The nonce derives from the id, so it must be known now.
			e.ID = ledger.NewID()
		}
		if e.PII, err = s.keys.SealEvent(ctx, Owner(e.Tenant, e.Subject), e.ID, fields); err != nil {
			return nil, err
		}
		if out == nil {
			out = append([]ledger.Event(nil), events...)
		}
		out[i] = e
	}
	if out == nil {
		out = events
	}
	return s.Store.Append(ctx, stream, expected, out)
}

// OpenEvent returns the personal fields sealed in e, or nil if it has none. It
// fails with ErrErased once the key that sealed them has been destroyed.
func (k *Keys) OpenEvent(ctx context.Context, e *ledger.Event) (map[string]string, error) {
	if len(e.PII) == 0 {
		return nil, nil
	}
	return k.OpenContext(ctx, Owner(e.Tenant, e.Subject), e.PII)
}

package auth

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/heed/heed/ledger"
)

// Appender is the part of a ledger.Store that records key events.
type Appender interface {
	Append(ctx context.Context, stream string, expected ledger.Expected, events []ledger.Event) ([]ledger.Event, error)
}

// eventID is the id of a key's lifecycle event: a function of the key and
// the type, so a retried record appends nothing new.
func eventID(typ, key string) string {
	return uuid.NewSHA1(uuid.NameSpaceURL, []byte("heed:"+typ+"/"+key)).String()
}

// CreatedEvent is the KeyCreated event of key, issued by actor.
func CreatedEvent(key Key, actor, reason string) (ledger.Event, error) {
	p := &ledger.KeyCreated{Key: key.ID, Role: key.Role, Tenant: key.Tenant, Reason: reason, Backfill: key.Backfill}
	if !key.Expires.IsZero() {
		exp := key.Expires
		p.Expires = &exp
	}
	ev, err := ledger.NewEvent("", "", key.Created, p)
	if err != nil {
		return ledger.Event{}, err
	}
	ev.ID, ev.Actor = eventID(ledger.TypeKeyCreated, key.ID), actor
	return ev, nil
}

// RevokedEvent is the KeyRevoked event of a revoked key; its time, actor
// and reason are the revocation's.
func RevokedEvent(key Key) (ledger.Event, error) {
	if key.Revoked.IsZero() {
		return ledger.Event{}, fmt.Errorf("auth: key %s is not revoked", key.ID)
	}
	ev, err := ledger.NewEvent("", "", key.Revoked, &ledger.KeyRevoked{Key: key.ID, Role: key.Role, Tenant: key.Tenant, Reason: key.Reason})
	if err != nil {
		return ledger.Event{}, err
	}
	ev.ID, ev.Actor = eventID(ledger.TypeKeyRevoked, key.ID), key.RevokedBy
	return ev, nil
}

// Record appends ev to the key lifecycle stream.
func Record(ctx context.Context, log Appender, ev ledger.Event) (ledger.Event, error) {
	out, err := log.Append(ctx, ledger.KeysStream, ledger.Any(), []ledger.Event{ev})
	if err != nil {
		return ledger.Event{}, fmt.Errorf("auth: record %s: %w", ev.Type, err)
	}
	return out[0], nil
}

// Stream is the part of a ledger.Store the revocation follower reads.
type Stream interface {
	ReadStream(ctx context.Context, stream string, from uint64, limit int) ([]ledger.Event, error)
}

// Follower applies KeyRevoked events of the log to a key file, so a key
// revoked through one instance is refused by every instance that shares
// the log (and the copy of the key file).
type Follower struct {
	Keys *Keys
	Log  Stream
	next uint64 // revision of the keys stream to read next
}

// CatchUp applies the revocations recorded since the last call and returns
// how many keys it revoked here.
func (f *Follower) CatchUp(ctx context.Context) (int, error) {
	if f.next == 0 {
		f.next = 1
	}
	n := 0
	for {
		evs, err := f.Log.ReadStream(ctx, ledger.KeysStream, f.next, 256)
		if errors.Is(err, ledger.ErrNotFound) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		if len(evs) == 0 {
			return n, nil
		}
		for i := range evs {
			e := &evs[i]
			f.next = e.Revision + 1
			if e.Type != ledger.TypeKeyRevoked {
				continue
			}
			p, err := ledger.Decode(e)
			if err != nil {
				return n, err
			}
			r := p.(*ledger.KeyRevoked)
			_, did, err := f.Keys.Revoke(Revocation{ID: r.Key, By: e.Actor, Reason: r.Reason, At: e.OccurredAt, Force: true})
			if errors.Is(err, ErrUnknownKey) {
				continue // issued by an instance whose key file this one does not share
			}
			if err != nil {
				return n, err
			}
			if did {
				n++
			}
		}
	}
}

// Run catches up every interval and writes last-used times every
// flushEvery, until ctx is done; it then flushes once more.
func (f *Follower) Run(ctx context.Context, every, flushEvery time.Duration, warn func(error)) error {
	t := time.NewTicker(every)
	defer t.Stop()
	lastFlush := time.Now()
	for {
		select {
		case <-ctx.Done():
			if err := f.Keys.Flush(); err != nil {
				warn(err)
			}
			return ctx.Err()
		case <-t.C:
		}
		if f.Log != nil {
			if _, err := f.CatchUp(ctx); err != nil && ctx.Err() == nil {
				warn(err)
			}
		}
		if time.Since(lastFlush) >= flushEvery {
			lastFlush = time.Now()
			if err := f.Keys.Flush(); err != nil {
				warn(err)
			}
		}
	}
}

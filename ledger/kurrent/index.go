package kurrent

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/kurrent-io/KurrentDB-Client-Go/kurrentdb"

	"github.com/heed/heed/ledger"
)

// The position index. heed position p is the p-th event of a prefixed
// stream in $all order. $all is append-only and every reader sees the same
// order, so every instance computes the same positions without agreeing on
// anything; only deleting or scavenging heed's streams would break it.

func less(a, b kurrentdb.Position) bool {
	return a.Commit < b.Commit || a.Commit == b.Commit && a.Prepare < b.Prepare
}

// add records that the indexer has passed p; heed says whether the event
// at p is one of heed's. Anything at or before what was already seen is a
// redelivery and ignored, so a resumed subscription cannot duplicate.
func (s *Store) add(p kurrentdb.Position, id uuid.UUID, heed bool) {
	s.imu.Lock()
	defer s.imu.Unlock()
	if s.started && !less(s.seen, p) {
		return
	}
	s.seen, s.started = p, true
	if heed {
		s.pos = append(s.pos, p)
		s.ids[id] = uint64(len(s.pos))
		if s.idx != nil {
			s.pending = append(s.pending, entry{p, id})
		}
	}
	close(s.changed)
	s.changed = make(chan struct{})
}

// catchUp reads $all from where the index stands to its end.
func (s *Store) catchUp(ctx context.Context) error {
	const page = 1024
	for {
		s.imu.RLock()
		var from kurrentdb.AllPosition = kurrentdb.Start{}
		if s.started {
			from = s.seen
		}
		s.imu.RUnlock()
		n := 0
		err := s.do(ctx, "read $all", func(c *kurrentdb.Client, _ int) error {
			n = 0
			rs, err := c.ReadAll(ctx, kurrentdb.ReadAllOptions{From: from}, page)
			if err != nil {
				return err
			}
			return drain(rs, func(r *kurrentdb.RecordedEvent) {
				n++
				s.add(r.Position, r.EventID, strings.HasPrefix(r.StreamID, s.opts.Prefix))
			})
		})
		if err != nil {
			return err
		}
		s.imu.RLock()
		full := len(s.pending) >= flushEvery
		s.imu.RUnlock()
		if full {
			if err := s.flushIndex(); err != nil {
				return err
			}
		}
		if n < page {
			return nil
		}
	}
}

// follow keeps the index current with a catch-up subscription to $all,
// filtered to heed's streams. The library does not resubscribe by itself:
// when the subscription drops, follow subscribes again after the last
// position it recorded, until the store closes.
func (s *Store) follow(ctx context.Context) {
	wait := s.opts.Backoff
	for first := true; ctx.Err() == nil; first = false {
		if !first {
			s.resubs.Add(1)
		}
		c := s.current()
		established := false
		err := protect(func() error { return s.subscribe(ctx, c, &established) })
		if ctx.Err() != nil {
			return
		}
		if established {
			// The server accepted it: a later drop is a new incident, not
			// a failure to back off from.
			wait = s.opts.Backoff
		}
		if code(err) == kurrentdb.ErrorCodeConnectionClosed {
			s.renew(c)
		}
		s.opts.logf("kurrent: $all subscription dropped, resubscribing", "err", err)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return
		}
		wait = min(2*wait, 2*time.Second)
	}
}

// subscribe runs one subscription until it drops.
func (s *Store) subscribe(ctx context.Context, c *kurrentdb.Client, established *bool) error {
	s.imu.RLock()
	var from kurrentdb.AllPosition = kurrentdb.Start{}
	if s.started {
		from = s.seen
	}
	s.imu.RUnlock()
	sub, err := c.SubscribeToAll(ctx, kurrentdb.SubscribeToAllOptions{
		From:   from,
		Filter: &kurrentdb.SubscriptionFilter{Type: kurrentdb.StreamFilterType, Prefixes: []string{s.opts.Prefix}},
	})
	if err != nil {
		return err
	}
	*established = true
	defer sub.Close()
	for {
		ev := sub.Recv()
		switch {
		case ev.SubscriptionDropped != nil:
			if ev.SubscriptionDropped.Error == nil {
				return fmt.Errorf("kurrent: subscription dropped")
			}
			return ev.SubscriptionDropped.Error
		case ev.EventAppeared != nil && ev.EventAppeared.Event != nil:
			r := ev.EventAppeared.Event
			s.add(r.Position, r.EventID, strings.HasPrefix(r.StreamID, s.opts.Prefix))
		case ev.CheckPointReached != nil:
			s.add(*ev.CheckPointReached, uuid.Nil, false)
		}
	}
}

// positionOf returns the heed position of r, an event read from one of
// heed's streams, waiting for the indexer to reach it. The event id is the
// key: stream reads from some server versions carry no commit position.
func (s *Store) positionOf(ctx context.Context, r *kurrentdb.RecordedEvent) (uint64, error) {
	p := r.Position
	for {
		s.imu.RLock()
		pos, found := s.ids[r.EventID]
		reached, changed := p.Commit != 0 && s.started && !less(s.seen, p), s.changed
		if found && p.Commit != 0 && s.pos[pos-1] != p {
			// The id was reused in another stream; trust the position.
			i := sort.Search(len(s.pos), func(i int) bool { return !less(s.pos[i], p) })
			found, pos = i < len(s.pos) && s.pos[i] == p, uint64(i)+1
		}
		s.imu.RUnlock()
		if found {
			return pos, nil
		}
		if reached {
			return 0, fmt.Errorf("%w: no heed event at %v", ErrDiverged, p)
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-s.done:
			return 0, ledger.ErrClosed
		}
	}
}

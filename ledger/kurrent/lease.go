package kurrent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/google/uuid"
	"github.com/kurrent-io/KurrentDB-Client-Go/kurrentdb"

	"github.com/heed/heed/ledger"
)

// record is one event of a stream that is not heed's (the lease and the
// published checkpoints), with its 0-based revision.
type record struct {
	revision uint64
	data     []byte
}

// lastRecord returns the last event of a side stream, or ok=false if the
// stream is empty.
func (s *Store) lastRecord(ctx context.Context, stream string) (r record, ok bool, err error) {
	err = s.do(ctx, "read "+stream, func(c *kurrentdb.Client, _ int) error {
		ok = false
		rs, err := c.ReadStream(ctx, stream, kurrentdb.ReadStreamOptions{Direction: kurrentdb.Backwards, From: kurrentdb.End{}}, 1)
		if err != nil {
			return err
		}
		defer rs.Close()
		ev, err := rs.Recv()
		if errors.Is(err, io.EOF) || code(err) == kurrentdb.ErrorCodeResourceNotFound {
			return nil
		}
		if err != nil {
			return err
		}
		e := ev.OriginalEvent()
		r, ok = record{revision: e.EventNumber, data: e.Data}, true
		return nil
	})
	return r, ok, err
}

// records reads a side stream from revision first (0-based).
func (s *Store) records(ctx context.Context, stream string, first uint64) ([]record, error) {
	var out []record
	err := s.do(ctx, "read "+stream, func(c *kurrentdb.Client, _ int) error {
		out = out[:0]
		rs, err := c.ReadStream(ctx, stream, kurrentdb.ReadStreamOptions{From: kurrentdb.Revision(first)}, 4096)
		if err != nil {
			return err
		}
		defer rs.Close()
		for {
			ev, err := rs.Recv()
			if errors.Is(err, io.EOF) || code(err) == kurrentdb.ErrorCodeResourceNotFound {
				return nil
			}
			if err != nil {
				return err
			}
			e := ev.OriginalEvent()
			out = append(out, record{revision: e.EventNumber, data: e.Data})
		}
	})
	return out, err
}

// appendRecord appends one event to a side stream if it holds exactly
// `after` events (0 for a new stream). The id is fixed for all attempts,
// so a retry after a lost acknowledgement is a no-op on the server.
func (s *Store) appendRecord(ctx context.Context, stream, typ string, id uuid.UUID, after uint64, data []byte) error {
	var state kurrentdb.StreamState = kurrentdb.NoStream{}
	if after > 0 {
		state = kurrentdb.StreamRevision{Value: after - 1}
	}
	ev := kurrentdb.EventData{EventID: id, EventType: typ, ContentType: kurrentdb.ContentTypeJson, Data: data}
	return s.do(ctx, "append to "+stream, func(c *kurrentdb.Client, _ int) error {
		_, err := c.AppendToStream(ctx, stream, kurrentdb.AppendToStreamOptions{StreamState: state}, ev)
		return err
	})
}

// Lease elects one holder among heed instances sharing a cluster, through
// a stream of lease records appended with exact expected revisions.
//
// The holder renews by appending after its own last record. A candidate
// takes over only when the stream's last record has stayed the same for
// longer than the lease's TTL on the candidate's own clock, by appending
// after that record; if the holder renewed meanwhile, the append fails and
// the candidate waits again. No clocks are compared between machines: the
// holder counts its term from before its append, a candidate from after it
// saw the append, so the holder stops before anyone else may start (given
// clocks that run at about the same rate).
type Lease struct {
	store  *Store
	stream string
	holder string
	ttl    time.Duration

	seenRev  int64     // last revision observed, -1 for none
	seenAt   time.Time // when seenRev was first observed
	mine     bool      // our record is the last one
	until    time.Time // end of this holder's term
	inited   bool
	nowClock func() time.Time
}

type leaseRecord struct {
	Holder string `json:"holder"`
	TTLms  int64  `json:"ttl_ms"`
}

// NewLease returns a lease named name (one per elected role) for holder
// with the given term.
func (s *Store) NewLease(name, holder string, ttl time.Duration) *Lease {
	return &Lease{store: s, stream: "lease:" + s.opts.Prefix + name, holder: holder, ttl: ttl, seenRev: -2, nowClock: time.Now}
}

// Held reports whether this instance holds the lease now.
func (l *Lease) Held() bool { return l.mine && l.nowClock().Before(l.until) }

// Try takes or renews the lease if it can, and reports whether this
// instance holds it afterwards. Call it about three times per TTL.
func (l *Lease) Try(ctx context.Context) (bool, error) {
	if !l.inited {
		// Renewals would grow the stream forever; only the last record
		// matters. Best effort: an old server without metadata still works.
		meta := kurrentdb.StreamMetadata{}
		meta.SetMaxCount(16)
		_ = l.store.do(ctx, "lease metadata", func(c *kurrentdb.Client, _ int) error {
			_, err := c.SetStreamMetadata(ctx, l.stream, kurrentdb.AppendToStreamOptions{}, meta)
			return err
		})
		l.inited = true
	}
	start := l.nowClock()
	last, ok, err := l.store.lastRecord(ctx, l.stream)
	if err != nil {
		return l.Held(), err
	}
	rev := int64(-1)
	var lr leaseRecord
	if ok {
		rev = int64(last.revision)
		_ = json.Unmarshal(last.data, &lr)
	}
	if rev != l.seenRev {
		// Someone else appended since our last look (our own appends
		// update seenRev): start counting their term from now.
		l.seenRev, l.seenAt, l.mine = rev, start, false
	}
	free := rev < 0 || lr.Holder == "" || start.Sub(l.seenAt) > l.ttl
	if !l.mine && !free {
		return false, nil
	}
	// Renew, or take over. The exact expected revision makes this the
	// decision: of several instances appending after rev, one wins.
	data, _ := json.Marshal(leaseRecord{Holder: l.holder, TTLms: l.ttl.Milliseconds()})
	err = l.store.appendRecord(ctx, l.stream, "HeedLease", uuid.New(), uint64(rev+1), data)
	if errors.Is(err, ledger.ErrWrongRevision) {
		l.mine = false
		return false, nil
	}
	if err != nil {
		return l.Held(), fmt.Errorf("kurrent: lease: %w", err)
	}
	l.mine, l.until = true, start.Add(l.ttl)
	l.seenRev, l.seenAt = rev+1, start
	return true, nil
}

// Release gives the lease up at once, so another instance need not wait
// for the term to run out; it appends an empty holder after our record.
func (l *Lease) Release(ctx context.Context) error {
	if !l.Held() {
		return nil
	}
	l.mine = false
	data, _ := json.Marshal(leaseRecord{})
	err := l.store.appendRecord(ctx, l.stream, "HeedLease", uuid.New(), uint64(l.seenRev+1), data)
	if errors.Is(err, ledger.ErrWrongRevision) {
		return nil
	}
	return err
}

package smpp_test

import (
	"errors"
	"testing"
	"time"

	"github.com/heed/heed/smpp"
	"github.com/heed/heed/smpp/pdu"
	"github.com/heed/heed/smpp/sim"
)

// TestQuery: query_sm follows a message from ENROUTE to its final state,
// with the id exactly as Submit returned it (hex here), and names the
// status when the SMSC does not know the id.
func TestQuery(t *testing.T) {
	for _, tc := range []struct {
		name    string
		failure float64
		final   smpp.State
		errCode byte
	}{
		{"delivered", 0, smpp.Delivered, 0},
		{"undeliverable", 1, smpp.Undeliverable, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := startSim(t, sim.Config{HexIDs: true, ReceiptDelay: 300 * time.Millisecond, FailureRatio: tc.failure})
			c := dial(t, smpp.Config{Addr: s.Addr()})
			res, err := c.Submit(ctx(t), smpp.Message{To: testNumber, Text: chinese, Flash: true})
			if err != nil {
				t.Fatal(err)
			}
			q, err := c.Query(ctx(t), res.IDs[0])
			if err != nil {
				t.Fatal(err)
			}
			if q.State != smpp.Enroute || q.FinalDate != "" || q.ID != res.IDs[0] || q.State.Final() {
				t.Errorf("right after submit: %+v", q)
			}
			waitFor(t, func() bool {
				q, err = c.Query(ctx(t), res.IDs[0])
				return err != nil || q.State.Final()
			})
			if err != nil {
				t.Fatal(err)
			}
			if q.State != tc.final || len(q.FinalDate) != 16 || q.ErrorCode != tc.errCode {
				t.Errorf("once final: %+v", q)
			}
		})
	}

	s, _ := startSim(t, sim.Config{})
	c := dial(t, smpp.Config{Addr: s.Addr()})
	_, err := c.Query(ctx(t), "12345")
	var e *smpp.Error
	if !errors.As(err, &e) || e.Kind != smpp.Permanent || e.Status != pdu.RQueryFail || e.Op != "query_sm" {
		t.Errorf("unknown id: %v", err)
	}
}

// TestQueryThrottledAndClosed: a throttled query is retried like a
// submit; after Close a query is not sent.
func TestQueryThrottledAndClosed(t *testing.T) {
	// The submit is request 1, the query 2 (throttled), its retry 3.
	s, _ := startSim(t, sim.Config{ThrottleEvery: 2})
	c := dial(t, smpp.Config{Addr: s.Addr(), ThrottlePause: time.Millisecond})
	res, err := c.Submit(ctx(t), smpp.Message{To: testNumber, Text: "x"})
	if err != nil {
		t.Fatal(err)
	}
	if q, err := c.Query(ctx(t), res.IDs[0]); err != nil || q.State != smpp.Delivered {
		t.Fatalf("query: %+v %v", q, err)
	}
	if s.Stats().Throttled != 1 || c.Stats().Retried != 1 {
		t.Errorf("throttled %d, retried %d: want 1 and 1", s.Stats().Throttled, c.Stats().Retried)
	}
	if err := c.Close(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Query(ctx(t), res.IDs[0]); smpp.KindOf(err) != smpp.NotSent || !errors.Is(err, smpp.ErrClosed) {
		t.Errorf("query after close: %v", err)
	}
}

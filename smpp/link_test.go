package smpp

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/heed/heed/smpp/pdu"
)

func TestSequenceWraps(t *testing.T) {
	var l link
	l.seq.Store(0x7FFFFFFE)
	for _, want := range []uint32{0x7FFFFFFF, 1, 2} {
		if got := l.nextSeq(); got != want {
			t.Fatalf("nextSeq = %#x, want %#x", got, want)
		}
	}
}

// TestSequenceWrapSkipsWaiting: after a wrap, a sequence number still
// waiting for its answer is not given to another request, so that answer
// cannot be taken for the new request's.
func TestSequenceWrapSkipsWaiting(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	cfg := Config{Window: 1, ResponseTimeout: time.Second}
	cfg.defaults()
	l := newLink(a, &cfg, "test")
	defer l.close(ErrClosed)
	stuck := make(chan *pdu.PDU, 1)
	l.pending[1] = waiter{ch: stuck}
	l.seq.Store(0x7FFFFFFF)
	go l.read()
	got := make(chan uint32, 1)
	go func() {
		p, _, err := pdu.Read(b, nil)
		if err != nil {
			got <- 0
			return
		}
		got <- p.Sequence
		r, _ := p.Response(pdu.OK).Encode(nil)
		b.Write(r)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := l.call(ctx, &pdu.PDU{Command: pdu.EnquireLink}, false); err != nil {
		t.Fatal(err)
	}
	if seq := <-got; seq != 2 {
		t.Errorf("request sent as sequence %d, want 2 (1 is still waiting)", seq)
	}
	if len(stuck) != 0 {
		t.Error("the waiting request got another's answer")
	}
}

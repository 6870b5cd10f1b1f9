package notify

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/heed/heed/smpp"
	"github.com/heed/heed/smpp/pdu"
	"github.com/heed/heed/smpp/sim"
)

// TestSMSCsRouteAndErrors: each line's messages go through the SMSC that
// carries it, every other line and sign-in codes through the first; a
// refusal wraps ErrPermanent and an SMSC that is down ErrUnavailable, and
// every submit and answer is counted under its SMSC.
func TestSMSCsRouteAndErrors(t *testing.T) {
	type seen struct{ smsc, from, to string }
	var mu sync.Mutex
	var got []seen
	start := func(name string) *sim.Server {
		s, err := sim.Start("127.0.0.1:0", sim.Config{
			OnSubmit: func(s sim.Submit) {
				mu.Lock()
				got = append(got, seen{name, s.PDU.Source, s.PDU.Dest})
				mu.Unlock()
			},
			Reject: func(p *pdu.PDU) pdu.Status {
				if p.Dest == "8613900000000" {
					return pdu.RInvDstAdr
				}
				return pdu.OK
			}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	a, b := start("a"), start("b")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := ln.Addr().String()
	ln.Close()

	s := NewSMSCs([]SMSCRoute{{Name: "a"}, {Name: "b", Lines: []string{"L2"}}, {Name: "down", Lines: []string{"L3"}}}, "V")
	counts := map[string]int{}
	s.OnSubmit = func(smsc string) { mu.Lock(); counts["submit "+smsc]++; mu.Unlock() }
	s.OnResponse = func(smsc, status string) { mu.Lock(); counts[smsc+" "+status]++; mu.Unlock() }
	cfg := func(addr string) smpp.Config { return smpp.Config{Addr: addr, SystemID: "heed", Window: 4} }
	s.Bind(map[string]smpp.Config{"a": cfg(a.Addr()), "b": cfg(b.Addr()), "down": cfg(down)})
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Close(ctx, slog.New(slog.NewTextHandler(io.Discard, nil)))
	}()
	deadline := time.Now().Add(10 * time.Second)
	for bound := 0; bound < 2; {
		if time.Now().After(deadline) {
			t.Fatalf("not bound: %+v", s.Links())
		}
		bound = 0
		for _, l := range s.Links() {
			if l.Stats.Bound {
				bound++
			}
		}
		time.Sleep(10 * time.Millisecond)
	}

	ctx := context.Background()
	for _, c := range []struct {
		line, number string
		smsc         string // where it should arrive; "" for none
		err          error
	}{
		{"L1", "+8613800000001", "a", nil},
		{"L2", "+8613800000002", "b", nil},
		{"L2", "+8613900000000", "", ErrPermanent},
		{"L3", "+8613800000003", "", ErrUnavailable},
	} {
		mu.Lock()
		got = nil
		mu.Unlock()
		ids, err := s.Submit(ctx, Message{Number: c.number, Line: c.line, Text: "hello"})
		if c.err != nil {
			if !errors.Is(err, c.err) {
				t.Errorf("%s to %s: %v, want %v", c.line, c.number, err, c.err)
			}
			continue
		}
		if err != nil || len(ids) != 1 {
			t.Errorf("%s to %s: ids %v, %v", c.line, c.number, ids, err)
			continue
		}
		mu.Lock()
		if want := (seen{c.smsc, c.line, c.number[1:]}); len(got) != 1 || got[0] != want {
			t.Errorf("%s to %s: SMSCs saw %v, want %v", c.line, c.number, got, want)
		}
		mu.Unlock()
	}
	mu.Lock()
	got = nil
	mu.Unlock()
	if err := s.SendText(ctx, "+8613800000004", "code 1234"); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := (seen{"a", "V", "8613800000004"}); len(got) != 1 || got[0] != want {
		t.Errorf("sign-in code: SMSCs saw %v, want %v", got, want)
	}
	want := map[string]int{"submit a": 2, "submit b": 2, "submit down": 1, "a 0x00000000": 2, "b 0x00000000": 1,
		"b 0x0000000b": 1, "down 0x00000000": 1}
	for k, n := range want {
		if counts[k] != n {
			t.Errorf("counted %q %d times, want %d (all: %v)", k, counts[k], n, counts)
		}
	}
}

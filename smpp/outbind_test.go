package smpp_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/heed/heed/smpp"
	"github.com/heed/heed/smpp/sim"
)

// TestOutbind: an SMSC holding a receipt for an ESME that is not bound
// outbinds to it; the client binds as receiver on that connection, gets
// the receipt, and unbinds it on Close.
func TestOutbind(t *testing.T) {
	s, _ := startSim(t, sim.Config{SystemID: "heed", Password: "secret", ReceiptDelay: 200 * time.Millisecond})
	first := dial(t, smpp.Config{Addr: s.Addr()})
	res, err := first.Submit(ctx(t), smpp.Message{To: testNumber, Text: "renewal due", RegisteredDelivery: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Close(ctx(t)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return s.Stats().ReceiptsQueued == 1 })

	// This client receives only through outbind: its own dialling never
	// gets anywhere (nor counts as a failed bind while the test runs).
	got := make(chan smpp.Inbound, 1)
	c := smpp.New(smpp.Config{Addr: "smsc.invalid:2775", SystemID: "heed", Password: "secret", ResponseTimeout: time.Minute,
		Dial:    func(ctx context.Context, _ string) (net.Conn, error) { <-ctx.Done(); return nil, ctx.Err() },
		Handler: func(in smpp.Inbound) error { got <- in; return nil }})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- c.AcceptOutbind(ln) }()

	// Outbinds that are not for this client are closed unanswered.
	for _, cred := range [][2]string{{"heed", "wrong"}, {"other", "secret"}} {
		if err := s.Outbind(ctx(t), ln.Addr().String(), cred[0], cred[1]); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, func() bool { return c.Stats().BindFailures == 2 })
	if st := s.Stats(); st.Binds != 1 || st.ReceiptsQueued != 1 {
		t.Fatalf("a refused outbind bound: %+v", st)
	}

	if err := s.Outbind(ctx(t), ln.Addr().String(), "heed", "secret"); err != nil {
		t.Fatal(err)
	}
	select {
	case in := <-got:
		if in.Receipt == nil || !smpp.SameID(in.Receipt.ID, res.IDs[0]) {
			t.Errorf("got %+v, want the receipt of %q", in.Receipt, res.IDs[0])
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no receipt through the outbind")
	}
	waitFor(t, func() bool { return c.Stats().Binds == 1 && s.Stats().ReceiptsAcked == 1 })
	if st := c.Stats(); st.Rebinds != 0 {
		t.Errorf("one outbind counted as a re-bind: %+v", st)
	}
	cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Close(cctx); err != nil {
		t.Errorf("close: %v", err)
	}
	if err := <-served; err != nil {
		t.Errorf("AcceptOutbind after Close: %v", err)
	}
	if st := s.Stats(); st.Binds != 2 || st.Unbinds != 2 {
		t.Errorf("the outbind link was not unbound: %+v", st)
	}
}

package smpp_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heed/heed/smpp"
	"github.com/heed/heed/smpp/pdu"
	"github.com/heed/heed/smpp/sim"
	"github.com/heed/heed/smpp/text"
)

// testNumber is in a range reserved for fiction, never a real subscriber.
const testNumber = "8613800000000"

const chinese = "您的保单将于2026年12月31日到期，请及时续保。"

// recorder keeps what the simulator accepted.
type recorder struct {
	mu   sync.Mutex
	subs []sim.Submit
}

func (r *recorder) add(s sim.Submit) {
	r.mu.Lock()
	r.subs = append(r.subs, s)
	r.mu.Unlock()
}

func (r *recorder) all() []sim.Submit {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]sim.Submit(nil), r.subs...)
}

func startSim(t *testing.T, cfg sim.Config) (*sim.Server, *recorder) {
	t.Helper()
	rec := &recorder{}
	if cfg.OnSubmit == nil {
		cfg.OnSubmit = rec.add
	}
	s, err := sim.Start("127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, rec
}

func dial(t *testing.T, cfg smpp.Config) *smpp.Client {
	t.Helper()
	if cfg.SystemID == "" {
		cfg.SystemID, cfg.Password = "heed", "secret"
	}
	if cfg.Source == "" {
		cfg.Source = "95500"
	}
	if cfg.MinBackoff == 0 {
		cfg.MinBackoff = 10 * time.Millisecond
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := smpp.Dial(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		c.Close(ctx)
	})
	return c
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

// textOf reassembles what the simulator received, in the order given.
func textOf(t *testing.T, subs []sim.Submit) string {
	t.Helper()
	var sb strings.Builder
	for _, s := range subs {
		ud := s.PDU.ShortMessage
		if v, ok := s.PDU.Get(pdu.TagMessagePayload); ok {
			ud = v
		}
		if s.PDU.ESMClass&0x40 != 0 {
			_, _, rest, err := text.ParseUDH(ud)
			if err != nil {
				t.Fatal(err)
			}
			ud = rest
		}
		sb.WriteString(text.Decode(s.PDU.DataCoding, ud))
	}
	return sb.String()
}

func TestFlashUCS2WithReceipt(t *testing.T) {
	s, rec := startSim(t, sim.Config{SystemID: "heed", Password: "secret", ReceiptDelay: 5 * time.Millisecond, HexIDs: true})
	receipts := make(chan smpp.Inbound, 1)
	c := dial(t, smpp.Config{Addr: s.Addr(), Handler: func(in smpp.Inbound) error { receipts <- in; return nil }})
	res, err := c.Submit(ctx(t), smpp.Message{To: testNumber, Text: chinese, Flash: true, RegisteredDelivery: 1})
	if err != nil {
		t.Fatal(err)
	}
	if res.Parts != 1 || len(res.IDs) != 1 {
		t.Fatalf("result = %+v", res)
	}
	subs := rec.all()
	if len(subs) != 1 || subs[0].PDU.DataCoding != 0x18 || textOf(t, subs) != chinese || subs[0].PDU.Dest != testNumber {
		t.Fatalf("simulator got %+v", subs)
	}
	select {
	case in := <-receipts:
		r := in.Receipt
		if r == nil || r.State != smpp.Delivered {
			t.Fatalf("inbound = %+v", in)
		}
		// The simulator gives hex in the response and decimal in the receipt.
		if r.SubmitID != res.IDs[0] || r.ID == res.IDs[0] {
			t.Errorf("receipt id %q / submit id %q, result id %q", r.ID, r.SubmitID, res.IDs[0])
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no receipt")
	}
}

func TestFlashCodings(t *testing.T) {
	cases := []struct {
		name    string
		flash   smpp.Flash
		text    string
		dc      byte
		subunit bool
	}{
		{"ucs2 default", smpp.Flash{}, chinese, 0x18, false},
		{"gsm7 default", smpp.Flash{}, "Policy expires 31/12", 0xF0, false},
		{"gsm7 configured", smpp.Flash{GSM7: 0x10}, "Policy expires 31/12", 0x10, false},
		{"subunit", smpp.Flash{Subunit: true}, chinese, 0x08, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, rec := startSim(t, sim.Config{})
			c := dial(t, smpp.Config{Addr: s.Addr(), Flash: tc.flash})
			if _, err := c.Submit(ctx(t), smpp.Message{To: testNumber, Text: tc.text, Flash: true}); err != nil {
				t.Fatal(err)
			}
			p := rec.all()[0].PDU
			v, ok := p.Get(pdu.TagDestAddrSubunit)
			if p.DataCoding != tc.dc || ok != tc.subunit || ok && v[0] != 1 {
				t.Errorf("data_coding 0x%02X subunit %v %v", p.DataCoding, ok, v)
			}
			if got := textOf(t, rec.all()); got != tc.text {
				t.Errorf("text = %q", got)
			}
		})
	}
	// Without Flash, the plain coding.
	s, rec := startSim(t, sim.Config{})
	c := dial(t, smpp.Config{Addr: s.Addr()})
	if _, err := c.Submit(ctx(t), smpp.Message{To: testNumber, Text: chinese}); err != nil || rec.all()[0].PDU.DataCoding != 0x08 {
		t.Errorf("non-flash data_coding = 0x%02X, %v", rec.all()[0].PDU.DataCoding, err)
	}
}

func TestLongMessage(t *testing.T) {
	long := strings.Repeat(chinese, 6) // 150 UTF-16 units: 3 parts
	for _, method := range []smpp.Concat{smpp.UDH, smpp.SAR, smpp.Payload} {
		t.Run(fmt.Sprint(method), func(t *testing.T) {
			s, rec := startSim(t, sim.Config{})
			c := dial(t, smpp.Config{Addr: s.Addr(), Concat: method})
			res, err := c.Submit(ctx(t), smpp.Message{To: testNumber, Text: long, Flash: true})
			if err != nil {
				t.Fatal(err)
			}
			subs := rec.all()
			want := 3
			if method == smpp.Payload {
				want = 1
			}
			if res.Parts != want || len(res.IDs) != want || len(subs) != want {
				t.Fatalf("parts %d ids %d received %d, want %d", res.Parts, len(res.IDs), len(subs), want)
			}
			if got := textOf(t, subs); got != long {
				t.Errorf("reassembled %q", got)
			}
			for i, sub := range subs {
				switch method {
				case smpp.UDH:
					cc, ok, _, _ := text.ParseUDH(sub.PDU.ShortMessage)
					if !ok || cc.Total != 3 || int(cc.Seq) != i+1 || cc.Ref != uint16(subs[0].PDU.ShortMessage[3]) {
						t.Errorf("part %d UDH %+v", i, cc)
					}
				case smpp.SAR:
					seq, _ := sub.PDU.Get(pdu.TagSarSegmentSeqnum)
					tot, _ := sub.PDU.Get(pdu.TagSarTotalSegments)
					if len(seq) != 1 || int(seq[0]) != i+1 || len(tot) != 1 || tot[0] != 3 || sub.PDU.ESMClass&0x40 != 0 {
						t.Errorf("part %d sar %v/%v esm 0x%02X", i, seq, tot, sub.PDU.ESMClass)
					}
				case smpp.Payload:
					if len(sub.PDU.ShortMessage) != 0 {
						t.Errorf("message_payload sent with short_message too")
					}
				}
			}
		})
	}
}

func TestWrongCredentials(t *testing.T) {
	s, _ := startSim(t, sim.Config{SystemID: "heed", Password: "secret"})
	c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := smpp.Dial(c, smpp.Config{Addr: s.Addr(), SystemID: "heed", Password: "wrong"})
	var e *smpp.Error
	if !errors.As(err, &e) || e.Kind != smpp.NotSent || e.Status != pdu.RInvPaswd || !errors.Is(err, smpp.ErrBindRefused) {
		t.Fatalf("err = %v", err)
	}
	if !strings.Contains(err.Error(), "ESME_RINVPASWD") || !strings.Contains(err.Error(), "bind") {
		t.Errorf("error does not say what went wrong: %v", err)
	}
	_, err = smpp.Dial(c, smpp.Config{Addr: s.Addr(), SystemID: "other", Password: "secret"})
	if !strings.Contains(fmt.Sprint(err), "ESME_RINVSYSID") {
		t.Errorf("wrong system_id: %v", err)
	}
}

// TestThrottledEveryTenth: with 0x58 on every 10th submit, every message is
// accepted exactly once in the end.
func TestThrottledEveryTenth(t *testing.T) {
	s, rec := startSim(t, sim.Config{ThrottleEvery: 10})
	c := dial(t, smpp.Config{Addr: s.Addr(), ThrottlePause: 2 * time.Millisecond, MaxRetries: 20})
	const n = 300
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.Submit(ctx(t), smpp.Message{To: testNumber, Text: fmt.Sprintf("reminder %d", i)})
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	seen := map[string]int{}
	for _, sub := range rec.all() {
		seen[string(sub.PDU.ShortMessage)]++
	}
	for i := range n {
		if k := fmt.Sprintf("reminder %d", i); seen[string(mustGSM(k))] != 1 {
			t.Errorf("%s accepted %d times", k, seen[string(mustGSM(k))])
		}
	}
	if st := s.Stats(); st.Throttled < n/10 || st.Submits != n {
		t.Errorf("stats %+v", st)
	}
	if st := c.Stats(); st.Accepted != n || st.Retried != s.Stats().Throttled || st.NotSent+st.Unknown+st.Permanent != 0 {
		t.Errorf("client stats %+v", st)
	}
}

func mustGSM(s string) []byte {
	b, _ := text.EncodeGSM7(s)
	return b
}

// TestKilledMidWindow: the SMSC dies with a full window; every request in
// flight is reported unknown, and the client reconnects and goes on.
func TestKilledMidWindow(t *testing.T) {
	s, rec := startSim(t, sim.Config{ResponseDelay: 3 * time.Second})
	c := dial(t, smpp.Config{Addr: s.Addr(), Window: 10})
	var wg sync.WaitGroup
	errs := make([]error, 10)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = c.Submit(ctx(t), smpp.Message{To: testNumber, Text: fmt.Sprint("m", i)})
		}()
	}
	waitFor(t, func() bool { return len(rec.all()) == 10 })
	addr := s.Addr()
	s.Close() // the whole SMSC goes away, not just the connection
	wg.Wait()
	for i, err := range errs {
		if smpp.KindOf(err) != smpp.Unknown || !errors.Is(err, smpp.ErrLinkDropped) {
			t.Errorf("submit %d: %v, want outcome unknown", i, err)
		}
	}
	// While it is down, a submit is not sent, says so, and says so at
	// once once a bind attempt has failed.
	waitFor(t, func() bool { return c.Stats().BindFailures > 0 })
	if st := c.Stats(); st.Bound || st.DownSince.IsZero() || st.BindError == nil || st.InFlight != 0 {
		t.Errorf("stats while down: %+v", st)
	}
	start := time.Now()
	if _, err := c.Submit(ctx(t), smpp.Message{To: testNumber, Text: "down"}); smpp.KindOf(err) != smpp.NotSent || !errors.Is(err, smpp.ErrNotBound) {
		t.Errorf("submit while down: %v, want not sent: not bound", err)
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("submit while down took %v, want at once", d)
	}
	s2, err := sim.Start(addr, sim.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	waitFor(t, func() bool { return c.Stats().Bound })
	if _, err := c.Submit(ctx(t), smpp.Message{To: testNumber, Text: "after"}); err != nil {
		t.Fatalf("after reconnect: %v", err)
	}
	if st := s2.Stats(); st.Binds != 1 || st.Submits != 1 {
		t.Errorf("restarted SMSC stats %+v", st)
	}
	if st := c.Stats(); st.Unknown != 10 || st.NotSent != 1 || st.Binds != 2 || st.Rebinds != 1 || st.Drops != 1 || st.Accepted != 1 ||
		st.Reconnects != st.BindFailures+1 || !st.DownSince.IsZero() || st.BindError != nil {
		t.Errorf("client stats %+v", st)
	}
}

// TestDroppedOnSubmit: a connection dropped on receipt of a submit leaves
// that one unknown and the rest go through on a new bind.
func TestDroppedOnSubmit(t *testing.T) {
	s, _ := startSim(t, sim.Config{DropEvery: 5})
	c := dial(t, smpp.Config{Addr: s.Addr(), Window: 1})
	var unknown, ok int
	for i := range 12 {
		_, err := c.Submit(ctx(t), smpp.Message{To: testNumber, Text: fmt.Sprint("m", i)})
		switch smpp.KindOf(err) {
		case 0:
			ok++
		case smpp.Unknown:
			unknown++
		default:
			t.Fatal(err)
		}
	}
	if unknown != 2 || ok != 10 {
		t.Errorf("unknown %d ok %d, want 2 and 10", unknown, ok)
	}
}

func TestSlowSMSCTimesOut(t *testing.T) {
	s, _ := startSim(t, sim.Config{ResponseDelay: 5 * time.Second})
	// The timeout also bounds the bind, so it leaves room for a loaded machine.
	c := dial(t, smpp.Config{Addr: s.Addr(), ResponseTimeout: 500 * time.Millisecond})
	start := time.Now()
	_, err := c.Submit(ctx(t), smpp.Message{To: testNumber, Text: "slow"})
	if smpp.KindOf(err) != smpp.Unknown || !errors.Is(err, smpp.ErrTimeout) {
		t.Fatalf("err = %v, want outcome unknown after timeout", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("timeout took %v", d)
	}
}

func TestPermanentStatusNamed(t *testing.T) {
	s, _ := startSim(t, sim.Config{Reject: func(p *pdu.PDU) pdu.Status {
		if p.Dest == "000" {
			return pdu.RInvDstAdr
		}
		return pdu.OK
	}})
	c := dial(t, smpp.Config{Addr: s.Addr()})
	_, err := c.Submit(ctx(t), smpp.Message{To: "000", Text: "x"})
	var e *smpp.Error
	if !errors.As(err, &e) || e.Kind != smpp.Permanent || e.Status != pdu.RInvDstAdr || !strings.Contains(err.Error(), "ESME_RINVDSTADR") {
		t.Fatalf("err = %v", err)
	}
	if strings.Contains(err.Error(), "000") && !strings.Contains(err.Error(), "0x0B") {
		t.Errorf("error may leak the number: %v", err)
	}
	// An address too long to encode fails permanently, without reaching the SMSC.
	_, err = c.Submit(ctx(t), smpp.Message{To: strings.Repeat("1", 30), Text: "x"})
	if smpp.KindOf(err) != smpp.Permanent {
		t.Errorf("oversized address: %v", err)
	}
}

func TestTemporaryStatusExhausted(t *testing.T) {
	s, _ := startSim(t, sim.Config{ThrottleEvery: 1})
	c := dial(t, smpp.Config{Addr: s.Addr(), ThrottlePause: time.Millisecond, MaxRetries: 3})
	_, err := c.Submit(ctx(t), smpp.Message{To: testNumber, Text: "x"})
	var e *smpp.Error
	if !errors.As(err, &e) || e.Kind != smpp.NotSent || e.Status != pdu.RThrottled {
		t.Fatalf("err = %v", err)
	}
	if st := s.Stats(); st.Throttled != 4 {
		t.Errorf("throttled %d times, want 4 (1 + 3 retries)", st.Throttled)
	}
}

func TestMOHandler(t *testing.T) {
	s, _ := startSim(t, sim.Config{})
	got := make(chan smpp.Inbound, 2)
	dial(t, smpp.Config{Addr: s.Addr(), Handler: func(in smpp.Inbound) error { got <- in; return nil }})
	if err := s.Inject("heed", sim.MO{From: testNumber, To: "95500", Text: "TD"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Inject("heed", sim.MO{From: testNumber, To: "95500", Text: "退订"}); err != nil {
		t.Fatal(err)
	}
	// The handler runs concurrently, so the two may come in either order.
	texts := map[string]bool{}
	for range 2 {
		select {
		case in := <-got:
			if in.Receipt != nil || in.From != testNumber {
				t.Errorf("inbound %+v", in)
			}
			texts[in.Text] = true
		case <-time.After(5 * time.Second):
			t.Fatal("no MO")
		}
	}
	if !texts["TD"] || !texts["退订"] {
		t.Errorf("MO texts = %v", texts)
	}
	waitFor(t, func() bool { return s.Stats().ReceiptsAcked == 2 })
}

func TestTransmitterReceiver(t *testing.T) {
	s, _ := startSim(t, sim.Config{ReceiptDelay: time.Millisecond})
	got := make(chan smpp.Inbound, 1)
	c := dial(t, smpp.Config{Addr: s.Addr(), Mode: smpp.TransmitterReceiver, Handler: func(in smpp.Inbound) error { got <- in; return nil }})
	waitFor(t, func() bool { return s.Stats().Binds == 2 })
	res, err := c.Submit(ctx(t), smpp.Message{To: testNumber, Text: "x", RegisteredDelivery: 1})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case in := <-got:
		// The receipt comes on the other bind and may overtake the
		// submit_sm_resp; SubmitID is then empty (doc.go), and the id it
		// carries is still the message's.
		if in.Receipt == nil || !smpp.SameID(in.Receipt.ID, res.IDs[0]) ||
			(in.Receipt.SubmitID != "" && in.Receipt.SubmitID != res.IDs[0]) {
			t.Errorf("receipt %+v for message %s", in.Receipt, res.IDs[0])
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no receipt on the receiver bind")
	}
}

func TestEnquireLinkAndUnbind(t *testing.T) {
	s, _ := startSim(t, sim.Config{})
	c := dial(t, smpp.Config{Addr: s.Addr(), EnquireLink: 10 * time.Millisecond})
	waitFor(t, func() bool { return s.Stats().EnquireLinks >= 3 })
	cctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := c.Close(cctx); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Unbinds != 1 {
		t.Errorf("unbinds = %d", st.Unbinds)
	}
	_, err := c.Submit(ctx(t), smpp.Message{To: testNumber, Text: "x"})
	if smpp.KindOf(err) != smpp.NotSent || !errors.Is(err, smpp.ErrClosed) {
		t.Errorf("submit after close: %v", err)
	}
}

func TestWindowAndTPS(t *testing.T) {
	s, _ := startSim(t, sim.Config{ResponseDelay: 50 * time.Millisecond})
	c := dial(t, smpp.Config{Addr: s.Addr(), Window: 4})
	start := time.Now()
	submitN(t, c, 16)
	// 16 requests, 4 at a time, 50 ms each: at least 200 ms.
	if d := time.Since(start); d < 190*time.Millisecond {
		t.Errorf("window 4 let 16 slow submits finish in %v", d)
	}

	s2, _ := startSim(t, sim.Config{})
	c2 := dial(t, smpp.Config{Addr: s2.Addr(), Window: 50, TPS: 100})
	start = time.Now()
	submitN(t, c2, 21)
	if d := time.Since(start); d < 190*time.Millisecond {
		t.Errorf("TPS 100 let 21 submits finish in %v", d)
	}
}

func TestNotBound(t *testing.T) {
	c := smpp.New(smpp.Config{Addr: "127.0.0.1:1", SystemID: "heed", MinBackoff: 5 * time.Millisecond})
	defer c.Close(context.Background())
	cctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := c.Submit(cctx, smpp.Message{To: testNumber, Text: "x"})
	if smpp.KindOf(err) != smpp.NotSent || !errors.Is(err, smpp.ErrNotBound) {
		t.Fatalf("err = %v", err)
	}
}

func submitN(t *testing.T, c *smpp.Client, n int) {
	t.Helper()
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.Submit(ctx(t), smpp.Message{To: testNumber, Text: fmt.Sprint(i)}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 5s")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestHungSMSC: the TCP connection stays up but nothing answers; the
// missing enquire_link_resp drops the link, and the client binds again
// once the SMSC answers.
func TestHungSMSC(t *testing.T) {
	s, _ := startSim(t, sim.Config{})
	c := dial(t, smpp.Config{Addr: s.Addr(), EnquireLink: 20 * time.Millisecond, ResponseTimeout: 100 * time.Millisecond})
	s.SetHang(true)
	time.Sleep(300 * time.Millisecond)
	s.SetHang(false)
	// Bind attempts failed while it hung: submits fail at once until the
	// client is bound again.
	waitFor(t, func() bool { return s.Stats().Binds >= 2 && c.Stats().Bound })
	if _, err := c.Submit(ctx(t), smpp.Message{To: testNumber, Text: "back"}); err != nil {
		t.Fatal(err)
	}
}

// TestPool: each named connection binds with its own credentials and
// sends with its own sender and flash coding.
func TestPool(t *testing.T) {
	a, recA := startSim(t, sim.Config{SystemID: "alpha", Password: "pa"})
	b, recB := startSim(t, sim.Config{SystemID: "beta", Password: "pb"})
	p := smpp.NewPool(map[string]smpp.Config{
		"a": {Addr: a.Addr(), SystemID: "alpha", Password: "pa", Source: "95500"},
		"b": {Addr: b.Addr(), SystemID: "beta", Password: "pb", Source: "HEED", Flash: smpp.Flash{Subunit: true}},
	})
	defer p.Close(context.Background())
	for _, name := range []string{"a", "b"} {
		if _, err := p.Submit(ctx(t), name, smpp.Message{To: testNumber, Text: chinese, Flash: true}); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	pa, pb := recA.all()[0].PDU, recB.all()[0].PDU
	if pa.Source != "95500" || pa.SourceTON != 1 || pa.DataCoding != 0x18 {
		t.Errorf("a sent %+v", pa)
	}
	if pb.Source != "HEED" || pb.SourceTON != 5 || pb.DataCoding != 0x08 {
		t.Errorf("b sent %+v", pb)
	}
	// A sender given per message gets its own TON: alphanumeric here.
	if _, err := p.Submit(ctx(t), "a", smpp.Message{To: testNumber, Text: "x", From: "HEEDINS"}); err != nil {
		t.Fatal(err)
	}
	if q := recA.all()[1].PDU; q.Source != "HEEDINS" || q.SourceTON != 5 || q.SourceNPI != 0 {
		t.Errorf("per-message sender sent as %q TON %d NPI %d", q.Source, q.SourceTON, q.SourceNPI)
	}
	if _, err := p.Submit(ctx(t), "c", smpp.Message{To: testNumber, Text: "x"}); !errors.Is(err, smpp.ErrNoConnection) || smpp.KindOf(err) != smpp.NotSent {
		t.Errorf("unknown connection: %v", err)
	}
}

// TestCloseDrainsThenUnbinds: Close lets a submit in flight finish before
// it unbinds, and reports an SMSC that never answers the unbind.
func TestCloseDrainsThenUnbinds(t *testing.T) {
	s, _ := startSim(t, sim.Config{ResponseDelay: 100 * time.Millisecond})
	c := dial(t, smpp.Config{Addr: s.Addr()})
	done := make(chan error, 1)
	go func() {
		_, err := c.Submit(ctx(t), smpp.Message{To: testNumber, Text: "last one"})
		done <- err
	}()
	waitFor(t, func() bool { return s.Stats().Submits == 1 })
	if err := c.Close(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Errorf("submit in flight during Close: %v", err)
	}
	if st := s.Stats(); st.Unbinds != 1 {
		t.Errorf("unbinds = %d", st.Unbinds)
	}

	s2, _ := startSim(t, sim.Config{})
	c2 := dial(t, smpp.Config{Addr: s2.Addr()})
	s2.SetHang(true)
	short, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := c2.Close(short); err == nil || !strings.Contains(err.Error(), "unbind") {
		t.Errorf("close without unbind_resp: %v", err)
	}
}

// TestCloseWakesWaiters: a submit waiting for a first bind that hangs
// returns not sent as soon as the client closes.
func TestCloseWakesWaiters(t *testing.T) {
	hang := func(ctx context.Context, _ string) (net.Conn, error) { <-ctx.Done(); return nil, ctx.Err() }
	c := smpp.New(smpp.Config{Addr: "127.0.0.1:1", SystemID: "heed", Dial: hang, BindWait: time.Minute})
	done := make(chan error, 1)
	go func() {
		_, err := c.Submit(ctx(t), smpp.Message{To: testNumber, Text: "x"})
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	c.Close(ctx(t))
	select {
	case err := <-done:
		if smpp.KindOf(err) != smpp.NotSent || !errors.Is(err, smpp.ErrClosed) {
			t.Errorf("err = %v", err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("took %v", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("submit still waiting after Close")
	}
}

// TestReceiptRightBehindResponse: a receipt that follows its
// submit_sm_resp at once on the wire is still matched to the submitted id,
// however late the submitting goroutine runs.
func TestReceiptRightBehindResponse(t *testing.T) {
	s, _ := startSim(t, sim.Config{HexIDs: true})
	const n = 200
	receipts := make(chan smpp.Receipt, n)
	c := dial(t, smpp.Config{Addr: s.Addr(), Handler: func(in smpp.Inbound) error {
		if in.Receipt != nil {
			receipts <- *in.Receipt
		}
		return nil
	}})
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.Submit(ctx(t), smpp.Message{To: testNumber, Text: "x", RegisteredDelivery: 1}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	for range n {
		select {
		case r := <-receipts:
			if r.SubmitID == "" || !smpp.SameID(r.SubmitID, r.ID) || r.SubmitID == r.ID {
				t.Fatalf("receipt %q correlated to %q", r.ID, r.SubmitID)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("receipts missing")
		}
	}
}

// TestReceiptAfterRestart: a receipt that falls due while heed is down is
// delivered when heed binds again, and matches the id Submit returned
// before the restart.
func TestReceiptAfterRestart(t *testing.T) {
	s, _ := startSim(t, sim.Config{SystemID: "heed", Password: "secret", ReceiptDelay: 300 * time.Millisecond})
	first := dial(t, smpp.Config{Addr: s.Addr()})
	res, err := first.Submit(ctx(t), smpp.Message{To: testNumber, Text: chinese, Flash: true, RegisteredDelivery: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Close(ctx(t)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return s.Stats().ReceiptsQueued == 1 })

	got := make(chan smpp.Inbound, 1)
	dial(t, smpp.Config{Addr: s.Addr(), Handler: func(in smpp.Inbound) error { got <- in; return nil }})
	select {
	case in := <-got:
		if in.Receipt == nil || !smpp.SameID(in.Receipt.ID, res.IDs[0]) || in.Receipt.State != smpp.Delivered {
			t.Errorf("after restart got %+v for submitted id %q", in.Receipt, res.IDs[0])
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the queued receipt never came")
	}
	if st := s.Stats(); st.ReceiptsLost != 0 {
		t.Errorf("stats %+v", st)
	}
}

// TestStatsInFlight: InFlight counts the submits written and not yet
// answered, not the callers waiting, and Bound follows the link.
func TestStatsInFlight(t *testing.T) {
	s, rec := startSim(t, sim.Config{ResponseDelay: 300 * time.Millisecond})
	c := dial(t, smpp.Config{Addr: s.Addr(), Window: 4})
	if st := c.Stats(); !st.Bound || !st.DownSince.IsZero() || st.InFlight != 0 {
		t.Fatalf("stats when bound and idle: %+v", st)
	}
	var wg sync.WaitGroup
	for i := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.Submit(ctx(t), smpp.Message{To: testNumber, Text: fmt.Sprint(i)}); err != nil {
				t.Error(err)
			}
		}()
	}
	waitFor(t, func() bool { return len(rec.all()) == 4 })
	// Six callers, a window of four: four are on the wire.
	if st := c.Stats(); st.InFlight != 4 {
		t.Errorf("in flight %d, want 4", st.InFlight)
	}
	wg.Wait()
	if st := c.Stats(); st.InFlight != 0 || st.Accepted != 6 {
		t.Errorf("after the answers: %+v", st)
	}
}

package sim

import (
	"bufio"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/heed/heed/smpp/pdu"
)

// rawConn talks PDUs to the simulator without the client, to reach the
// answers the client never provokes.
type rawConn struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dialRaw(t *testing.T, s *Server) *rawConn {
	c, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(5 * time.Second))
	return &rawConn{t: t, c: c, br: bufio.NewReader(c)}
}

func (r *rawConn) do(p *pdu.PDU) *pdu.PDU {
	r.t.Helper()
	r.write(p)
	return r.read()
}

func (r *rawConn) write(p *pdu.PDU) {
	r.t.Helper()
	b, err := p.Encode(nil)
	if err != nil {
		r.t.Fatal(err)
	}
	if _, err := r.c.Write(b); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rawConn) read() *pdu.PDU {
	r.t.Helper()
	q, _, err := pdu.Read(r.br, nil)
	if err != nil {
		r.t.Fatal(err)
	}
	return q
}

func TestSessionRules(t *testing.T) {
	s, err := Start("127.0.0.1:0", Config{SystemID: "heed", Password: "pw"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r := dialRaw(t, s)
	steps := []struct {
		name   string
		req    *pdu.PDU
		cmd    pdu.Command
		status pdu.Status
	}{
		{"submit before bind", &pdu.PDU{Command: pdu.SubmitSM, Sequence: 1, Dest: "1"}, pdu.SubmitSMResp, pdu.RInvBndSts},
		{"wrong system_id", &pdu.PDU{Command: pdu.BindTransmitter, Sequence: 2, SystemID: "x", Password: "pw"}, pdu.BindTransmitterResp, pdu.RInvSysID},
		{"wrong password", &pdu.PDU{Command: pdu.BindTransmitter, Sequence: 3, SystemID: "heed", Password: "no"}, pdu.BindTransmitterResp, pdu.RInvPaswd},
		{"bind", &pdu.PDU{Command: pdu.BindTransmitter, Sequence: 4, SystemID: "heed", Password: "pw"}, pdu.BindTransmitterResp, pdu.OK},
		{"bind twice", &pdu.PDU{Command: pdu.BindTransmitter, Sequence: 5, SystemID: "heed", Password: "pw"}, pdu.BindTransmitterResp, pdu.RAlyBnd},
		{"submit", &pdu.PDU{Command: pdu.SubmitSM, Sequence: 6, Dest: "1", ShortMessage: []byte("x")}, pdu.SubmitSMResp, pdu.OK},
		{"payload and short_message", &pdu.PDU{Command: pdu.SubmitSM, Sequence: 7, ShortMessage: []byte("x"),
			TLVs: []pdu.TLV{{Tag: pdu.TagMessagePayload, Value: []byte("y")}}}, pdu.SubmitSMResp, pdu.RInvOptParamVal},
		{"data_sm", &pdu.PDU{Command: pdu.DataSM, Sequence: 8, TLVs: []pdu.TLV{{Tag: pdu.TagMessagePayload, Value: []byte("y")}}}, pdu.DataSMResp, pdu.OK},
		{"query known", &pdu.PDU{Command: pdu.QuerySM, Sequence: 9, MessageID: "1000001"}, pdu.QuerySMResp, pdu.OK},
		{"query unknown", &pdu.PDU{Command: pdu.QuerySM, Sequence: 10, MessageID: "42"}, pdu.QuerySMResp, pdu.RQueryFail},
		{"unknown command", &pdu.PDU{Command: 0x00000222, Sequence: 11}, pdu.GenericNack, pdu.RInvCmdID},
		{"enquire_link", &pdu.PDU{Command: pdu.EnquireLink, Sequence: 12}, pdu.EnquireLinkResp, pdu.OK},
		{"unbind", &pdu.PDU{Command: pdu.Unbind, Sequence: 13}, pdu.UnbindResp, pdu.OK},
	}
	for _, st := range steps {
		q := r.do(st.req)
		if q.Command != st.cmd || q.Status != st.status || q.Sequence != st.req.Sequence {
			t.Errorf("%s: got %v %v seq %d, want %v %v", st.name, q.Command, q.Status, q.Sequence, st.cmd, st.status)
		}
	}
	if err := s.Inject("heed", MO{Text: "TD"}); err != ErrNoSession {
		t.Errorf("inject to a transmitter: %v, want ErrNoSession", err)
	}
	got := s.Stats()
	if got.Binds != 1 || got.BindsRefused != 3 || got.Submits != 2 || got.Unbinds != 1 || got.GenericNacks != 1 {
		t.Errorf("stats %+v", got)
	}
}

// TestBadPDU: a frame whose body does not parse is answered with
// generic_nack, and the session goes on.
func TestBadPDU(t *testing.T) {
	s, err := Start("127.0.0.1:0", Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r := dialRaw(t, s)
	// A bind whose system_id never ends.
	bad := []byte{0, 0, 0, 20, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 7, 'a', 'b', 'c', 'd'}
	if _, err := r.c.Write(bad); err != nil {
		t.Fatal(err)
	}
	q := r.read()
	if q.Command != pdu.GenericNack || q.Sequence != 7 {
		t.Errorf("got %v seq %d", q.Command, q.Sequence)
	}
	if q := r.do(&pdu.PDU{Command: pdu.EnquireLink, Sequence: 8}); q.Command != pdu.EnquireLinkResp {
		t.Errorf("session did not go on: %v", q.Command)
	}
}

func TestReceiptsFailureRatio(t *testing.T) {
	s, err := Start("127.0.0.1:0", Config{FailureRatio: 1, TextReceipts: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r := dialRaw(t, s)
	r.do(&pdu.PDU{Command: pdu.BindTransceiver, Sequence: 1, SystemID: "a"})
	// Receipt on failure only: the failure comes.
	r.do(&pdu.PDU{Command: pdu.SubmitSM, Sequence: 2, Source: "95500", Dest: "1", RegisteredDelivery: 2})
	q := r.read()
	if q.Command != pdu.DeliverSM || q.ESMClass != 4 || len(q.TLVs) != 0 || q.Dest != "95500" {
		t.Fatalf("receipt %+v", q)
	}
	if want := "stat:UNDELIV"; !strings.Contains(string(q.ShortMessage), want) {
		t.Errorf("receipt text %q lacks %q", q.ShortMessage, want)
	}
}

func startT(t *testing.T, cfg Config) *Server {
	t.Helper()
	s, err := Start("127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func waitStats(t *testing.T, s *Server, cond func(Stats) bool) Stats {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		st := s.Stats()
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("stats never met the condition: %+v", st)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func receiptID(t *testing.T, p *pdu.PDU) string {
	t.Helper()
	v, ok := p.Get(pdu.TagReceiptedMessageID)
	if p.Command != pdu.DeliverSM || p.ESMClass != 4 || !ok {
		t.Fatalf("not a receipt: %+v", p)
	}
	return pdu.ParseCString(v)
}

// TestReceiptsQueuedUntilBind: a receipt due while its ESME has no
// receiving bind waits for the next receiver or transceiver bind of that
// system_id, not another's; beyond the bound, receipts are counted lost.
func TestReceiptsQueuedUntilBind(t *testing.T) {
	s := startT(t, Config{ReceiptQueue: 2})
	tx := dialRaw(t, s)
	tx.do(&pdu.PDU{Command: pdu.BindTransmitter, Sequence: 1, SystemID: "heed"})
	var ids []string
	for i := range 3 {
		r := tx.do(&pdu.PDU{Command: pdu.SubmitSM, Sequence: uint32(2 + i), Source: "95500", Dest: "1", RegisteredDelivery: 1})
		ids = append(ids, r.MessageID)
	}
	waitStats(t, s, func(st Stats) bool { return st.ReceiptsQueued == 2 && st.ReceiptsLost == 1 })

	other := dialRaw(t, s)
	other.do(&pdu.PDU{Command: pdu.BindTransceiver, Sequence: 1, SystemID: "someone-else"})
	if q := other.do(&pdu.PDU{Command: pdu.EnquireLink, Sequence: 2}); q.Command != pdu.EnquireLinkResp {
		t.Fatalf("another system_id got %v", q.Command)
	}

	rx := dialRaw(t, s)
	if q := rx.do(&pdu.PDU{Command: pdu.BindReceiver, Sequence: 1, SystemID: "heed"}); q.Status != pdu.OK {
		t.Fatalf("bind: %v", q.Status)
	}
	// Receipts fall due concurrently: which one the full queue lost is not
	// said, only that the other two come, once each.
	got := map[string]int{}
	for range 2 {
		q := rx.read()
		got[receiptID(t, q)]++
		rx.write(q.Response(pdu.OK))
	}
	for id, n := range got {
		if n != 1 || !slices.Contains(ids, id) {
			t.Errorf("receipts %v for submitted ids %v", got, ids)
		}
	}
	st := waitStats(t, s, func(st Stats) bool { return st.ReceiptsAcked == 2 })
	if st.ReceiptsQueued != 0 || st.Receipts != 2 || st.ReceiptsLost != 1 {
		t.Errorf("stats %+v", st)
	}
}

// TestReceiptsUnansweredAreResent: a receipt written but not answered when
// the session ends, or answered with an error, is delivered again.
func TestReceiptsUnansweredAreResent(t *testing.T) {
	s := startT(t, Config{ReceiptRetry: 10 * time.Millisecond})
	a := dialRaw(t, s)
	a.do(&pdu.PDU{Command: pdu.BindTransceiver, Sequence: 1, SystemID: "heed"})
	id := a.do(&pdu.PDU{Command: pdu.SubmitSM, Sequence: 2, Source: "95500", Dest: "1", RegisteredDelivery: 1}).MessageID
	if got := receiptID(t, a.read()); got != id {
		t.Fatalf("receipt for %q, want %q", got, id)
	}
	a.c.Close() // an ESME killed before it answered

	b := dialRaw(t, s)
	b.do(&pdu.PDU{Command: pdu.BindTransceiver, Sequence: 1, SystemID: "heed"})
	q := b.read()
	if got := receiptID(t, q); got != id {
		t.Fatalf("after the restart: receipt for %q, want %q", got, id)
	}
	// Refused for now: it comes again.
	b.write(q.Response(pdu.RXTAppn))
	q = b.read()
	if got := receiptID(t, q); got != id {
		t.Fatalf("after ESME_RX_T_APPN: receipt for %q, want %q", got, id)
	}
	b.write(q.Response(pdu.OK))
	st := waitStats(t, s, func(st Stats) bool { return st.ReceiptsAcked == 2 })
	if st.Receipts != 3 || st.ReceiptsRetried != 2 || st.ReceiptsQueued != 0 || st.ReceiptsLost != 0 {
		t.Errorf("stats %+v", st)
	}
}

// TestReceiptQueueOff: a negative ReceiptQueue drops what has no receiver.
func TestReceiptQueueOff(t *testing.T) {
	s := startT(t, Config{ReceiptQueue: -1})
	tx := dialRaw(t, s)
	tx.do(&pdu.PDU{Command: pdu.BindTransmitter, Sequence: 1, SystemID: "heed"})
	tx.do(&pdu.PDU{Command: pdu.SubmitSM, Sequence: 2, Dest: "1", RegisteredDelivery: 1})
	waitStats(t, s, func(st Stats) bool { return st.ReceiptsLost == 1 && st.ReceiptsQueued == 0 })
}

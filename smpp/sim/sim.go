// Package sim is an SMSC simulator for tests, benchmarks and `heed smsc`.
//
// It accepts binds (checking credentials when configured), answers
// submit_sm and data_sm, sends delivery receipts after a delay with a share
// of failures, and on demand throttles every Nth request, answers slowly,
// drops connections and injects mobile-originated messages: every fault an
// ESME has to survive. Receipts for an ESME that is not bound to receive
// wait for its next bind (Config.ReceiptQueue), and receipts it did not
// answer are sent again.
//
//	s, err := sim.Start("127.0.0.1:0", sim.Config{ReceiptDelay: 10 * time.Millisecond})
//	defer s.Close()
//	addr := s.Addr()
//	... s.Inject("heed", sim.MO{From: "8613800000000", To: "95500", Text: "TD"})
//	... s.Stats().Submits
package sim

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heed/heed/smpp/pdu"
	"github.com/heed/heed/smpp/text"
)

// Config sets the simulator's behaviour. The fault settings can also be
// changed while it runs.
type Config struct {
	// SystemID and Password, when set, are required of every bind.
	SystemID, Password string
	// ReceiptDelay is how long after a submit its receipt is sent.
	ReceiptDelay time.Duration
	// FailureRatio is the share (0..1) of receipts that report UNDELIV.
	FailureRatio float64
	// ThrottleEvery answers every Nth submit_sm, data_sm or query_sm with
	// ESME_RTHROTTLED (0x58).
	ThrottleEvery int
	// DropEvery closes the connection instead of answering every Nth
	// submit, leaving the requests in flight without answer.
	DropEvery int
	// ResponseDelay delays every submit_sm_resp (a slow SMSC).
	ResponseDelay time.Duration
	// HexIDs gives message ids in hex in submit_sm_resp and in decimal in
	// receipts, as some SMSCs do.
	HexIDs bool
	// TextReceipts leaves the TLVs out of receipts: only the text form.
	TextReceipts bool
	// ReceiptQueue bounds, per system_id, the receipts kept for an ESME
	// that has no receiving bind when they are due; they are delivered on
	// its next receiver or transceiver bind, as a real SMSC does across an
	// ESME restart. Receipts beyond the bound are dropped and counted in
	// Stats.ReceiptsLost. Default 10000; negative keeps none.
	ReceiptQueue int
	// ReceiptRetry is how long a receipt refused with an error status in
	// deliver_sm_resp waits before it is sent again. Default 1s.
	ReceiptRetry time.Duration
	// Reject, when set, may refuse a submit with a status of its choice
	// (pdu.OK accepts).
	Reject func(*pdu.PDU) pdu.Status
	// OnSubmit sees every accepted submit_sm and data_sm.
	OnSubmit func(Submit)
	Logger   *slog.Logger
}

// Submit is an accepted message as the simulator saw it.
type Submit struct {
	SystemID string
	ID       string // the id given in the response
	PDU      *pdu.PDU
}

// MO is a mobile-originated message to inject.
type MO struct {
	From, To, Text string
	// Source and Dest give the addresses' TON and NPI; nil means 1/1
	// (international, E.164). Chinese gateways send national numbers as
	// TON 2.
	Source, Dest *Numbering `json:",omitempty"`
	// Concat is how a text too long for one part is split: "udh8" (the
	// default; 8-bit reference), "udh16" (16-bit reference) or "sar" (the
	// sar_* TLVs).
	Concat string `json:",omitempty"`
	// Parts, when set, sends only these parts (1-based), in this order:
	// parts out of order, repeated or missing.
	Parts []int `json:",omitempty"`
}

// Numbering is an address's type of number and numbering plan.
type Numbering struct{ TON, NPI byte }

func (n *Numbering) or11() (ton, npi byte) {
	if n == nil {
		return 1, 1
	}
	return n.TON, n.NPI
}

// Stats counts what the simulator did.
type Stats struct {
	Binds, BindsRefused int64
	Submits             int64 // accepted submit_sm and data_sm
	Throttled, Dropped  int64
	Receipts            int64 // receipts written, resent ones included
	// ReceiptsQueued is how many receipts wait now for their ESME to bind.
	ReceiptsQueued int64
	// ReceiptsRetried counts receipts sent again: their session ended
	// before deliver_sm_resp came, or the ESME refused them.
	ReceiptsRetried int64
	// ReceiptsLost counts receipts dropped because their queue was full
	// (or queueing is off).
	ReceiptsLost int64
	// ReceiptsAcked counts deliver_sm_resp and data_sm_resp received, for
	// receipts and MO messages alike.
	ReceiptsAcked         int64
	EnquireLinks, Unbinds int64
	MO                    int64
	GenericNacks, BadPDUs int64
}

// ErrNoSession is returned by Inject when no receiving bind exists for the
// system id.
var ErrNoSession = errors.New("sim: no receiving session bound")

// Server is a running simulator.
type Server struct {
	cfg Config
	ln  net.Listener

	throttleEvery, dropEvery atomic.Int64
	hang                     atomic.Bool
	responseDelay            atomic.Int64
	receiptDelay             atomic.Int64
	failPermille             atomic.Int64

	nextID   atomic.Uint64
	requests atomic.Int64

	// fates remembers the latest messages for query_sm, by id modulo its
	// size: older ones are forgotten, as an SMSC forgets after a while.
	fmu   sync.Mutex
	fates []fate

	mu       sync.Mutex
	sessions map[*session]struct{}
	queued   map[string][]*pdu.PDU // receipts waiting for a receiving bind, by system_id
	closed   bool
	wg       sync.WaitGroup

	st struct {
		binds, bindsRefused, submits, throttled, dropped, receipts, receiptsQueued, receiptsRetried, receiptsLost, receiptsAcked,
		enquireLinks, unbinds, mo, nacks, bad atomic.Int64
	}
}

// Start listens on addr ("127.0.0.1:0" picks a free port) and serves.
func Start(addr string, cfg Config) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.ReceiptQueue == 0 {
		cfg.ReceiptQueue = 10000
	}
	if cfg.ReceiptRetry <= 0 {
		cfg.ReceiptRetry = time.Second
	}
	s := &Server{cfg: cfg, ln: ln, sessions: map[*session]struct{}{}, queued: map[string][]*pdu.PDU{}, fates: make([]fate, keepFates)}
	// Ids start high enough that hex and decimal forms differ.
	s.nextID.Store(1_000_000)
	s.SetThrottleEvery(cfg.ThrottleEvery)
	s.SetDropEvery(cfg.DropEvery)
	s.SetResponseDelay(cfg.ResponseDelay)
	s.SetReceipts(cfg.ReceiptDelay, cfg.FailureRatio)
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

// Addr returns the address the simulator listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// SetThrottleEvery makes every nth submit answer 0x58; 0 stops it.
func (s *Server) SetThrottleEvery(n int) { s.throttleEvery.Store(int64(n)) }

// SetDropEvery makes every nth submit close its connection unanswered; 0 stops it.
func (s *Server) SetDropEvery(n int) { s.dropEvery.Store(int64(n)) }

// SetHang makes every session read and ignore whatever comes, binds and
// enquire_link included, while the TCP connection stays up: the failure
// that only keep-alive detects.
func (s *Server) SetHang(on bool) { s.hang.Store(on) }

// SetResponseDelay delays every submit answer by d.
func (s *Server) SetResponseDelay(d time.Duration) { s.responseDelay.Store(int64(d)) }

// SetReceipts sets the receipt delay and the share of failed receipts.
func (s *Server) SetReceipts(delay time.Duration, failureRatio float64) {
	s.receiptDelay.Store(int64(delay))
	s.failPermille.Store(int64(failureRatio * 1000))
}

// Stats returns the counters so far.
func (s *Server) Stats() Stats {
	return Stats{
		Binds: s.st.binds.Load(), BindsRefused: s.st.bindsRefused.Load(), Submits: s.st.submits.Load(),
		Throttled: s.st.throttled.Load(), Dropped: s.st.dropped.Load(), Receipts: s.st.receipts.Load(),
		ReceiptsQueued: s.st.receiptsQueued.Load(), ReceiptsRetried: s.st.receiptsRetried.Load(),
		ReceiptsLost: s.st.receiptsLost.Load(), ReceiptsAcked: s.st.receiptsAcked.Load(),
		EnquireLinks: s.st.enquireLinks.Load(), Unbinds: s.st.unbinds.Load(), MO: s.st.mo.Load(),
		GenericNacks: s.st.nacks.Load(), BadPDUs: s.st.bad.Load(),
	}
}

// DropAll closes every connection at once, as a crashing SMSC would.
func (s *Server) DropAll() {
	s.mu.Lock()
	for ss := range s.sessions {
		ss.conn.Close()
	}
	s.mu.Unlock()
}

// Close stops listening and drops every connection.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	err := s.ln.Close()
	s.DropAll()
	s.wg.Wait()
	return err
}

// Inject sends an MO message to a receiving bind of systemID ("" for any).
// Long text goes in concatenated parts.
func (s *Server) Inject(systemID string, mo MO) error {
	ss := s.receiver(systemID)
	if ss == nil {
		return ErrNoSession
	}
	coding, parts := text.Split(mo.Text)
	ref := uint16(rand.N(1 << 16))
	order := mo.Parts
	if len(order) == 0 {
		for i := range parts {
			order = append(order, i+1)
		}
	}
	ston, snpi := mo.Source.or11()
	dton, dnpi := mo.Dest.or11()
	for _, seq := range order {
		if seq < 1 || seq > len(parts) {
			return fmt.Errorf("sim: part %d of %d", seq, len(parts))
		}
		b := parts[seq-1]
		p := &pdu.PDU{Command: pdu.DeliverSM, SourceTON: ston, SourceNPI: snpi, Source: mo.From, DestTON: dton, DestNPI: dnpi, Dest: mo.To,
			DataCoding: coding.DataCoding(), ShortMessage: b}
		if len(parts) > 1 {
			total, i := byte(len(parts)), byte(seq)
			switch mo.Concat {
			case "sar":
				p.TLVs = append(p.TLVs, pdu.TLV{Tag: pdu.TagSarMsgRefNum, Value: []byte{byte(ref >> 8), byte(ref)}},
					pdu.TLV{Tag: pdu.TagSarTotalSegments, Value: []byte{total}},
					pdu.TLV{Tag: pdu.TagSarSegmentSeqnum, Value: []byte{i}})
			case "udh16":
				p.ESMClass = 0x40
				p.ShortMessage = append([]byte{0x06, 0x08, 0x04, byte(ref >> 8), byte(ref), total, i}, b...)
			case "", "udh8":
				p.ESMClass = 0x40
				p.ShortMessage = append(text.UDH(byte(ref), total, i), b...)
			default:
				return fmt.Errorf("sim: concat %q: want udh8, udh16 or sar", mo.Concat)
			}
		}
		if err := ss.request(p); err != nil {
			return err
		}
	}
	s.st.mo.Add(1)
	return nil
}

func (s *Server) receiver(systemID string) *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	for ss := range s.sessions {
		b := ss.bound.Load()
		if b == nil || b.mode == pdu.BindTransmitter || ss.gone.Load() {
			continue
		}
		if systemID == "" || b.systemID == systemID {
			return ss
		}
	}
	return nil
}

func (s *Server) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		if s.serveConn(c, nil) != nil {
			return
		}
	}
}

// errClosed is returned for work asked of a closed simulator.
var errClosed = errors.New("sim: closed")

// serveConn runs a session on c, after sending first if it is not nil.
func (s *Server) serveConn(c net.Conn, first *pdu.PDU) error {
	ss := &session{srv: s, conn: c, w: bufio.NewWriterSize(c, 64<<10)}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		c.Close()
		return errClosed
	}
	s.sessions[ss] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	var err error
	if first != nil {
		ss.seq.Store(first.Sequence)
		err = ss.send(first, true)
	}
	go func() {
		defer s.wg.Done()
		if err == nil {
			ss.serve()
		}
		ss.conn.Close()
		s.mu.Lock()
		delete(s.sessions, ss)
		s.mu.Unlock()
		ss.end()
	}()
	return err
}

// Outbind connects to an ESME listening at addr and sends outbind with
// the given credentials (SMPP 3.4 section 2.2.1), asking it to bind as a
// receiver on that connection; the session then goes on as if the ESME
// had dialled, and receipts queued for systemID are delivered on its bind.
func (s *Server) Outbind(ctx context.Context, addr, systemID, password string) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("sim: outbind: %w", err)
	}
	if err := s.serveConn(c, &pdu.PDU{Command: pdu.Outbind, Sequence: 1, SystemID: systemID, Password: password}); err != nil {
		return fmt.Errorf("sim: outbind: %w", err)
	}
	return nil
}

// fate is what becomes of one accepted message.
type fate struct {
	num    uint64
	due    time.Time // when it reaches its final state
	failed bool
}

// keepFates is how many recent messages query_sm can answer for.
const keepFates = 1 << 16

func (s *Server) remember(f fate) {
	s.fmu.Lock()
	s.fates[f.num%keepFates] = f
	s.fmu.Unlock()
}

// query answers query_sm: ENROUTE until the receipt delay has passed, then
// DELIVERED or UNDELIVERABLE, as the message's receipt says.
func (s *Server) query(p *pdu.PDU) *pdu.PDU {
	n, err := strconv.ParseUint(p.MessageID, idBase(s.cfg.HexIDs), 64)
	if err != nil {
		return p.Response(pdu.RQueryFail)
	}
	s.fmu.Lock()
	f := s.fates[n%keepFates]
	s.fmu.Unlock()
	if f.num != n || n == 0 {
		return p.Response(pdu.RQueryFail)
	}
	r := p.Response(pdu.OK)
	r.MessageID = p.MessageID
	r.MessageState = 1 // ENROUTE
	if now := time.Now(); !now.Before(f.due) {
		r.MessageState, r.FinalDate = 2, smppTime(f.due) // DELIVERED
		if f.failed {
			r.MessageState, r.ErrorCode = 5, 1 // UNDELIVERABLE
		}
	}
	return r
}

// smppTime formats t in the SMPP 3.4 absolute time format, in UTC.
func smppTime(t time.Time) string {
	t = t.UTC()
	return t.Format("060102150405") + strconv.Itoa(t.Nanosecond()/1e8) + "00+"
}

// bind is what a session is bound as.
type bind struct {
	mode     pdu.Command
	systemID string
}

type session struct {
	srv   *Server
	conn  net.Conn
	bound atomic.Pointer[bind]
	seq   atomic.Uint32
	gone  atomic.Bool // a write failed or the session ended: deliver nothing more here
	// flushing is set while a flush of receipts is due (see flushSoon).
	flushing atomic.Bool

	wmu     sync.Mutex
	w       *bufio.Writer
	scratch []byte

	// unacked holds the receipts written and not yet answered, by
	// sequence number; whoever takes one out owns sending it again.
	umu     sync.Mutex
	unacked map[uint32]*pdu.PDU
	ended   bool
}

// send writes p; flush says whether to push it out now or leave it for the
// reader loop to flush with the rest of a burst.
func (ss *session) send(p *pdu.PDU, flush bool) error {
	ss.wmu.Lock()
	defer ss.wmu.Unlock()
	var err error
	ss.scratch, err = p.Encode(ss.scratch[:0])
	if err != nil {
		return err
	}
	if _, err := ss.w.Write(ss.scratch); err != nil {
		return err
	}
	if flush {
		return ss.w.Flush()
	}
	return nil
}

func (ss *session) flush() {
	ss.wmu.Lock()
	ss.w.Flush()
	ss.wmu.Unlock()
}

// request sends a request of the SMSC's own (deliver_sm) with a fresh sequence number.
func (ss *session) request(p *pdu.PDU) error {
	p.Sequence = ss.seq.Add(1) & 0x7FFFFFFF
	if err := ss.send(p, true); err != nil {
		return fmt.Errorf("sim: %w", err)
	}
	return nil
}

func (ss *session) serve() {
	defer ss.conn.Close()
	br := bufio.NewReaderSize(ss.conn, 64<<10)
	var buf []byte
	for {
		p, b, err := pdu.Read(br, buf)
		buf = b
		if err != nil {
			if p == nil && len(buf) >= pdu.HeaderLen && !errors.Is(err, pdu.ErrLength) && !isIO(err) {
				ss.srv.st.bad.Add(1)
				seq := uint32(buf[12])<<24 | uint32(buf[13])<<16 | uint32(buf[14])<<8 | uint32(buf[15])
				ss.send(&pdu.PDU{Command: pdu.GenericNack, Status: pdu.RInvCmdLen, Sequence: seq}, true)
				continue
			}
			return
		}
		if ss.srv.hang.Load() {
			continue
		}
		if !ss.handle(p) {
			ss.flush()
			return
		}
		if br.Buffered() == 0 {
			ss.flush()
		}
	}
}

func isIO(err error) bool {
	var ne net.Error
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) || errors.As(err, &ne)
}

// handle answers one PDU; false ends the session.
func (ss *session) handle(p *pdu.PDU) bool {
	s := ss.srv
	switch p.Command {
	case pdu.BindTransceiver, pdu.BindTransmitter, pdu.BindReceiver:
		r := p.Response(pdu.OK)
		switch {
		case ss.bound.Load() != nil:
			r.Status = pdu.RAlyBnd
		case s.cfg.SystemID != "" && p.SystemID != s.cfg.SystemID:
			r.Status = pdu.RInvSysID
		case s.cfg.Password != "" && p.Password != s.cfg.Password:
			r.Status = pdu.RInvPaswd
		}
		if r.Status == pdu.OK {
			r.SystemID = "HEEDSIM"
			ss.bound.Store(&bind{mode: p.Command, systemID: p.SystemID})
			s.st.binds.Add(1)
		} else {
			s.st.bindsRefused.Add(1)
		}
		ss.send(r, false)
		if r.Status == pdu.OK && p.Command != pdu.BindTransmitter {
			// Not on the reader goroutine: an ESME that reads slowly must
			// not stop this session from reading its answers.
			go s.drain(p.SystemID)
		}
	case pdu.EnquireLink:
		s.st.enquireLinks.Add(1)
		ss.send(p.Response(pdu.OK), false)
	case pdu.Unbind:
		s.st.unbinds.Add(1)
		ss.send(p.Response(pdu.OK), false)
		return false
	case pdu.SubmitSM, pdu.DataSM:
		return ss.submit(p)
	case pdu.QuerySM:
		if b := ss.bound.Load(); b == nil || b.mode == pdu.BindReceiver {
			ss.send(p.Response(pdu.RInvBndSts), false)
		} else if t := s.throttleEvery.Load(); t > 0 && s.requests.Add(1)%t == 0 {
			s.st.throttled.Add(1)
			ss.send(p.Response(pdu.RThrottled), false)
		} else {
			ss.send(s.query(p), false)
		}
	case pdu.DeliverSMResp, pdu.DataSMResp:
		s.st.receiptsAcked.Add(1)
		if r := ss.answered(p.Sequence); r != nil && p.Status != pdu.OK {
			// Refused (ESME_RX_T_APPN and the like): try again later.
			s.st.receiptsRetried.Add(1)
			time.AfterFunc(s.cfg.ReceiptRetry, func() { s.deliver(ss.systemID(), r) })
		}
	case pdu.EnquireLinkResp, pdu.GenericNack:
	default:
		if !p.Command.IsResponse() {
			s.st.nacks.Add(1)
			ss.send(&pdu.PDU{Command: pdu.GenericNack, Status: pdu.RInvCmdID, Sequence: p.Sequence}, false)
		}
	}
	return true
}

func idBase(hex bool) int {
	if hex {
		return 16
	}
	return 10
}

func (ss *session) submit(p *pdu.PDU) bool {
	s := ss.srv
	b := ss.bound.Load()
	if b == nil || b.mode == pdu.BindReceiver {
		ss.send(p.Response(pdu.RInvBndSts), false)
		return true
	}
	if _, both := p.Get(pdu.TagMessagePayload); both && len(p.ShortMessage) > 0 {
		ss.send(p.Response(pdu.RInvOptParamVal), false)
		return true
	}
	n := s.requests.Add(1)
	if d := s.dropEvery.Load(); d > 0 && n%d == 0 {
		s.st.dropped.Add(1)
		ss.conn.Close()
		return false
	}
	if t := s.throttleEvery.Load(); t > 0 && n%t == 0 {
		s.st.throttled.Add(1)
		ss.send(p.Response(pdu.RThrottled), false)
		return true
	}
	if s.cfg.Reject != nil {
		if st := s.cfg.Reject(p); st != pdu.OK {
			ss.send(p.Response(st), false)
			return true
		}
	}
	num := s.nextID.Add(1)
	r := p.Response(pdu.OK)
	r.MessageID = strconv.FormatUint(num, idBase(s.cfg.HexIDs))
	s.st.submits.Add(1)
	if s.cfg.OnSubmit != nil {
		s.cfg.OnSubmit(Submit{SystemID: b.systemID, ID: r.MessageID, PDU: p})
	}
	if d := time.Duration(s.responseDelay.Load()); d > 0 {
		time.AfterFunc(d, func() { ss.send(r, true) })
	} else {
		ss.send(r, false)
	}
	failed := s.failPermille.Load() > 0 && rand.N(int64(1000)) < s.failPermille.Load()
	delay := time.Duration(s.receiptDelay.Load())
	s.remember(fate{num: num, due: time.Now().Add(delay), failed: failed})
	if rd := p.RegisteredDelivery & 3; rd == 1 || rd == 2 && failed {
		time.AfterFunc(delay, func() { s.receipt(b.systemID, p, num, failed) })
	}
	return true
}

// receipt sends the receipt for message num to a receiving bind of the
// system id that submitted it, or queues it until one binds.
func (s *Server) receipt(systemID string, sub *pdu.PDU, num uint64, failed bool) {
	id := strconv.FormatUint(num, 10)
	stat, state, errCode := "DELIVRD", byte(2), "000"
	if failed {
		stat, state, errCode = "UNDELIV", byte(5), "001"
	}
	now := time.Now().UTC().Format("0601021504")
	body := fmt.Sprintf("id:%s sub:001 dlvrd:%s submit date:%s done date:%s stat:%s err:%s text:", id, map[bool]string{true: "000", false: "001"}[failed], now, now, stat, errCode)
	p := &pdu.PDU{Command: pdu.DeliverSM, SourceTON: sub.DestTON, SourceNPI: sub.DestNPI, Source: sub.Dest,
		DestTON: sub.SourceTON, DestNPI: sub.SourceNPI, Dest: sub.Source, ESMClass: 0x04, ShortMessage: []byte(body)}
	if !s.cfg.TextReceipts {
		p.TLVs = []pdu.TLV{{Tag: pdu.TagReceiptedMessageID, Value: pdu.CString(id)}, {Tag: pdu.TagMessageState, Value: []byte{state}}}
		if failed {
			p.TLVs = append(p.TLVs, pdu.TLV{Tag: pdu.TagNetworkErrorCode, Value: []byte{3, 0, 1}})
		}
	}
	s.deliver(systemID, p)
}

// deliver sends receipt p to a receiving bind of systemID, or queues it.
func (s *Server) deliver(systemID string, p *pdu.PDU) {
	if ss := s.receiver(systemID); ss == nil || !ss.sendReceipt(p) {
		s.enqueue(systemID, p)
	}
}

// enqueue keeps p for systemID's next receiving bind, within the bound.
func (s *Server) enqueue(systemID string, p *pdu.PDU) {
	s.mu.Lock()
	q := s.queued[systemID]
	if len(q) >= s.cfg.ReceiptQueue {
		s.mu.Unlock()
		s.st.receiptsLost.Add(1)
		return
	}
	s.queued[systemID] = append(q, p)
	s.st.receiptsQueued.Add(1)
	closed := s.closed
	s.mu.Unlock()
	// A bind may have come while p was on its way here: look again, so
	// that p does not wait for the bind after next.
	if !closed && s.receiver(systemID) != nil {
		s.drain(systemID)
	}
}

// drain sends the receipts queued for systemID to one of its receiving binds.
func (s *Server) drain(systemID string) {
	s.mu.Lock()
	q := s.queued[systemID]
	delete(s.queued, systemID)
	s.st.receiptsQueued.Add(-int64(len(q)))
	s.mu.Unlock()
	for _, p := range q {
		s.deliver(systemID, p)
	}
}

// sendReceipt writes receipt p and remembers it until it is answered. It
// reports false if p was not written, which leaves p to the caller.
func (ss *session) sendReceipt(p *pdu.PDU) bool {
	p.Sequence = ss.seq.Add(1) & 0x7FFFFFFF
	ss.umu.Lock()
	if ss.ended {
		ss.umu.Unlock()
		return false
	}
	if ss.unacked == nil {
		ss.unacked = map[uint32]*pdu.PDU{}
	}
	ss.unacked[p.Sequence] = p
	ss.umu.Unlock()
	if err := ss.send(p, false); err != nil {
		ss.gone.Store(true)
		// Unless the session's end took it first, it is ours to queue.
		return ss.answered(p.Sequence) == nil
	}
	ss.srv.st.receipts.Add(1)
	ss.flushSoon()
	return true
}

// receiptFlush is how long a receipt may wait in the session's buffer
// for others to go out in the same write: under load, receipts fall due
// a few a millisecond, and a write each costs more than all else the
// simulator does for them.
const receiptFlush = time.Millisecond

// flushSoon flushes the session's writes within receiptFlush. A write
// that fails then ends the session, which queues again the receipts it
// wrote and never saw answered.
func (ss *session) flushSoon() {
	if !ss.flushing.CompareAndSwap(false, true) {
		return
	}
	time.AfterFunc(receiptFlush, func() {
		ss.flushing.Store(false)
		ss.wmu.Lock()
		err := ss.w.Flush()
		ss.wmu.Unlock()
		if err != nil {
			ss.gone.Store(true)
			ss.conn.Close()
		}
	})
}

// answered takes the receipt sent as seq out of the unanswered ones.
func (ss *session) answered(seq uint32) *pdu.PDU {
	ss.umu.Lock()
	defer ss.umu.Unlock()
	p := ss.unacked[seq]
	delete(ss.unacked, seq)
	return p
}

// end queues again the receipts this session wrote and never saw
// answered: the ESME may not have read them.
func (ss *session) end() {
	ss.gone.Store(true)
	ss.umu.Lock()
	ss.ended = true
	seqs := make([]uint32, 0, len(ss.unacked))
	for seq := range ss.unacked {
		seqs = append(seqs, seq)
	}
	slices.Sort(seqs)
	left := make([]*pdu.PDU, len(seqs))
	for i, seq := range seqs {
		left[i] = ss.unacked[seq]
	}
	ss.unacked = nil
	ss.umu.Unlock()
	id := ss.systemID()
	for _, p := range left {
		ss.srv.st.receiptsRetried.Add(1)
		ss.srv.deliver(id, p)
	}
}

func (ss *session) systemID() string {
	if b := ss.bound.Load(); b != nil {
		return b.systemID
	}
	return ""
}

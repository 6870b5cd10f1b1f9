package smpp

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heed/heed/smpp/pdu"
)

// link is one bound TCP connection: it numbers requests, matches responses
// to them, answers the SMSC's requests and notices when it dies.
type link struct {
	conn net.Conn
	cfg  *Config
	name string // bind role, for logs

	wmu     sync.Mutex
	w       *bufio.Writer
	scratch []byte
	flush   chan struct{}

	seq atomic.Uint32

	mu        sync.Mutex
	pending   map[uint32]waiter
	abandoned int   // pending requests whose caller stopped waiting
	err       error // why the link closed; nil while open

	// unbinding is set just before our unbind is written. From then on
	// the SMSC closing the connection is the end we asked for (it may do
	// so right after unbind_resp, before our own close runs), not a drop.
	unbinding atomic.Bool

	window chan struct{}
	done   chan struct{}

	// pauseUntil holds unix nanos before which no submit is written, set
	// when the SMSC throttles.
	pauseUntil atomic.Int64

	onInbound func(*link, *pdu.PDU)
	// onAccepted sees each accepted submit_sm that asked for a receipt, on
	// the reader goroutine before anything that follows it on the wire:
	// a receipt right behind its submit_sm_resp then finds the id known.
	onAccepted func(id string)
	// onLate counts answers that came after their caller gave up.
	onLate func()
}

// waiter is a request waiting for its response.
type waiter struct {
	ch      chan *pdu.PDU
	receipt bool // a submit that asked for a receipt
	window  bool // holds a window slot (a submit, not an enquire_link)
	// abandoned: the caller gave up (timeout or context) while the SMSC
	// may still hold the request; it keeps its window slot until the
	// answer comes, and the answer goes nowhere.
	abandoned bool
}

func newLink(conn net.Conn, cfg *Config, name string) *link {
	l := &link{
		conn:    conn,
		cfg:     cfg,
		name:    name,
		w:       bufio.NewWriterSize(conn, 64<<10),
		flush:   make(chan struct{}, 1),
		pending: map[uint32]waiter{},
		window:  make(chan struct{}, cfg.Window),
		done:    make(chan struct{}),
	}
	go l.flusher()
	return l
}

func (l *link) nextSeq() uint32 {
	for {
		s := l.seq.Add(1)
		if s <= 0x7FFFFFFF {
			return s
		}
		// Sequence numbers run 1..0x7FFFFFFF and then wrap.
		l.seq.CompareAndSwap(s, 0)
	}
}

// flusher writes out what senders buffered, so that many PDUs share one
// write system call when the window is wide.
func (l *link) flusher() {
	for {
		select {
		case <-l.done:
			return
		case <-l.flush:
		}
		// Let the other senders that are ready add their PDUs first: one
		// write for many requests is what makes a wide window fast.
		runtime.Gosched()
		l.wmu.Lock()
		err := l.w.Flush()
		l.wmu.Unlock()
		if err != nil {
			l.close(l.lost("write", err))
			return
		}
	}
}

// write queues p for sending. A PDU that cannot be encoded is an error
// wrapping errInvalid; a failed write closes the link.
func (l *link) write(p *pdu.PDU) error {
	l.wmu.Lock()
	var err error
	l.scratch, err = p.Encode(l.scratch[:0])
	if err != nil {
		l.wmu.Unlock()
		return fmt.Errorf("%w: %w", errInvalid, err)
	}
	_, err = l.w.Write(l.scratch)
	l.wmu.Unlock()
	if err != nil {
		err = l.lost("write", err)
		l.close(err)
		return err
	}
	select {
	case l.flush <- struct{}{}:
	default:
	}
	return nil
}

// lost is why the link closed when the connection failed in op: a drop,
// unless we had asked to unbind.
func (l *link) lost(op string, err error) error {
	if l.unbinding.Load() {
		return fmt.Errorf("%w: %w: connection closed on %s: %v", ErrClosed, ErrUnbound, op, err)
	}
	return fmt.Errorf("%w: %s: %v", ErrLinkDropped, op, err)
}

// closed returns why the link closed, or nil.
func (l *link) closed() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// close shuts the link and fails every request still waiting.
func (l *link) close(why error) {
	l.mu.Lock()
	if l.err != nil {
		l.mu.Unlock()
		return
	}
	l.err = why
	pending := l.pending
	l.pending = nil
	l.mu.Unlock()
	close(l.done)
	l.conn.Close()
	for _, w := range pending {
		close(w.ch)
	}
	if why != nil && !errors.Is(why, ErrClosed) {
		l.cfg.Logger.Warn("smpp link closed", "system_id", l.cfg.SystemID, "bind", l.name, "reason", why.Error())
	}
}

// errInvalid means the request could not be encoded: sending it again
// would fail again.
var errInvalid = errors.New("smpp: invalid request")

// errNotWritten means the request never left: safe to send again.
var errNotWritten = errors.New("smpp: request not written")

// call sends p and waits for its response. An error wrapping errNotWritten
// means p was not written; any other error means it was and its fate is
// unknown. useWindow makes the call take a window slot.
func (l *link) call(ctx context.Context, p *pdu.PDU, useWindow bool) (*pdu.PDU, error) {
	keepSlot := false
	if useWindow {
		select {
		case l.window <- struct{}{}:
		case <-l.done:
			return nil, fmt.Errorf("%w: %w", errNotWritten, l.closed())
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: %w", errNotWritten, ctx.Err())
		}
		defer func() {
			if !keepSlot {
				<-l.window
			}
		}()
		if until := l.pauseUntil.Load(); until != 0 {
			if d := time.Until(time.Unix(0, until)); d > 0 {
				t := time.NewTimer(d)
				select {
				case <-t.C:
				case <-l.done:
					t.Stop()
					return nil, fmt.Errorf("%w: %w", errNotWritten, l.closed())
				case <-ctx.Done():
					t.Stop()
					return nil, fmt.Errorf("%w: %w", errNotWritten, ctx.Err())
				}
			}
		}
	}
	ch := make(chan *pdu.PDU, 1)
	l.mu.Lock()
	if l.err != nil {
		err := l.err
		l.mu.Unlock()
		return nil, fmt.Errorf("%w: %w", errNotWritten, err)
	}
	p.Sequence = l.nextSeq()
	for l.pending[p.Sequence].ch != nil {
		// Only after a wrap: a number still waiting is skipped, so that
		// its answer can never be taken for another request's.
		p.Sequence = l.nextSeq()
	}
	l.pending[p.Sequence] = waiter{ch: ch, receipt: p.Command == pdu.SubmitSM && p.RegisteredDelivery != 0, window: useWindow}
	l.mu.Unlock()
	if err := l.write(p); err != nil {
		l.forget(p.Sequence)
		if errors.Is(err, errInvalid) {
			return nil, err
		}
		// A write that failed part-way leaves the SMSC a truncated PDU on
		// a connection that is now closed: it cannot have been accepted.
		return nil, fmt.Errorf("%w: %w", errNotWritten, err)
	}
	t := time.NewTimer(l.cfg.ResponseTimeout)
	defer t.Stop()
	var err error
	select {
	case r, ok := <-ch:
		if !ok {
			return nil, l.closed()
		}
		return r, nil
	case <-t.C:
		err = fmt.Errorf("%w after %v", ErrTimeout, l.cfg.ResponseTimeout)
	case <-ctx.Done():
		err = ctx.Err()
	}
	if useWindow {
		keepSlot = l.abandon(p.Sequence)
	} else {
		l.forget(p.Sequence)
	}
	// The answer may have come in the same instant: a known outcome beats
	// an unknown one.
	select {
	case r, ok := <-ch:
		if ok {
			return r, nil
		}
	default:
	}
	return nil, err
}

// abandon marks a request whose caller stops waiting. Its sequence number
// stays taken and its window slot held until the answer comes: the SMSC
// may still be working on it, and the window bounds what the SMSC holds,
// not what callers wait for. A window wholly held by abandoned requests
// means the SMSC answers nothing: the link is closed, to bind afresh.
// It reports false if the answer had already come.
func (l *link) abandon(seq uint32) bool {
	l.mu.Lock()
	w, ok := l.pending[seq]
	if ok {
		w.abandoned = true
		l.pending[seq] = w
		l.abandoned++
	}
	full := ok && l.abandoned >= cap(l.window)
	l.mu.Unlock()
	if full {
		l.close(fmt.Errorf("%w: no answer to a whole window of %d requests", ErrLinkDropped, cap(l.window)))
	}
	return ok
}

// inFlight counts the windowed requests written and not yet answered.
func (l *link) inFlight() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, w := range l.pending {
		if w.window {
			n++
		}
	}
	return n
}

func (l *link) forget(seq uint32) {
	l.mu.Lock()
	delete(l.pending, seq)
	l.mu.Unlock()
}

// reply sends a response to one of the SMSC's requests.
func (l *link) reply(req *pdu.PDU, status pdu.Status) {
	_ = l.write(req.Response(status)) // a failed write has closed the link
}

// nack answers a request this side cannot read or does not know.
func (l *link) nack(seq uint32, status pdu.Status) {
	_ = l.write(&pdu.PDU{Command: pdu.GenericNack, Status: status, Sequence: seq}) // a failed write has closed the link
}

// read runs until the connection fails, dispatching what arrives.
func (l *link) read() {
	br := bufio.NewReaderSize(l.conn, 64<<10)
	var buf []byte
	for {
		p, b, err := pdu.Read(br, buf)
		buf = b
		if err != nil {
			if len(buf) >= pdu.HeaderLen && !errors.Is(err, pdu.ErrLength) && p == nil && isDecodeErr(err) {
				// The frame was whole but its body was not: say so and go on.
				seq := binary.BigEndian.Uint32(buf[12:])
				l.cfg.Logger.Warn("smpp bad pdu", "system_id", l.cfg.SystemID, "error", err.Error())
				l.nack(seq, pdu.RInvCmdLen)
				continue
			}
			l.close(l.lost("read", err))
			return
		}
		l.dispatch(p)
	}
}

func isDecodeErr(err error) bool {
	for _, e := range []error{pdu.ErrShort, pdu.ErrUnterminated, pdu.ErrTooLong, pdu.ErrTrailing} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

func (l *link) dispatch(p *pdu.PDU) {
	if p.Command.IsResponse() {
		l.mu.Lock()
		w, ok := l.pending[p.Sequence]
		if ok {
			delete(l.pending, p.Sequence)
			if w.abandoned {
				l.abandoned--
			}
		}
		l.mu.Unlock()
		if !ok {
			return
		}
		if w.receipt && p.Command == pdu.SubmitSMResp && p.Status == pdu.OK && l.onAccepted != nil {
			l.onAccepted(p.MessageID)
		}
		if w.abandoned {
			<-l.window // the slot its caller left held
			if l.onLate != nil {
				l.onLate()
			}
			return
		}
		w.ch <- p
		return
	}
	switch p.Command {
	case pdu.EnquireLink:
		l.reply(p, pdu.OK)
	case pdu.Unbind:
		l.reply(p, pdu.OK)
		l.wmu.Lock()
		l.w.Flush()
		l.wmu.Unlock()
		if l.unbinding.Load() {
			// Both sides unbinding at once: the end we asked for too.
			l.close(fmt.Errorf("%w: %w: the SMSC unbound too", ErrClosed, ErrUnbound))
		} else {
			l.close(fmt.Errorf("%w: the SMSC unbound", ErrLinkDropped))
		}
	case pdu.DeliverSM, pdu.DataSM:
		if l.onInbound == nil {
			l.reply(p, pdu.RInvBndSts)
			return
		}
		l.onInbound(l, p)
	default:
		l.nack(p.Sequence, pdu.RInvCmdID)
	}
}

// keepAlive sends enquire_link every interval while the link is idle or
// busy alike; a missing answer closes the link.
func (l *link) keepAlive() {
	if l.cfg.EnquireLink <= 0 {
		return
	}
	tk := time.NewTicker(l.cfg.EnquireLink)
	defer tk.Stop()
	for {
		select {
		case <-l.done:
			return
		case <-tk.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), l.cfg.EnquireLinkTimeout)
		r, err := l.call(ctx, &pdu.PDU{Command: pdu.EnquireLink}, false)
		cancel()
		if err != nil || r.Command != pdu.EnquireLinkResp {
			if l.unbinding.Load() {
				return // the link is ending anyway; unbind closes it
			}
			l.close(fmt.Errorf("%w: enquire_link unanswered", ErrLinkDropped))
			return
		}
	}
}

// unbind asks the SMSC to end the session and waits for unbind_resp, so
// that nothing it still holds for us is delivered twice. Whatever happens
// to the connection after the unbind is written, the link closes with a
// reason wrapping ErrClosed and ErrUnbound, never ErrLinkDropped: the
// SMSC closing its end after unbind_resp is the expected end. An error
// means no unbind_resp came (the SMSC hung, or closed without one).
func (l *link) unbind(ctx context.Context) error {
	l.unbinding.Store(true)
	_, err := l.call(ctx, &pdu.PDU{Command: pdu.Unbind}, false)
	l.close(fmt.Errorf("%w: %w", ErrClosed, ErrUnbound))
	return err
}

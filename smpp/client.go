package smpp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heed/heed/smpp/pdu"
)

// BindMode chooses how the client binds.
type BindMode int

// Bind modes.
const (
	// Transceiver binds once for sending and receiving.
	Transceiver BindMode = iota
	// TransmitterReceiver binds twice: a transmitter for submits and a
	// receiver for receipts and MO messages.
	TransmitterReceiver
)

// Config configures one SMSC connection. Zero values take the defaults
// given on each field.
type Config struct {
	Addr       string // host:port of the SMSC
	SystemID   string
	Password   string
	SystemType string
	Mode       BindMode

	Source               string // sender address
	SourceTON, SourceNPI byte   // default 5/0 (alphanumeric) if Source has a letter, else 1/1
	DestTON, DestNPI     byte   // default 1/1 (international, E.164)
	ServiceType          string
	ValidityPeriod       string

	Window             int           // outstanding requests per bind; default 10
	TPS                float64       // submits per second; 0 means no limit
	ResponseTimeout    time.Duration // default 10s
	EnquireLink        time.Duration // keep-alive interval; default 30s, negative disables
	EnquireLinkTimeout time.Duration // default ResponseTimeout
	MinBackoff         time.Duration // reconnect backoff; default 250ms
	MaxBackoff         time.Duration // default 30s
	ThrottlePause      time.Duration // pause after a temporary status; default 1s, doubling per retry
	MaxRetries         int           // retries of a temporarily refused part; default 8
	// BindWait bounds how long a submit waits for a bind while the client
	// has no sending link and no bind attempt has failed since it lost it
	// (it is binding for the first time, or again after a drop); default
	// 2s. Once an attempt has failed, submits fail at once with NotSent.
	BindWait time.Duration

	Flash  Flash
	Concat Concat

	// Handler gets every deliver_sm and data_sm: receipts and MO messages.
	// It may be called from several goroutines at once. Returning an error
	// answers the SMSC with ESME_RX_T_APPN, so that it delivers again later.
	Handler func(Inbound) error
	// TrackIDs is how many submitted ids are remembered to correlate
	// receipts (Receipt.SubmitID); default 100000.
	TrackIDs int // negative: none

	Logger *slog.Logger
	Dial   func(ctx context.Context, addr string) (net.Conn, error)

	guessTON bool // SourceTON/NPI were not given: derive them from each sender
}

// sourceTON guesses the TON and NPI of a sender address: alphanumeric
// (5/0) if it has a letter, otherwise international E.164 (1/1).
func sourceTON(addr string) (ton, npi byte) {
	if addr == "" {
		return 0, 0
	}
	for _, r := range addr {
		if r < '0' || r > '9' {
			return 5, 0
		}
	}
	return 1, 1
}

func (cfg *Config) defaults() {
	if cfg.Window <= 0 {
		cfg.Window = 10
	}
	if cfg.ResponseTimeout <= 0 {
		cfg.ResponseTimeout = 10 * time.Second
	}
	if cfg.EnquireLink == 0 {
		cfg.EnquireLink = 30 * time.Second
	}
	if cfg.EnquireLinkTimeout <= 0 {
		cfg.EnquireLinkTimeout = cfg.ResponseTimeout
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 250 * time.Millisecond
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 30 * time.Second
	}
	if cfg.ThrottlePause <= 0 {
		cfg.ThrottlePause = time.Second
	}
	if cfg.MaxRetries <= 0 {
		cfg.MaxRetries = 8
	}
	if cfg.BindWait <= 0 {
		cfg.BindWait = 2 * time.Second
	}
	if cfg.Flash.UCS2 == 0 {
		cfg.Flash.UCS2 = 0x18
	}
	if cfg.Flash.GSM7 == 0 {
		cfg.Flash.GSM7 = 0xF0
	}
	if cfg.DestTON == 0 && cfg.DestNPI == 0 {
		cfg.DestTON, cfg.DestNPI = 1, 1
	}
	if cfg.SourceTON == 0 && cfg.SourceNPI == 0 {
		cfg.guessTON = true
		cfg.SourceTON, cfg.SourceNPI = sourceTON(cfg.Source)
	}
	if cfg.TrackIDs == 0 {
		cfg.TrackIDs = 100000
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.Dial == nil {
		var d net.Dialer
		cfg.Dial = func(ctx context.Context, addr string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }
	}
}

// Client is an ESME connected to one SMSC. It keeps itself bound,
// reconnecting with backoff, until Close.
type Client struct {
	cfg  Config
	ref  atomic.Uint32
	rate rate

	mu        sync.Mutex
	tx        *link         // the link submits go to
	ready     chan struct{} // closed when tx becomes usable
	lastErr   error         // the last bind or dial failure since tx was lost
	downSince time.Time     // when tx was lost (or the client made); zero while bound
	closing   bool
	links     map[*link]struct{}

	inflight sync.WaitGroup
	life     context.Context // ends when the client closes
	stop     context.CancelFunc
	stopped  sync.WaitGroup

	idmu sync.Mutex
	ids  *idTracker

	handlers chan struct{} // bounds concurrent Handler calls

	st struct {
		accepted, retried, notSent, permanent, unknown, binds, rebinds, bindFailures, reconnects, drops, inbound, late atomic.Int64
		outbound                                                                                                       atomic.Bool // an outbind has bound once
	}
}

// Stats counts what a client did since it started.
type Stats struct {
	Accepted     int64 // parts the SMSC accepted
	Retried      int64 // parts sent again after a temporary status (throttled, queue full)
	NotSent      int64 // Submit calls that failed with each Kind
	Permanent    int64
	Unknown      int64
	Binds        int64 // successful binds, first one included
	Rebinds      int64 // binds that restored a link after it was lost
	BindFailures int64 // bind attempts that failed (dial, refusal, timeout)
	// Reconnects counts bind attempts after the first of each link role:
	// after a lost link or a failed attempt, successful or not.
	Reconnects int64
	Drops      int64 // links lost while the client was open
	Inbound    int64 // deliver_sm and data_sm received
	// Late counts answers that came after their request had timed out
	// (its caller was told the outcome is unknown). They are dropped,
	// and only free the window slot the request kept.
	Late int64

	// Bound is whether the link submits go to is bound now; DownSince is
	// when it was lost (or the client started), zero while bound, and
	// BindError the last failed attempt since then.
	Bound     bool
	DownSince time.Time
	BindError error
	// InFlight is how many requests were written and await their answer
	// (abandoned ones included, which still hold their window slot).
	InFlight int
}

// Stats returns the client's counters, for metrics.
func (c *Client) Stats() Stats {
	st := Stats{
		Accepted: c.st.accepted.Load(), Retried: c.st.retried.Load(), NotSent: c.st.notSent.Load(),
		Permanent: c.st.permanent.Load(), Unknown: c.st.unknown.Load(), Binds: c.st.binds.Load(), Rebinds: c.st.rebinds.Load(),
		BindFailures: c.st.bindFailures.Load(), Reconnects: c.st.reconnects.Load(), Drops: c.st.drops.Load(),
		Inbound: c.st.inbound.Load(), Late: c.st.late.Load(),
	}
	c.mu.Lock()
	links := make([]*link, 0, len(c.links))
	for l := range c.links {
		links = append(links, l)
	}
	st.Bound = c.tx != nil && c.tx.closed() == nil
	if !st.Bound {
		st.DownSince, st.BindError = c.downSince, c.lastErr
	}
	c.mu.Unlock()
	for _, l := range links {
		st.InFlight += l.inFlight()
	}
	return st
}

// New returns a client that starts binding in the background. Submit waits
// for the bind (up to its context) and fails with [NotSent] if none came.
func New(cfg Config) *Client {
	cfg.defaults()
	c := &Client{cfg: cfg, ready: make(chan struct{}), downSince: time.Now(), links: map[*link]struct{}{}, ids: newIDTracker(cfg.TrackIDs), handlers: make(chan struct{}, max(64, 4*cfg.Window))}
	if cfg.TPS > 0 {
		c.rate.every = time.Duration(float64(time.Second) / cfg.TPS)
	}
	ctx, stop := context.WithCancel(context.Background())
	c.life, c.stop = ctx, stop
	switch cfg.Mode {
	case TransmitterReceiver:
		c.supervise(ctx, pdu.BindTransmitter, "transmitter", true)
		c.supervise(ctx, pdu.BindReceiver, "receiver", false)
	default:
		c.supervise(ctx, pdu.BindTransceiver, "transceiver", true)
	}
	return c
}

// Dial is New followed by waiting for the first bind: a refused bind (wrong
// credentials) or an unreachable SMSC is returned at once, and the client
// closed.
func Dial(ctx context.Context, cfg Config) (*Client, error) {
	c := New(cfg)
	if _, err := c.waitLink(ctx, "bind", true, 0); err != nil {
		c.stop()
		c.stopped.Wait()
		return nil, err
	}
	return c, nil
}

// supervise keeps one bind alive.
func (c *Client) supervise(ctx context.Context, cmd pdu.Command, role string, sends bool) {
	c.stopped.Add(1)
	go func() {
		defer c.stopped.Done()
		backoff := c.cfg.MinBackoff
		bound := false
		for attempt := 0; ctx.Err() == nil; attempt++ {
			if attempt > 0 {
				c.st.reconnects.Add(1)
			}
			l, err := c.bind(ctx, cmd, role)
			if err != nil {
				c.st.bindFailures.Add(1)
				c.mu.Lock()
				c.lastErr = err
				old := c.ready
				c.ready = make(chan struct{})
				c.mu.Unlock()
				close(old) // wake waiters so they can see lastErr
				c.cfg.Logger.Warn("smpp bind failed", "system_id", c.cfg.SystemID, "bind", role, "error", err.Error())
				_ = sleep(ctx, backoff/2+rand.N(backoff/2+1))
				backoff = min(2*backoff, c.cfg.MaxBackoff)
				continue
			}
			c.st.binds.Add(1)
			if bound {
				c.st.rebinds.Add(1)
			}
			bound = true
			c.cfg.Logger.Info("smpp bound", "system_id", c.cfg.SystemID, "bind", role, "addr", c.cfg.Addr)
			began := time.Now()
			c.mu.Lock()
			if c.closing {
				c.mu.Unlock()
				// Close took its list of links before this bind came: end
				// the session as Close would have. Not with ctx, which Close
				// may already have ended: the unbind would not even be
				// flushed before the connection closed.
				uctx, cancel := context.WithTimeout(context.Background(), min(c.cfg.ResponseTimeout, time.Second))
				_ = l.unbind(uctx)
				cancel()
				return
			}
			c.links[l] = struct{}{}
			if sends {
				c.tx = l
				c.lastErr = nil
				c.downSince = time.Time{}
				close(c.ready)
				c.ready = make(chan struct{})
			}
			c.mu.Unlock()
			clean := false
			select {
			case <-l.done:
				clean = errors.Is(l.closed(), ErrClosed)
				if !clean {
					c.st.drops.Add(1)
				}
			case <-ctx.Done():
			}
			c.mu.Lock()
			delete(c.links, l)
			if c.tx == l {
				c.tx = nil
				c.downSince = time.Now()
			}
			closing := c.closing
			c.mu.Unlock()
			if clean || closing {
				// Close unbound this link (or is about to): binding again
				// would only make a session for Close to tear down.
				return
			}
			if time.Since(began) > c.cfg.MaxBackoff {
				backoff = c.cfg.MinBackoff
			}
			if ctx.Err() == nil {
				_ = sleep(ctx, backoff/2+rand.N(backoff/2+1))
				backoff = min(2*backoff, c.cfg.MaxBackoff)
			}
		}
	}()
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// bind dials and binds one link.
func (c *Client) bind(ctx context.Context, cmd pdu.Command, role string) (*link, error) {
	dctx, cancel := context.WithTimeout(ctx, c.cfg.ResponseTimeout)
	defer cancel()
	conn, err := c.cfg.Dial(dctx, c.cfg.Addr)
	if err != nil {
		return nil, &Error{Kind: NotSent, Op: "bind " + role, Err: err}
	}
	return c.bindOn(dctx, conn, cmd, role)
}

// bindOn binds on a connection already open.
func (c *Client) bindOn(dctx context.Context, conn net.Conn, cmd pdu.Command, role string) (*link, error) {
	l := newLink(conn, &c.cfg, role)
	l.onInbound = c.inbound
	l.onAccepted = c.track
	l.onLate = func() { c.st.late.Add(1) }
	go l.read()
	r, err := l.call(dctx, &pdu.PDU{
		Command: cmd, SystemID: c.cfg.SystemID, Password: c.cfg.Password, SystemType: c.cfg.SystemType,
		InterfaceVersion: 0x34,
	}, false)
	if err != nil {
		l.close(err)
		return nil, &Error{Kind: NotSent, Op: "bind " + role, Err: err}
	}
	if r.Command == pdu.GenericNack || r.Status != pdu.OK {
		l.close(ErrBindRefused)
		return nil, &Error{Kind: NotSent, Op: "bind " + role, Status: r.Status, Err: ErrBindRefused}
	}
	go l.keepAlive()
	return l, nil
}

// waitLink returns the link to send on, waiting for a bind. With
// failFast, a bind failure is returned as soon as it happens. A positive
// bound limits the wait, as the context does.
func (c *Client) waitLink(ctx context.Context, op string, failFast bool, bound time.Duration) (*link, error) {
	var timeout <-chan time.Time
	if bound > 0 {
		t := time.NewTimer(bound)
		defer t.Stop()
		timeout = t.C
	}
	for {
		c.mu.Lock()
		l, ready, last, closing := c.tx, c.ready, c.lastErr, c.closing
		c.mu.Unlock()
		if closing {
			return nil, &Error{Kind: NotSent, Op: op, Err: ErrClosed}
		}
		if l != nil && l.closed() == nil {
			return l, nil
		}
		if failFast && last != nil {
			return nil, last
		}
		select {
		case <-ready:
		case <-timeout:
			return nil, &Error{Kind: NotSent, Op: op, Err: fmt.Errorf("%w after waiting %v for a bind", ErrNotBound, bound)}
		case <-ctx.Done():
			cause := error(fmt.Errorf("%w: %w", ErrNotBound, ctx.Err()))
			if last != nil {
				cause = fmt.Errorf("%w: %w (last attempt: %v)", ErrNotBound, ctx.Err(), last)
			}
			return nil, &Error{Kind: NotSent, Op: op, Err: cause}
		}
	}
}

// Submit sends m, splitting it into parts as needed, and returns once the
// SMSC has answered every part. A part refused with a temporary status is
// retried after a pause; an error is always an [*Error] whose Kind tells
// whether the message may be sent again.
func (c *Client) Submit(ctx context.Context, m Message) (Result, error) {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		c.count(NotSent)
		return Result{}, &Error{Kind: NotSent, Op: "submit_sm", Err: ErrClosed}
	}
	c.inflight.Add(1)
	c.mu.Unlock()
	defer c.inflight.Done()

	ps := c.build(m)
	res := Result{Parts: len(ps), IDs: make([]string, 0, len(ps))}
	if len(ps) > 255 {
		c.count(Permanent)
		return res, &Error{Kind: Permanent, Op: "submit_sm", Parts: len(ps), Err: fmt.Errorf("%w: text needs %d parts", ErrRefused, len(ps))}
	}
	for i, p := range ps {
		id, err := c.submitPart(ctx, p)
		if err != nil {
			var e *Error
			errors.As(err, &e)
			e.Part, e.Parts = i+1, len(ps)
			if e.Kind == NotSent && i > 0 {
				// Earlier parts are out: sending again would repeat them.
				e.Kind = Unknown
			}
			c.count(e.Kind)
			return res, e
		}
		res.IDs = append(res.IDs, id)
	}
	return res, nil
}

// track remembers a submitted id so that its receipt can be correlated.
func (c *Client) track(id string) {
	c.idmu.Lock()
	c.ids.add(id)
	c.idmu.Unlock()
}

func (c *Client) count(k Kind) {
	switch k {
	case NotSent:
		c.st.notSent.Add(1)
	case Permanent:
		c.st.permanent.Add(1)
	case Unknown:
		c.st.unknown.Add(1)
	}
}

func (c *Client) submitPart(ctx context.Context, p *pdu.PDU) (string, error) {
	r, err := c.request(ctx, p)
	if err != nil {
		return "", err
	}
	c.st.accepted.Add(1)
	return r.MessageID, nil
}

// request sends p on the sending link and returns the SMSC's positive
// answer, retrying after temporary statuses and on another link when p
// never left. Every error is an [*Error].
func (c *Client) request(ctx context.Context, p *pdu.PDU) (*pdu.PDU, error) {
	op := p.Command.String()
	for attempt := 0; ; attempt++ {
		// Unbound after a failed bind attempt, the SMSC is known to be
		// away: fail at once rather than hold the caller until it returns.
		l, err := c.waitLink(ctx, op, true, c.cfg.BindWait)
		if err != nil {
			if !errors.Is(err, ErrNotBound) && !errors.Is(err, ErrClosed) {
				err = &Error{Kind: NotSent, Op: op, Err: fmt.Errorf("%w: last bind attempt: %w", ErrNotBound, err)}
			}
			return nil, err
		}
		if err := c.rate.wait(ctx); err != nil {
			return nil, &Error{Kind: NotSent, Op: op, Err: err}
		}
		r, err := l.call(ctx, p, true)
		switch {
		case errors.Is(err, errInvalid):
			return nil, &Error{Kind: Permanent, Op: op, Err: err}
		case errors.Is(err, errNotWritten):
			if ctx.Err() != nil {
				return nil, &Error{Kind: NotSent, Op: op, Err: ctx.Err()}
			}
			continue // the link went away before p left: another link may take it
		case err != nil:
			return nil, &Error{Kind: Unknown, Op: op, Err: err}
		case r.Command == pdu.GenericNack && !r.Status.Temporary():
			return nil, &Error{Kind: Permanent, Op: op, Status: r.Status, Err: ErrRefused}
		case r.Status == pdu.OK && r.Command == p.Command.Response():
			return r, nil
		case r.Status.Temporary():
			if attempt >= c.cfg.MaxRetries {
				return nil, &Error{Kind: NotSent, Op: op, Status: r.Status, Err: fmt.Errorf("%w %d times", ErrRefused, attempt+1)}
			}
			c.st.retried.Add(1)
			pause := min(c.cfg.ThrottlePause<<min(attempt, 16), c.cfg.MaxBackoff)
			l.pauseUntil.Store(time.Now().Add(pause).UnixNano())
			c.cfg.Logger.Debug("smpp throttled", "system_id", c.cfg.SystemID, "status", r.Status.String(), "pause", pause)
			continue
		default:
			return nil, &Error{Kind: Permanent, Op: op, Status: r.Status, Err: ErrRefused}
		}
	}
}

// inbound handles a deliver_sm or data_sm off the reader goroutine, and
// answers it once the handler has taken it.
func (c *Client) inbound(l *link, p *pdu.PDU) {
	// A bounded number of handlers run at once; beyond that the reader
	// waits, which pushes back on the SMSC instead of piling up goroutines
	// (and delays submit responses too, so the bound is generous).
	select {
	case c.handlers <- struct{}{}:
	case <-l.done:
		return
	}
	c.st.inbound.Add(1)
	go func() {
		defer func() { <-c.handlers }()
		in := ParseInbound(p)
		if in.Receipt != nil {
			c.idmu.Lock()
			in.Receipt.SubmitID = c.ids.find(in.Receipt.ID)
			c.idmu.Unlock()
		}
		status := pdu.OK
		if h := c.cfg.Handler; h != nil {
			if err := h(in); err != nil {
				status = pdu.RXTAppn
			}
		}
		r := p.Response(status)
		if p.Command == pdu.DeliverSM || p.Command == pdu.DataSM {
			r.MessageID = ""
		}
		_ = l.write(r) // a failed write has closed the link; the SMSC will deliver again
	}()
}

// Close stops new submits, waits for those in flight (up to ctx), then
// unbinds every link and waits for unbind_resp.
func (c *Client) Close(ctx context.Context) error {
	c.mu.Lock()
	c.closing = true
	close(c.ready) // submits waiting for a bind give up now
	c.ready = make(chan struct{})
	c.mu.Unlock()
	done := make(chan struct{})
	go func() { c.inflight.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
	// Take the links before stopping the supervisors, which forget them.
	c.mu.Lock()
	links := make([]*link, 0, len(c.links))
	for l := range c.links {
		links = append(links, l)
	}
	c.mu.Unlock()
	var errs []error
	for _, l := range links {
		if err := l.unbind(ctx); err != nil {
			errs = append(errs, fmt.Errorf("smpp: unbind %s: %w", l.name, err))
		}
	}
	c.stop()
	c.stopped.Wait()
	return errors.Join(errs...)
}

// rate paces submits to a TPS limit.
type rate struct {
	every time.Duration
	mu    sync.Mutex
	next  time.Time
}

func (r *rate) wait(ctx context.Context) error {
	if r.every == 0 {
		return nil
	}
	r.mu.Lock()
	now := time.Now()
	at := r.next
	if at.Before(now) {
		at = now
	}
	r.next = at.Add(r.every)
	r.mu.Unlock()
	return sleep(ctx, at.Sub(now))
}

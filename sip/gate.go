// Package sip is heed's call gate: a SIP redirect server that a PBX or SBC
// asks before each outbound call, the way carriers' pre-dial
// do-not-call and call-filter services work. For an INVITE it finds the
// trunk (and so the tenant) by the request's source address, the calling
// line in P-Asserted-Identity or From, the callee in the Request-URI and
// the purpose in X-Heed-Purpose (or the trunk's default); it asks the
// notifier's gate, which decides and records the attempt, and answers
// 302 Moved Temporarily towards the carrier or a final refusal naming
// the rule (RFC 3326 Reason, and a Warning in Chinese and English).
//
// The SIP stack is github.com/emiago/sipgo: transactions, retransmissions
// and CANCEL matching are its job; reading numbers from URIs and headers,
// and the answers, are this package's.
package sip

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	gosip "github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/heed/heed/notify"
)

// sipgo's layers log messages with their start line, which holds the
// callee's number; heed's own logs and metrics say what the gate did
// instead (invariant 7).
func init() { gosip.SetDefaultLogger(slog.New(slog.DiscardHandler)) }

// Sentinel errors.
var (
	// ErrBadRequest means an INVITE lacked what the gate needs (a callee
	// number, a calling line, a known purpose).
	ErrBadRequest = errors.New("sip: bad request")
	// ErrConfig means a trunk or listener was configured wrongly.
	ErrConfig = errors.New("sip: bad configuration")
)

// Answers a trunk can give to refused calls.
const (
	Decline       = 603 // RFC 3261
	ConsentNeeded = 470 // RFC 5360
	Forbidden     = 403
)

// Trunk is a PBX or SBC that asks the gate, and the tenant it calls for.
type Trunk struct {
	// Name labels the trunk in events and metrics.
	Name   string `json:"name"`
	Tenant string `json:"tenant"`
	// Sources are the addresses or CIDR prefixes the trunk's INVITEs come
	// from.
	Sources []string `json:"sources"`
	// Carrier is host[:port] of the carrier an allowed call is redirected
	// to. Empty means answer "route onward": a 302 whose Contact is the
	// Request-URI itself, for an SBC that keeps its own routes.
	Carrier string `json:"carrier,omitempty"`
	// Transport of the carrier URI (udp, tcp); empty leaves it unnamed.
	Transport string `json:"transport,omitempty"`
	// Refuse is the status of a refusal: 603 (default), 470 or 403.
	Refuse int `json:"refuse,omitempty"`
	// Purpose is assumed when an INVITE has no X-Heed-Purpose:
	// "marketing" unless configured, the stricter of the two.
	Purpose string `json:"purpose,omitempty"`
	// Region reads callee numbers written without a country code (default CN).
	Region string `json:"region,omitempty"`
	// Username and Password, when set, make the trunk prove itself with
	// SIP digest authentication on every INVITE: from one of its Sources,
	// or from anywhere when it has none.
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`

	prefixes []netip.Prefix
}

// Gate decides and records a call attempt; notify.Notifier is one.
type Gate interface {
	Call(ctx context.Context, a notify.Attempt, answer func(notify.Verdict) error) (notify.Verdict, error)
}

// Config wires a Server.
type Config struct {
	Trunks []Trunk
	Gate   Gate
	// Normalize turns a dialled number into E.164, reading a national
	// number in region; it must not echo the number in its error.
	Normalize func(raw, region string) (string, error)
	// Pseudonym turns an E.164 number into the subject.
	Pseudonym func(e164 string) string
	// Region names the callee's region, for the region-burst rule.
	Region func(e164 string) string
	// Realm names the gate in digest challenges (default "heed").
	Realm string
	// Digest is the digest algorithm challenges offer: MD5 (default, what
	// most PBXs speak) or SHA-256 (RFC 8760).
	Digest string
	// Timeout bounds one decision (zero: 2 s); past it the gate answers
	// 503, so the PBX fails the call rather than dialling unchecked.
	Timeout time.Duration
	// Registerer takes the gate's metrics; nil registers none.
	Registerer prometheus.Registerer
	Log        *slog.Logger
}

// Server is the call gate's SIP side.
type Server struct {
	cfg     Config
	ua      *sipgo.UserAgent
	srv     *sipgo.Server
	ctx     context.Context
	stop    context.CancelFunc
	seen    seen
	digests *digests
	m       metrics
	wg      sync.WaitGroup
	// jobs hands INVITEs to long-lived workers (see onInvite).
	jobs chan func()

	mu      sync.Mutex
	closers []io.Closer // the listeners Serve opened
}

// New checks cfg and returns a Server; Serve starts its listeners.
func New(cfg Config) (*Server, error) {
	if cfg.Gate == nil || cfg.Normalize == nil || cfg.Pseudonym == nil {
		return nil, fmt.Errorf("%w: Gate, Normalize and Pseudonym are required", ErrConfig)
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Region == nil {
		cfg.Region = func(string) string { return "" }
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Second
	}
	if cfg.Realm == "" {
		cfg.Realm = "heed"
	}
	switch strings.ToUpper(cfg.Digest) {
	case "":
		cfg.Digest = "MD5"
	case "MD5", "SHA-256":
		cfg.Digest = strings.ToUpper(cfg.Digest)
	default:
		return nil, fmt.Errorf("%w: digest algorithm must be MD5 or SHA-256", ErrConfig)
	}
	digests, err := newDigests(cfg.Realm, cfg.Digest)
	if err != nil {
		return nil, err
	}
	names := map[string]bool{}
	for i := range cfg.Trunks {
		t := &cfg.Trunks[i]
		if err := t.prepare(); err != nil {
			return nil, err
		}
		if names[t.Name] {
			return nil, fmt.Errorf("%w: trunk %q named twice", ErrConfig, t.Name)
		}
		names[t.Name] = true
	}
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("heed"))
	if err != nil {
		return nil, err
	}
	srv, err := sipgo.NewServer(ua)
	if err != nil {
		_ = ua.Close()
		return nil, err
	}
	ctx, stop := context.WithCancel(context.Background())
	s := &Server{cfg: cfg, ua: ua, srv: srv, ctx: ctx, stop: stop, seen: seen{m: map[string]seenAnswer{}}, digests: digests,
		m: newMetrics(cfg.Registerer)}
	s.jobs = make(chan func())
	s.wg.Add(workers)
	for range workers {
		go s.work()
	}
	srv.OnInvite(s.onInvite)
	srv.OnOptions(s.onOptions)
	srv.OnAck(func(*gosip.Request, gosip.ServerTransaction) {}) // ACKs of final answers end in the transaction layer
	srv.OnCancel(func(req *gosip.Request, tx gosip.ServerTransaction) {
		// A CANCEL that matched an INVITE transaction was answered by the
		// transaction layer; this one matched none.
		_ = tx.Respond(gosip.NewResponseFromRequest(req, 481, "Call/Transaction Does Not Exist", nil))
	})
	return s, nil
}

func (t *Trunk) prepare() error {
	if t.Name == "" || t.Tenant == "" {
		return fmt.Errorf("%w: a trunk needs a name and a tenant", ErrConfig)
	}
	if len(t.Sources) == 0 && t.Username == "" {
		return fmt.Errorf("%w: trunk %q has no sources and no credentials", ErrConfig, t.Name)
	}
	if (t.Username == "") != (t.Password == "") {
		return fmt.Errorf("%w: trunk %q: username and password go together", ErrConfig, t.Name)
	}
	t.prefixes = t.prefixes[:0]
	for _, src := range t.Sources {
		p, err := netip.ParsePrefix(src)
		if err != nil {
			a, aerr := netip.ParseAddr(src)
			if aerr != nil {
				return fmt.Errorf("%w: trunk %q: source %q is not an address or prefix", ErrConfig, t.Name, src)
			}
			p = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
		}
		t.prefixes = append(t.prefixes, p.Masked())
	}
	switch t.Refuse {
	case 0:
		t.Refuse = Decline
	case Decline, ConsentNeeded, Forbidden:
	default:
		return fmt.Errorf("%w: trunk %q: refuse must be 603, 470 or 403", ErrConfig, t.Name)
	}
	switch t.Purpose {
	case "":
		t.Purpose = "marketing"
	case "service", "marketing":
	default:
		return fmt.Errorf("%w: trunk %q: purpose must be service or marketing", ErrConfig, t.Name)
	}
	if t.Region == "" {
		t.Region = "CN"
	}
	if t.Carrier != "" {
		if _, _, err := net.SplitHostPort(t.Carrier); err != nil && !strings.Contains(err.Error(), "missing port") {
			return fmt.Errorf("%w: trunk %q: carrier must be host[:port]", ErrConfig, t.Name)
		}
	}
	switch strings.ToLower(t.Transport) {
	case "", "udp", "tcp":
	default:
		return fmt.Errorf("%w: trunk %q: transport must be udp or tcp", ErrConfig, t.Name)
	}
	return nil
}

// Listen is one address the gate serves SIP on.
type Listen struct{ Network, Addr string }

// ParseListen reads --sip's value: network:host:port pairs,
// comma-separated, e.g. "udp:127.0.0.1:5070,tcp:127.0.0.1:5070".
func ParseListen(spec string) ([]Listen, error) {
	var out []Listen
	for _, part := range strings.Split(spec, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		network, addr, ok := strings.Cut(part, ":")
		if !ok || (network != "udp" && network != "tcp") {
			return nil, fmt.Errorf("%w: %q: want udp:HOST:PORT or tcp:HOST:PORT", ErrConfig, part)
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return nil, fmt.Errorf("%w: %q: %v", ErrConfig, part, err)
		}
		out = append(out, Listen{network, addr})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no listener given", ErrConfig)
	}
	return out, nil
}

// Serve listens on each address and serves until Close. It returns the
// bound addresses (a port of 0 is chosen by the system) once every
// listener is open.
func (s *Server) Serve(ls []Listen) ([]Listen, error) {
	var bound []Listen
	for _, l := range ls {
		switch l.Network {
		case "udp":
			c, err := net.ListenPacket("udp", l.Addr)
			if err != nil {
				_ = s.Close()
				return nil, err
			}
			s.own(c)
			bound = append(bound, Listen{"udp", c.LocalAddr().String()})
			s.wg.Add(1)
			go func() { defer s.wg.Done(); _ = s.srv.ServeUDP(c) }()
		case "tcp":
			ln, err := net.Listen("tcp", l.Addr)
			if err != nil {
				_ = s.Close()
				return nil, err
			}
			s.own(ln)
			bound = append(bound, Listen{"tcp", ln.Addr().String()})
			s.wg.Add(1)
			go func() { defer s.wg.Done(); _ = s.srv.ServeTCP(ln) }()
		default:
			_ = s.Close()
			return nil, fmt.Errorf("%w: network %q", ErrConfig, l.Network)
		}
	}
	s.wg.Add(1)
	go func() { defer s.wg.Done(); s.seen.sweep(s.ctx) }()
	return bound, nil
}

func (s *Server) own(c io.Closer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closers = append(s.closers, c)
}

// Close stops the listeners and waits for them.
func (s *Server) Close() error {
	s.stop()
	s.mu.Lock()
	for _, c := range s.closers {
		_ = c.Close()
	}
	s.closers = nil
	s.mu.Unlock()
	err := s.ua.Close()
	s.wg.Wait()
	return err
}

func (s *Server) onOptions(req *gosip.Request, tx gosip.ServerTransaction) {
	res := gosip.NewResponseFromRequest(req, 200, "OK", nil)
	res.AppendHeader(gosip.NewHeader("Allow", "INVITE, ACK, CANCEL, OPTIONS"))
	res.AppendHeader(gosip.NewHeader("Accept", "application/sdp"))
	_ = tx.Respond(res)
}

// workers is how many INVITEs are decided at once; the rest wait their
// turn. The durable record of each attempt is the slow part, and group
// commits batch however many wait, so a few hundred keep the store busy.
const workers = 256

// onInvite runs on a goroutine sipgo starts for the request. The decision
// runs on one of the workers instead: a fresh goroutine's stack grows by
// copying several times on the way down to the rules, which cost more CPU
// than any one step of the decision.
func (s *Server) onInvite(req *gosip.Request, tx gosip.ServerTransaction) {
	start := time.Now()
	done := make(chan struct{})
	job := func() {
		defer close(done)
		s.answer(req, tx)
	}
	wait := time.NewTimer(s.cfg.Timeout)
	defer wait.Stop()
	select {
	case s.jobs <- job:
		<-done
		return
	case <-wait.C:
		// Every worker stayed busy as long as a decision may take: the
		// gate is overloaded, and a PBX retrying elsewhere beats one
		// waiting for its own timer.
	case <-s.ctx.Done():
	}
	s.m.observe(503, "overloaded", time.Since(start))
	res := gosip.NewResponseFromRequest(req, 503, "Service Unavailable", nil)
	res.AppendHeader(gosip.NewHeader("Retry-After", "5"))
	_ = tx.Respond(res)
}

// work decides INVITEs until the server closes.
func (s *Server) work() {
	defer s.wg.Done()
	for {
		select {
		case job := <-s.jobs:
			job()
		case <-s.ctx.Done():
			return
		}
	}
}

func (s *Server) answer(req *gosip.Request, tx gosip.ServerTransaction) {
	start := time.Now()
	res, rule := s.invite(req, tx)
	if res == nil {
		return // answered inside the gate
	}
	if err := tx.Respond(res); err != nil {
		s.cfg.Log.Warn("sip: answer not sent", "status", res.StatusCode, "err", err)
	}
	s.m.observe(res.StatusCode, rule, time.Since(start))
}

// invite decides one INVITE. It returns the answer to send, or nil when
// the allowed answer was sent from within the gate.
func (s *Server) invite(req *gosip.Request, tx gosip.ServerTransaction) (*gosip.Response, string) {
	start := time.Now()
	trunk, cred := s.trunkFor(req)
	if trunk == nil {
		s.m.unknown.Inc()
		res := gosip.NewResponseFromRequest(req, 403, "Forbidden", nil)
		res.AppendHeader(gosip.NewHeader("Warning", `399 heed "未知中继 / unknown trunk"`))
		return res, "unknown-trunk"
	}
	s.m.trunks.WithLabelValues(trunk.Name).Inc()
	key, err := txKey(req)
	if err != nil {
		return s.bad(req, 400, "Bad Request", err), "bad-request"
	}
	if res, ok := s.seen.get(key); ok {
		return res, "retransmission"
	}
	if res := s.authenticate(req, trunk, cred); res != nil {
		return res, "unauthenticated"
	}
	number, err := dialled(&req.Recipient)
	if err != nil {
		if strings.Contains(err.Error(), "scheme") {
			return s.bad(req, 416, "Unsupported URI Scheme", err), "bad-request"
		}
		return s.bad(req, 484, "Address Incomplete", err), "bad-request"
	}
	e164, err := s.cfg.Normalize(number, trunk.Region)
	if err != nil {
		return s.bad(req, 484, "Address Incomplete", fmt.Errorf("%w: callee is not a valid number", ErrBadRequest)), "bad-request"
	}
	line, err := caller(req)
	if err != nil {
		return s.bad(req, 400, "Bad Request", err), "bad-request"
	}
	purpose, err := purposeOf(req, trunk.Purpose)
	if err != nil {
		return s.bad(req, 400, "Bad Request", err), "bad-request"
	}
	a := notify.Attempt{Tenant: trunk.Tenant, Actor: "sip:" + trunk.Name, Number: e164, Subject: s.cfg.Pseudonym(e164),
		Line: line, Purpose: purpose, Region: s.cfg.Region(e164), Trunk: trunk.Name, CallID: req.CallID().Value(), Key: key}
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.Timeout)
	defer cancel()
	sent := false
	v, err := s.cfg.Gate.Call(ctx, a, func(v notify.Verdict) error {
		res := s.allow(req, trunk, v)
		s.seen.put(key, res)
		sent = true
		err := tx.Respond(res)
		s.m.observe(res.StatusCode, "", time.Since(start))
		return err
	})
	if sent {
		if err != nil {
			s.cfg.Log.Warn("sip: redirect not sent", "trunk", trunk.Name, "err", err)
		}
		return nil, ""
	}
	if err != nil {
		// Fail closed: the PBX must not dial a call heed could not check.
		s.cfg.Log.Error("sip: call gate failed", "trunk", trunk.Name, "err", err)
		res := gosip.NewResponseFromRequest(req, 503, "Service Unavailable", nil)
		res.AppendHeader(gosip.NewHeader("Retry-After", "5"))
		return res, "error"
	}
	res, rule := s.refuse(req, trunk, v)
	s.seen.put(key, res)
	return res, rule
}

// allow builds the redirect of an allowed call.
func (s *Server) allow(req *gosip.Request, t *Trunk, v notify.Verdict) *gosip.Response {
	res := gosip.NewResponseFromRequest(req, 302, "Moved Temporarily", nil)
	to := req.Recipient.Clone()
	if t.Carrier != "" {
		host, port, err := net.SplitHostPort(t.Carrier)
		if err != nil {
			host, port = t.Carrier, ""
		}
		to = &gosip.Uri{Scheme: "sip", User: req.Recipient.User, Host: host}
		if p, err := strconv.Atoi(port); err == nil {
			to.Port = p
		}
		if t.Transport != "" {
			to.UriParams = gosip.NewParams()
			to.UriParams.Add("transport", strings.ToLower(t.Transport))
		}
	}
	res.AppendHeader(&gosip.ContactHeader{Address: *to})
	res.AppendHeader(gosip.NewHeader("X-Heed-Event", v.Event.ID))
	return res
}

// refuse builds the final answer of a refused call: the trunk's status, a
// Reason naming the rule and a Warning with its sentence in Chinese and
// English.
func (s *Server) refuse(req *gosip.Request, t *Trunk, v notify.Verdict) (*gosip.Response, string) {
	rule, zh, en := "denied", "不允许呼叫", "call not allowed"
	for _, r := range v.Reasons {
		if r.Effect == "deny" {
			rule, en = r.Rule, r.Text
			if r.TextZH != "" {
				zh = r.TextZH
			}
			break
		}
	}
	phrase := map[int]string{Decline: "Decline", ConsentNeeded: "Consent Needed", Forbidden: "Forbidden"}[t.Refuse]
	res := gosip.NewResponseFromRequest(req, t.Refuse, phrase, nil)
	res.AppendHeader(gosip.NewHeader("Reason", fmt.Sprintf("SIP;cause=%d;text=%s", t.Refuse, quoted(rule))))
	res.AppendHeader(gosip.NewHeader("Warning", "399 heed "+quoted(zh+" / "+en)))
	if v.Event.ID != "" {
		res.AppendHeader(gosip.NewHeader("X-Heed-Event", v.Event.ID))
	}
	return res, rule
}

func (s *Server) bad(req *gosip.Request, status int, phrase string, err error) *gosip.Response {
	res := gosip.NewResponseFromRequest(req, status, phrase, nil)
	msg := strings.TrimPrefix(err.Error(), ErrBadRequest.Error()+": ")
	res.AppendHeader(gosip.NewHeader("Warning", "399 heed "+quoted(msg)))
	return res
}

// txKey identifies an INVITE transaction (RFC 3261 17.2.3): Call-ID, CSeq
// and the top Via's branch.
func txKey(req *gosip.Request) (string, error) {
	id, cseq, via := req.CallID(), req.CSeq(), req.Via()
	if id == nil || cseq == nil || via == nil || id.Value() == "" {
		return "", fmt.Errorf("%w: Call-ID, CSeq and Via are required", ErrBadRequest)
	}
	branch, _ := via.Params.Get("branch")
	return id.Value() + "\x00" + strconv.FormatUint(uint64(cseq.SeqNo), 10) + "\x00" + branch, nil
}

// seen remembers the final answer of each INVITE transaction for as long
// as a retransmission may come (64·T1), so that one arriving after the
// transaction layer forgot the transaction gets the same answer instead
// of a second decision.
type seen struct {
	mu sync.Mutex
	m  map[string]seenAnswer
}

type seenAnswer struct {
	res *gosip.Response
	at  time.Time
}

const (
	seenFor = 32 * time.Second
	seenMax = 1 << 17
)

func (s *seen) get(key string) (*gosip.Response, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.m[key]
	if !ok || time.Since(a.at) > seenFor {
		return nil, false
	}
	return a.res.Clone(), true
}

func (s *seen) put(key string, res *gosip.Response) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.m) >= seenMax {
		s.expire(time.Now())
	}
	s.m[key] = seenAnswer{res.Clone(), time.Now()}
}

// expire drops old answers; s.mu is held.
func (s *seen) expire(now time.Time) {
	for k, a := range s.m {
		if now.Sub(a.at) > seenFor {
			delete(s.m, k)
		}
	}
}

func (s *seen) sweep(ctx context.Context) {
	t := time.NewTicker(seenFor)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			s.mu.Lock()
			s.expire(now)
			s.mu.Unlock()
		}
	}
}

type metrics struct {
	invites *prometheus.CounterVec
	latency prometheus.Histogram
	trunks  *prometheus.CounterVec
	unknown prometheus.Counter
	auth    *prometheus.CounterVec
}

func newMetrics(r prometheus.Registerer) metrics {
	m := metrics{
		invites: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "heed_sip_invites_total",
			Help: "INVITEs answered by the call gate, by status and the rule that refused (empty when allowed)."}, []string{"status", "rule"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "heed_sip_decision_seconds",
			Help:    "Time from an INVITE to the gate's final answer.",
			Buckets: []float64{.0005, .001, .002, .005, .01, .02, .05, .1, .25, .5, 1, 2}}),
		trunks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "heed_sip_trunk_invites_total",
			Help: "INVITEs from each configured trunk."}, []string{"trunk"}),
		unknown: prometheus.NewCounter(prometheus.CounterOpts{Name: "heed_sip_unknown_trunk_total",
			Help: "INVITEs from an address no trunk is configured for (answered 403, not recorded)."}),
		auth: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "heed_sip_auth_total",
			Help: "Digest authentication of INVITEs from trunks with credentials: challenged, stale, failed or ok."}, []string{"result"}),
	}
	if r != nil {
		r.MustRegister(m.invites, m.latency, m.trunks, m.unknown, m.auth)
	}
	return m
}

func (m metrics) observe(status int, rule string, d time.Duration) {
	m.invites.WithLabelValues(strconv.Itoa(status), rule).Inc()
	m.latency.Observe(d.Seconds())
}

package sip

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	gosip "github.com/emiago/sipgo/sip"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/heed/heed/ledger"
	"github.com/heed/heed/ledger/bolt"
	"github.com/heed/heed/notify"
)

// kamailio finds the Kamailio binary and its module directory.
func kamailio(t testing.TB) (bin, modules string) {
	t.Helper()
	bin, err := exec.LookPath("kamailio")
	if err != nil {
		for _, p := range []string{"/usr/sbin/kamailio", "/usr/local/sbin/kamailio"} {
			if _, err := os.Stat(p); err == nil {
				bin = p
			}
		}
	}
	if bin == "" {
		t.Fatal("kamailio is not installed: run make deps (it installs the Debian package kamailio)")
	}
	matches, _ := filepath.Glob("/usr/lib/*/kamailio/modules/tm.so")
	more, _ := filepath.Glob("/usr/lib/kamailio/modules/tm.so")
	matches = append(matches, more...)
	if len(matches) == 0 {
		t.Fatal("kamailio's modules (tm.so) not found")
	}
	return bin, filepath.Dir(matches[0]) + "/"
}

// freePort returns a port nothing listens on at host, for UDP and TCP.
func freePort(t testing.TB, host string) string {
	t.Helper()
	for range 20 {
		c, err := net.ListenPacket("udp", host+":0")
		if err != nil {
			t.Fatal(err)
		}
		addr := c.LocalAddr().String()
		_ = c.Close()
		if l, err := net.Listen("tcp", addr); err == nil {
			_ = l.Close()
			return addr
		}
	}
	t.Fatal("no free port")
	return ""
}

// startKamailio runs Kamailio with testdata/kamailio.cfg, listening on a
// free port of host and asking gate, and on another port that routes
// straight to carrier; it returns both addresses.
func startKamailio(t testing.TB, host, gate, carrier string) (listen, direct string) {
	t.Helper()
	return startKamailioAs(t, host, gate, carrier, "none:heed:none")
}

// startKamailioAs is startKamailio with the trunk credentials
// (user:realm:password) Kamailio answers the gate's challenges with.
func startKamailioAs(t testing.TB, host, gate, carrier, credential string) (listen, direct string) {
	t.Helper()
	bin, modules := kamailio(t)
	cfg, err := os.ReadFile("testdata/kamailio.cfg")
	if err != nil {
		t.Fatal(err)
	}
	listen, direct = freePort(t, host), freePort(t, host)
	_, directPort, _ := net.SplitHostPort(direct)
	dir := t.TempDir()
	cfg = bytes.NewBuffer(cfg).Bytes()
	text := strings.NewReplacer("@@LISTEN@@", listen, "@@HEED@@", gate, "@@MODULES@@", modules,
		"@@DIRECT@@", direct, "@@DIRECT_PORT@@", directPort, "@@CARRIER@@", carrier, "@@CREDENTIAL@@", credential).Replace(string(cfg))
	path := filepath.Join(dir, "kamailio.cfg")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-DD", "-E", "-f", path, "-w", dir, "-Y", dir, "-P", filepath.Join(dir, "kamailio.pid"), "-m", "64", "-M", "8")
	var logs bytes.Buffer
	var mu sync.Mutex
	cmd.Stdout = lockedWriter{&mu, &logs}
	cmd.Stderr = lockedWriter{&mu, &logs}
	// Kamailio forks its workers, which hold its output open: it runs in
	// a process group of its own so that stopping it stops them all, and
	// Wait gives up on the output soon after the main process is gone.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGINT)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		if t.Failed() {
			mu.Lock()
			t.Logf("kamailio's log:\n%s", logs.String())
			mu.Unlock()
		}
	})
	// Ready once it answers (405 to OPTIONS, by the script).
	deadline := time.Now().Add(15 * time.Second)
	for {
		conn, err := net.Dial("udp", listen)
		if err == nil {
			_, _ = conn.Write([]byte("OPTIONS sip:ping@" + listen + " SIP/2.0\r\nVia: SIP/2.0/UDP " + conn.LocalAddr().String() + ";branch=z9hG4bK-ping" + fmt.Sprint(time.Now().UnixNano()) +
				"\r\nFrom: <sip:t@t>;tag=1\r\nTo: <sip:ping@t>\r\nCall-ID: ping\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 5\r\nContent-Length: 0\r\n\r\n"))
			_ = conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			buf := make([]byte, 2048)
			_, err = conn.Read(buf)
			_ = conn.Close()
			if err == nil {
				return listen, direct
			}
		}
		select {
		case <-done:
			t.Fatal("kamailio exited at start")
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("kamailio did not answer in 15 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// testCarrier is the carrier a test routes allowed calls to: it notes
// each INVITE's callee and answers 486, which the caller sees with an
// X-Carrier header (a connected call would need a dialog the test does
// not care about).
type testCarrier struct {
	addr string
	mu   sync.Mutex
	got  []string // callees, in order
}

func startCarrier(t testing.TB) *testCarrier {
	t.Helper()
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("carrier"))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := sipgo.NewServer(ua)
	if err != nil {
		t.Fatal(err)
	}
	c := &testCarrier{}
	srv.OnInvite(func(req *gosip.Request, tx gosip.ServerTransaction) {
		c.mu.Lock()
		c.got = append(c.got, req.Recipient.User)
		c.mu.Unlock()
		res := gosip.NewResponseFromRequest(req, 486, "Busy Here", nil)
		res.AppendHeader(gosip.NewHeader("X-Carrier", "test-carrier"))
		_ = tx.Respond(res)
	})
	srv.OnAck(func(*gosip.Request, gosip.ServerTransaction) {})
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c.addr = pc.LocalAddr().String()
	go func() { _ = srv.ServeUDP(pc) }()
	t.Cleanup(func() { _ = pc.Close(); _ = ua.Close() })
	return c
}

func (c *testCarrier) callees() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.got...)
}

// TestThroughKamailio places calls through Kamailio acting as a PBX's
// outbound proxy, which asks heed before each INVITE and follows its
// answer: the carrier receives exactly the calls heed allowed, and the
// caller gets heed's refusal for the others.
func TestThroughKamailio(t *testing.T) {
	carrier := startCarrier(t)
	tr := acmeTrunk()
	tr.Carrier = carrier.addr
	h := newHarness(t, []Trunk{tr}, nil)
	kam, _ := startKamailio(t, "127.0.0.1", h.addrs["udp"], carrier.addr)
	// A second Kamailio on another loopback address: a PBX heed has no
	// trunk for.
	stranger, _ := startKamailio(t, "127.0.0.2", h.addrs["udp"], carrier.addr)

	const (
		allowed   = "+8613900000101"
		optedOut  = "+8613900000102"
		suspended = "+8613900000103"
		quiet     = "+8613900000104"
		unknown   = "+8613900000105"
	)
	for _, n := range []string{allowed, optedOut, suspended, quiet, unknown} {
		h.customer(t, n)
	}
	h.optOut(t, optedOut)
	const suspendedLine = "02150000077"
	ev, err := ledger.NewEvent(tenant, "", noon.Add(-time.Minute), ledger.LineSuspended{Line: suspendedLine, Rule: "line-suspended",
		Contacts: 10000, Complaints: 1, Rate: 0.0001, WindowDays: 30})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.st.Append(context.Background(), ledger.LineStream(tenant, suspendedLine), ledger.Any(), []ledger.Event{ev}); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		name    string
		proxy   string
		callee  string
		from    string
		night   bool
		status  int
		rule    string
		carrier bool
		record  bool
	}{
		{"allowed", kam, allowed, line, false, 486, "", true, true},
		{"opted out", kam, optedOut, line, false, 603, "withdrawal", false, true},
		{"suspended line", kam, suspended, suspendedLine, false, 603, "line-suspended", false, true},
		{"quiet hours", kam, quiet, line, true, 603, "quiet-hours", false, true},
		{"unknown trunk", stranger, unknown, line, false, 403, "", false, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			at := noon
			if c.night {
				at = night
			}
			h.clock.Store(&at)
			before := len(carrier.callees())
			res := h.inviteVia(t, c.proxy, strings.TrimPrefix(c.callee, "+"), c.from)
			if res.StatusCode != c.status {
				t.Fatalf("caller got %d %s, want %d", res.StatusCode, res.Reason, c.status)
			}
			reached := carrier.callees()[before:]
			if c.carrier != (len(reached) == 1) || len(reached) > 1 {
				t.Fatalf("carrier received %d INVITEs, want carrier reached: %v", len(reached), c.carrier)
			}
			if c.carrier && header(res, "X-Carrier") != "test-carrier" {
				t.Errorf("the caller's answer did not come from the carrier: %v", res.Short())
			}
			if c.rule != "" && !strings.Contains(header(res, "Reason"), `"`+c.rule+`"`) {
				t.Errorf("Reason %q, want rule %s", header(res, "Reason"), c.rule)
			}
			contacts, refusals := h.recorded(t, c.callee)
			switch {
			case !c.record:
				if len(contacts)+len(refusals) != 0 {
					t.Errorf("recorded %d contacts and %d refusals for an unknown trunk", len(contacts), len(refusals))
				}
			case c.carrier:
				if len(contacts) != 1 || len(refusals) != 0 || contacts[0].Trunk != tr.Name {
					t.Errorf("recorded %+v and %d refusals, want one contact through trunk %s", contacts, len(refusals), tr.Name)
				}
			default:
				if len(contacts) != 0 || len(refusals) != 1 || refusals[0].Reasons == nil {
					t.Errorf("recorded %d contacts and %d refusals, want one refusal", len(contacts), len(refusals))
				}
			}
		})
	}
}

// TestKamailioAnswersDigest: a trunk with credentials behind Kamailio,
// which answers the gate's challenge with uac_auth as a PBX's proxy
// would; the right password routes the call, a wrong one fails it and
// records nothing.
func TestKamailioAnswersDigest(t *testing.T) {
	carrier := startCarrier(t)
	tr := authTrunk()
	tr.Carrier = carrier.addr
	h := newHarness(t, []Trunk{tr}, nil)
	right, _ := startKamailioAs(t, "127.0.0.1", h.addrs["udp"], carrier.addr, tr.Username+":heed:"+tr.Password)
	wrong, _ := startKamailioAs(t, "127.0.0.1", h.addrs["udp"], carrier.addr, tr.Username+":heed:guess")
	const callee = "+8613900000111"
	h.customer(t, callee)

	if res := h.inviteVia(t, wrong, strings.TrimPrefix(callee, "+"), line); res.StatusCode != 403 || len(carrier.callees()) != 0 {
		t.Fatalf("wrong password: caller got %d, carrier reached %d times; want 403 and none", res.StatusCode, len(carrier.callees()))
	}
	if contacts, refusals := h.recorded(t, callee); len(contacts)+len(refusals) != 0 {
		t.Fatalf("a call with wrong credentials was recorded: %d contacts, %d refusals", len(contacts), len(refusals))
	}
	res := h.inviteVia(t, right, strings.TrimPrefix(callee, "+"), line)
	if res.StatusCode != 486 || header(res, "X-Carrier") != "test-carrier" {
		t.Fatalf("right password: caller got %d %s, want the carrier's 486", res.StatusCode, res.Reason)
	}
	if contacts, _ := h.recorded(t, callee); len(contacts) != 1 || contacts[0].Trunk != tr.Name {
		t.Fatalf("recorded %+v, want one contact through %s", contacts, tr.Name)
	}
	if got := testutil.ToFloat64(h.srv.m.auth.WithLabelValues(authOK)); got != 1 {
		t.Errorf("%v authenticated INVITEs counted, want 1", got)
	}
}

// inviteVia sends an INVITE for callee through the proxy at addr.
func (h *harness) inviteVia(t testing.TB, addr, callee, from string) *gosip.Response {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	var to gosip.Uri
	if err := gosip.ParseUri(fmt.Sprintf("sip:%s@%s:%s", callee, host, port), &to); err != nil {
		t.Fatal(err)
	}
	req := gosip.NewRequest(gosip.INVITE, to)
	fh := &gosip.FromHeader{Address: gosip.Uri{Scheme: "sip", User: from, Host: "pbx.acme.test"}, Params: gosip.NewParams()}
	fh.Params.Add("tag", gosip.GenerateTagN(8))
	req.AppendHeader(fh)
	req.AppendHeader(gosip.NewHeader("Content-Length", "0"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := h.client.Do(ctx, req)
	if err != nil {
		t.Fatalf("INVITE through kamailio: %v", err)
	}
	return res
}

// BenchmarkKamailioAddedLatency measures what asking heed adds to a call's
// setup: the same INVITEs, alternately, through Kamailio asking the gate
// (over the embedded store, each attempt recorded with its fsync) and
// through Kamailio routing straight to the carrier. It reports the p50
// and p99 of each path and what heed adds to each. On a busy machine the
// p99s are the machine's; run it with -count and compare medians.
//
//	go test -run '^$' -bench KamailioAddedLatency -benchtime 2000x ./sip
func BenchmarkKamailioAddedLatency(b *testing.B) {
	carrier := startCarrier(b)
	tr := acmeTrunk()
	tr.Carrier = carrier.addr
	st, err := bolt.Open(filepath.Join(b.TempDir(), "ledger.db"))
	if err != nil {
		b.Fatal(err)
	}
	// The gate's own share of what heed adds: deciding, recording (the
	// commit's fsyncs) and sending the answer.
	var decided []time.Duration
	var timing atomic.Bool
	h := newHarnessWith(b, st, []Trunk{tr}, func(g Gate) Gate {
		return gateFunc(func(ctx context.Context, a notify.Attempt, answer func(notify.Verdict) error) (notify.Verdict, error) {
			start := time.Now()
			v, err := g.Call(ctx, a, answer)
			if timing.Load() {
				decided = append(decided, time.Since(start))
			}
			return v, err
		})
	}, nil)
	gated, direct := startKamailio(b, "127.0.0.1", h.addrs["udp"], carrier.addr)
	const book = 5000
	for i := range book {
		h.customer(b, fmt.Sprintf("+86139300%05d", i))
	}
	call := func(addr string, i int) time.Duration {
		start := time.Now()
		res := h.inviteVia(b, addr, fmt.Sprintf("139300%05d", i%book), line)
		if res.StatusCode != 486 {
			b.Fatalf("call %d: %d %s, want the carrier's 486", i, res.StatusCode, res.Reason)
		}
		return time.Since(start)
	}
	// Warm both paths (connections, the projection's first reads).
	for i := range 50 {
		call(gated, i)
		call(direct, i)
	}
	var viaGate, straight []time.Duration
	timing.Store(true)
	b.ResetTimer()
	for i := range b.N {
		// Which path goes first alternates too, so that neither always
		// follows the other's burst of work (Kamailio's, the carrier's).
		if i%2 == 0 {
			viaGate = append(viaGate, call(gated, i+50))
			straight = append(straight, call(direct, i+50))
		} else {
			straight = append(straight, call(direct, i+50))
			viaGate = append(viaGate, call(gated, i+50))
		}
	}
	b.StopTimer()
	q := func(d []time.Duration, p int) float64 {
		slices.Sort(d)
		return float64(d[min(len(d)-1, len(d)*p/100)].Microseconds()) / 1000
	}
	b.ReportMetric(q(viaGate, 50), "gated_p50_ms")
	b.ReportMetric(q(viaGate, 99), "gated_p99_ms")
	b.ReportMetric(q(straight, 50), "direct_p50_ms")
	b.ReportMetric(q(straight, 99), "direct_p99_ms")
	timing.Store(false)
	b.ReportMetric(q(decided, 50), "gate_p50_ms")
	b.ReportMetric(q(decided, 99), "gate_p99_ms")
	b.ReportMetric(q(viaGate, 50)-q(straight, 50), "added_p50_ms")
	b.ReportMetric(q(viaGate, 99)-q(straight, 99), "added_p99_ms")
}

// gateFunc is a Gate written as a function.
type gateFunc func(ctx context.Context, a notify.Attempt, answer func(notify.Verdict) error) (notify.Verdict, error)

// Call implements Gate.
func (f gateFunc) Call(ctx context.Context, a notify.Attempt, answer func(notify.Verdict) error) (notify.Verdict, error) {
	return f(ctx, a, answer)
}

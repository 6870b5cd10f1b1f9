// Package e2e runs heed serve as a process, with an SMSC, and walks the
// whole story through its HTTP API: a business, a customer and an auditor.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/heed/heed/ledger/kurrent/fake"
	"github.com/heed/heed/ledger/merkle"
	"github.com/heed/heed/ledger/secrets"
	"github.com/heed/heed/projections"
)

var (
	buildOnce sync.Once
	heedBin   string
	buildErr  error
)

// heed builds the binary once per test run.
func heed(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "heed-e2e-bin")
		if err != nil {
			buildErr = err
			return
		}
		heedBin = filepath.Join(dir, "heed")
		out, err := exec.Command("go", "build", "-o", heedBin, "github.com/heed/heed/cmd/heed").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return heedBin
}

// lockedBuffer collects a process's output.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// server is a running heed serve.
type server struct {
	cmd    *exec.Cmd
	url    string
	admin  string
	stderr *lockedBuffer
	done   chan error
}

func rulesFile(t *testing.T) string {
	t.Helper()
	// Quiet hours depend on when the test runs; the story does not.
	cfg := projections.Default()
	cfg.Disabled = append(cfg.Disabled, projections.RuleQuietHours)
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "rules.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func startServe(t *testing.T, dataDir string, extra ...string) *server {
	t.Helper()
	args := append([]string{"serve", "--data", dataDir, "--listen", "127.0.0.1:0", "--rules", rulesFile(t),
		"--lines", line + "=acme", "--line", line}, extra...)
	cmd := exec.Command(heed(t), args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	s := &server{cmd: cmd, stderr: &lockedBuffer{}, done: make(chan error, 1)}
	cmd.Stderr = s.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		if t.Failed() {
			t.Logf("heed serve log:\n%s", s.stderr.String())
		}
	})
	keyc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if k, ok := strings.CutPrefix(sc.Text(), "admin key (shown once): "); ok {
				keyc <- k
			}
		}
	}()
	deadline := time.Now().Add(30 * time.Second)
	for s.url == "" && time.Now().Before(deadline) {
		for _, l := range strings.Split(s.stderr.String(), "\n") {
			var rec struct{ Msg, Addr string }
			if json.Unmarshal([]byte(l), &rec) == nil && rec.Msg == "listening" {
				s.url = "http://" + rec.Addr
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if s.url == "" {
		t.Fatalf("heed serve did not start:\n%s", s.stderr.String())
	}
	// The key is printed before the server listens; give the reader a moment.
	select {
	case s.admin = <-keyc:
	case <-time.After(time.Second):
	}
	return s
}

// stop sends SIGTERM and waits for a clean exit.
func (s *server) stop(t *testing.T) {
	t.Helper()
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-s.done:
		if err != nil {
			t.Fatalf("heed serve exited with %v\n%s", err, s.stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("heed serve did not stop within 20 s of SIGTERM")
	}
}

type reply struct {
	status int
	body   []byte
}

func (r reply) obj(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("not JSON (%v): %s", err, r.body)
	}
	return m
}

func (s *server) do(t *testing.T, method, path, token string, body any) reply {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.url+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return reply{res.StatusCode, b}
}

func (s *server) must(t *testing.T, status int, method, path, token string, body any) map[string]any {
	t.Helper()
	r := s.do(t, method, path, token, body)
	if r.status != status {
		t.Fatalf("%s %s: %d, want %d: %s", method, path, r.status, status, r.body)
	}
	if len(r.body) == 0 || r.body[0] != '{' {
		return nil
	}
	return r.obj(t)
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// smsc is the SMSC side the story talks to.
type smsc interface {
	args() []string
	// reply sends an MO message from the customer to a line.
	reply(t *testing.T, s *server, from, to, text string)
	// lastText returns the last text submitted to a number.
	lastText(t *testing.T, s *server, to string) string
}

const (
	line   = "10690001"
	number = "+8613912345678"
)

// renewalText is the flash template every story sends, as a reviewer
// approved it.
const renewalText = "您的{product}保单{policy:ref}将于{expires_on:date}到期，请及时续保。"

// approveRenewal has the business of biz propose the renewal template and a
// reviewer approve it: flash carries nothing else.
func approveRenewal(t *testing.T, s *server, biz, tenant string) {
	t.Helper()
	approveTemplate(t, s, biz, tenant, "renewal", renewalText)
}

// approveTemplate has the business of biz propose version 1 of template id
// and a reviewer approve it.
func approveTemplate(t *testing.T, s *server, biz, tenant, id, text string) {
	t.Helper()
	rev := s.must(t, 201, "POST", "/v1/keys", s.admin, map[string]any{"role": "reviewer"})["token"].(string)
	s.must(t, 201, "POST", "/v1/templates", biz, map[string]any{"id": id, "signature": "平安保险", "text": text})
	s.must(t, 201, "POST", "/v1/review/templates/"+tenant+"/"+id+"/versions/1/approve", rev, map[string]any{})
}

// renewal is a reminder body using the approved renewal template.
func renewal(id, contract string) map[string]any {
	b := map[string]any{"number": number, "relationship_ref": contract, "template_id": "renewal", "template_version": 1,
		"params": map[string]string{"product": "车险", "policy": contract, "expires_on": "2026-12-01"}}
	if id != "" {
		b["id"] = id
	}
	return b
}

// story is the end-to-end scenario.
func story(t *testing.T, sc smsc, extra ...string) {
	dir := t.TempDir()
	s := startServe(t, dir, append(sc.args(), extra...)...)
	if s.admin == "" {
		t.Fatal("no admin key printed on first start")
	}
	if r := s.do(t, "GET", "/readyz", "", nil); r.status != 200 {
		t.Fatalf("readyz: %d %s", r.status, r.body)
	}
	biz := s.must(t, 201, "POST", "/v1/keys", s.admin, map[string]any{"role": "business", "tenant": "acme"})["token"].(string)
	aud := s.must(t, 201, "POST", "/v1/keys", s.admin, map[string]any{"role": "auditor"})["token"].(string)

	// A business records a relationship and requests a reminder.
	rel := s.must(t, 201, "POST", "/v1/relationships", biz, map[string]any{"number": number, "contract_ref": "POL-1", "product": "car insurance"})
	// Free text is refused; the business has its template reviewed.
	s.must(t, 422, "POST", "/v1/reminders", biz, map[string]any{"number": number, "relationship_ref": "NO-SUCH-CONTRACT",
		"text": "双十一大促！全场车险五折，回复1立即抢购"})
	approveRenewal(t, s, biz, "acme")
	bogus := s.must(t, 201, "POST", "/v1/reminders", biz, renewal("bogus-1", "NO-SUCH-CONTRACT"))
	if bogus["state"] != "denied" || !strings.Contains(fmt.Sprint(bogus["reasons"]), "relationship-active") {
		t.Fatalf("reminder about a contract the business does not have: %v", bogus)
	}
	r1 := s.must(t, 201, "POST", "/v1/reminders", biz, renewal("renewal-1", "POL-1"))
	if r1["state"] != "submitted" {
		t.Fatalf("first reminder: %v", r1)
	}
	// It is delivered and the receipt recorded.
	eventually(t, "the delivery receipt", func() bool {
		return s.must(t, 200, "GET", "/v1/reminders/renewal-1", biz, nil)["state"] == "delivered"
	})
	const sent = "【平安保险】您的车险保单POL-1将于2026-12-01到期，请及时续保。"
	if got := sc.lastText(t, s, number); got != sent {
		t.Fatalf("SMSC got %q", got)
	}

	// The customer replies TD.
	sc.reply(t, s, number, line, "TD")
	eventually(t, "the opt-out", func() bool {
		h := s.must(t, 200, "GET", "/v1/subjects/%2B8613912345678/history", biz, nil)
		return strings.Contains(fmt.Sprint(h["events"]), "ConsentWithdrawn")
	})

	// The next reminder is denied.
	r2 := s.must(t, 201, "POST", "/v1/reminders", biz, renewal("renewal-2", "POL-1"))
	if r2["state"] != "denied" || !strings.Contains(fmt.Sprint(r2["reasons"]), "withdrawal") {
		t.Fatalf("second reminder: %v", r2)
	}

	// The customer signs in and sees both, with reasons.
	s.must(t, 202, "POST", "/v1/me/challenge", "", map[string]any{"number": number})
	var code string
	eventually(t, "the verification code", func() bool {
		f := strings.Fields(sc.lastText(t, s, number))
		for _, w := range f {
			if len(w) == 6 && strings.Trim(w, "0123456789") == "" {
				code = w
			}
		}
		return code != ""
	})
	tok := s.must(t, 200, "POST", "/v1/me/session", "", map[string]any{"number": number, "code": code})["token"].(string)
	cs := s.must(t, 200, "GET", "/v1/me/contacts", tok, nil)["contacts"].([]any)
	byID := map[string]map[string]any{}
	for _, c := range cs {
		m := c.(map[string]any)
		byID[m["id"].(string)] = m
	}
	c1, c2 := byID["renewal-1"], byID["renewal-2"]
	if c1 == nil || c2 == nil {
		t.Fatalf("customer sees %v", cs)
	}
	basis := fmt.Sprint(c1["basis"])
	if c1["state"] != "delivered" || c1["allowed"] != true || !strings.Contains(basis, "POL-1") || !strings.Contains(basis, rel["id"].(string)) {
		t.Fatalf("delivered reminder as the customer sees it: %v", c1)
	}
	if c1["text"] != sent || c1["text_verified"] != true {
		t.Fatalf("the customer sees the text %q (verified %v), was sent %q", c1["text"], c1["text_verified"], sent)
	}
	if c2["state"] != "denied" || c2["allowed"] != false || !strings.Contains(fmt.Sprint(c2["reasons"]), "withdrawal") {
		t.Fatalf("denied reminder as the customer sees it: %v", c2)
	}

	// The auditor's bundle verifies, and so does an inclusion proof.
	cp := s.must(t, 200, "GET", "/v1/audit/checkpoint", aud, nil)
	size := int64(cp["size"].(float64))
	incl := s.must(t, 200, "GET", fmt.Sprintf("/v1/audit/proofs/inclusion?position=1&size=%d", size), aud, nil)
	checkInclusion(t, cp, incl)
	checkConsistency(t, cp, incl, s.must(t, 200, "GET", fmt.Sprintf("/v1/audit/proofs/consistency?old=1&new=%d", size), aud, nil))
	res, err := bundleTo(s, aud, filepath.Join(dir, "bundle"))
	if err != nil {
		t.Fatal(err)
	}
	// Verified against the ledger's own public key, not the one the
	// bundle carries.
	skey, err := os.ReadFile(filepath.Join(dir, secrets.SigningFile))
	if err != nil {
		t.Fatal(err)
	}
	vkey, err := secrets.VerifierKey(strings.TrimSpace(string(skey)))
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(heed(t), "verify", "--key", vkey, res).CombinedOutput(); err != nil {
		t.Fatalf("heed verify: %v\n%s", err, out)
	}

	// Metrics count what happened, and carry no number.
	mres, err := http.Get(s.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	mb, _ := io.ReadAll(mres.Body)
	mres.Body.Close()
	metrics := string(mb)
	for _, want := range []string{`heed_reminders_total{state="delivered"} 1`, `heed_reminders_total{state="denied"} 2`,
		`heed_decisions_total{outcome="denied"}`, `heed_http_request_seconds_count{code="201",route="POST /v1/reminders"}`, `heed_decision_reasons_total{effect="deny",rule="withdrawal"}`, "heed_smpp_submits_total{", "heed_smpp_receipts_total{"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(metrics, "13912345678") {
		t.Error("a metric carries the number")
	}

	s.stop(t)
	// No phone number in the log, in any form.
	for _, form := range []string{number, strings.TrimPrefix(number, "+"), "13912345678"} {
		if strings.Contains(s.stderr.String(), form) {
			t.Fatalf("the log contains the number")
		}
	}
}

func checkInclusion(t *testing.T, cp, incl map[string]any) {
	t.Helper()
	note := cp["note"].(string)
	body, _, ok := strings.Cut(note, "\n\n")
	if !ok {
		t.Fatalf("checkpoint note without signature: %q", note)
	}
	c, err := merkle.ParseBody(body + "\n")
	if err != nil {
		t.Fatal(err)
	}
	proof := tlog.RecordProof(proofHashes(t, incl["proof"]))
	if err := merkle.CheckInclusion(proof, c, 1, []byte(incl["leaf"].(string))); err != nil {
		t.Fatalf("inclusion proof does not verify: %v", err)
	}
}

// proofHashes reads a proof's hashes from its JSON form.
func proofHashes(t *testing.T, list any) []tlog.Hash {
	t.Helper()
	var out []tlog.Hash
	for _, h := range list.([]any) {
		var hash tlog.Hash
		b, err := jsonBytes(h)
		if err != nil || len(b) != len(hash) {
			t.Fatalf("bad proof hash %v", h)
		}
		copy(hash[:], b)
		out = append(out, hash)
	}
	return out
}

// checkConsistency checks that the tree of the checkpoint extends the tree
// of the first event alone (whose root is that event's record hash).
func checkConsistency(t *testing.T, cp, incl, cons map[string]any) {
	t.Helper()
	proof := tlog.TreeProof(proofHashes(t, cons["proof"]))
	var root tlog.Hash
	rb, err := jsonBytes(cp["root"])
	if err != nil || len(rb) != len(root) {
		t.Fatalf("bad root %v", cp["root"])
	}
	copy(root[:], rb)
	first := tlog.RecordHash([]byte(incl["leaf"].(string)))
	if err := tlog.CheckTree(proof, int64(cp["size"].(float64)), root, 1, first); err != nil {
		t.Fatalf("consistency proof does not verify: %v", err)
	}
}

func jsonBytes(v any) ([]byte, error) {
	var b []byte
	raw, _ := json.Marshal(v)
	err := json.Unmarshal(raw, &b)
	return b, err
}

func bundleTo(s *server, token, path string) (string, error) {
	req, _ := http.NewRequestWithContext(context.Background(), "GET", s.url+"/v1/audit/bundle", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		b, _ := io.ReadAll(res.Body)
		return "", fmt.Errorf("bundle: %d %s", res.StatusCode, b)
	}
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	_, err = io.Copy(f, res.Body)
	return path, err
}

// builtin is the simulator heed serve starts in-process, reached through
// the development routes.
type builtin struct{}

func (builtin) args() []string { return []string{"--sim-dev"} }

func (builtin) reply(t *testing.T, s *server, from, to, text string) {
	s.must(t, 202, "POST", "/dev/sim/mo", s.admin, map[string]any{"From": from, "To": to, "Text": text})
}

func (builtin) lastText(t *testing.T, s *server, to string) string {
	r := s.do(t, "GET", "/dev/sim/outbox?to="+strings.TrimPrefix(to, "+"), s.admin, nil)
	var msgs []struct{ Text string }
	if err := json.Unmarshal(r.body, &msgs); err != nil || len(msgs) == 0 {
		return ""
	}
	return msgs[len(msgs)-1].Text
}

func TestStoryWithBuiltinSimulator(t *testing.T) {
	story(t, builtin{})
}

// TestStoryOnKurrentDB runs the story with the log in KurrentDB (the
// in-process fake node of ledger/kurrent/fake, reached over gRPC).
func TestStoryOnKurrentDB(t *testing.T) {
	srv, err := fake.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	story(t, builtin{}, "--store", srv.URL())
	if srv.Events() == 0 {
		t.Fatal("nothing was written to KurrentDB")
	}
}

// nodeSMSC is node-smpp, an independent SMPP implementation, as the SMSC.
type nodeSMSC struct {
	port    int
	stdin   io.Writer
	mu      sync.Mutex
	texts   map[string]string
	submits map[string]int
}

func (n *nodeSMSC) args() []string { return []string{"--smsc", fmt.Sprintf("127.0.0.1:%d", n.port)} }

// configArgs names the SMSC in a config file instead of flags.
func (n *nodeSMSC) configArgs(t *testing.T) []string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "heed.json")
	cfg := fmt.Sprintf(`{"smsc": {"addr": "127.0.0.1:%d", "system_id": "heed", "window": 5}, "keywords": ["TD", "退订", "STOP"]}`, n.port)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return []string{"--config", path}
}

// viaConfig is the node SMSC configured through --config.
type viaConfig struct {
	*nodeSMSC
	t *testing.T
}

func (v viaConfig) args() []string { return v.configArgs(v.t) }

func (n *nodeSMSC) reply(t *testing.T, _ *server, from, to, text string) {
	b, _ := json.Marshal(map[string]string{"from": strings.TrimPrefix(from, "+"), "to": to, "text": text})
	if _, err := n.stdin.Write(append(b, '\n')); err != nil {
		t.Fatal(err)
	}
}

func (n *nodeSMSC) lastText(_ *testing.T, _ *server, to string) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.texts[strings.TrimPrefix(to, "+")]
}

// startNode runs node-smpp as the SMSC.
func startNode(t *testing.T) *nodeSMSC {
	t.Helper()
	peers := os.Getenv("HEED_PEERS")
	if peers == "" {
		peers, _ = filepath.Abs("../../testdata/peers")
	}
	if _, err := os.Stat(filepath.Join(peers, "node_modules", "smpp")); err != nil {
		t.Fatal("node-smpp is not installed: run make deps")
	}
	cmd := exec.Command("node", "testdata/smsc.js")
	cmd.Env = append(os.Environ(), "HEED_PEERS="+peers)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	n := &nodeSMSC{stdin: stdin, texts: map[string]string{}, submits: map[string]int{}}
	ready := make(chan int, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var ev struct {
				Event, To, Text string
				Port            int
			}
			if json.Unmarshal(sc.Bytes(), &ev) != nil {
				continue
			}
			switch ev.Event {
			case "listening":
				ready <- ev.Port
			case "submit":
				n.mu.Lock()
				n.texts[ev.To] = ev.Text
				n.submits[ev.To]++
				n.mu.Unlock()
			}
		}
	}()
	select {
	case n.port = <-ready:
	case <-time.After(15 * time.Second):
		t.Fatal("node-smpp SMSC did not start")
	}
	return n
}

func (n *nodeSMSC) send(t *testing.T, v any) {
	t.Helper()
	b, _ := json.Marshal(v)
	if _, err := n.stdin.Write(append(b, '\n')); err != nil {
		t.Fatal(err)
	}
}

func (n *nodeSMSC) count(to string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.submits[strings.TrimPrefix(to, "+")]
}

func TestStoryWithNodeSMPP(t *testing.T) {
	story(t, viaConfig{startNode(t), t})
}

// TestCrashMidSubmitIsNeverResubmitted is invariant 3 across a kill -9:
// the SMSC takes the submit but never answers, the server dies, and after
// the restart the reminder is outcome-unknown and was submitted once.
func TestCrashMidSubmitIsNeverResubmitted(t *testing.T) {
	n := startNode(t)
	dir := t.TempDir()
	s := startServe(t, dir, n.args()...)
	biz := s.must(t, 201, "POST", "/v1/keys", s.admin, map[string]any{"role": "business", "tenant": "acme"})["token"].(string)
	s.must(t, 201, "POST", "/v1/relationships", biz, map[string]any{"number": number, "contract_ref": "POL-9"})
	approveRenewal(t, s, biz, "acme")
	n.send(t, map[string]bool{"hold": true})
	req, _ := http.NewRequest("POST", s.url+"/v1/reminders", strings.NewReader(`{"id":"crash-1","number":"`+number+`","relationship_ref":"POL-9","template_id":"renewal","template_version":1,"params":{"product":"车险","policy":"POL-9","expires_on":"2026-12-01"}}`))
	req.Header.Set("Authorization", "Bearer "+biz)
	req.Header.Set("Content-Type", "application/json")
	go func() {
		// This request never gets its answer: the server is killed under it.
		if res, err := http.DefaultClient.Do(req); err == nil {
			res.Body.Close()
		}
	}()
	eventually(t, "the submit to reach the SMSC", func() bool { return n.count(number) == 1 })
	_ = s.cmd.Process.Kill()
	<-s.done
	n.send(t, map[string]bool{"hold": false})

	s2 := startServe(t, dir, n.args()...)
	r := s2.must(t, 200, "GET", "/v1/reminders/crash-1", biz, nil)
	if r["state"] != "outcome_unknown" {
		t.Fatalf("after the restart the reminder is %v", r["state"])
	}
	// A retry of the same reminder is answered from the log, not resent.
	again := s2.must(t, 200, "POST", "/v1/reminders", biz, renewal("crash-1", "POL-9"))
	if again["state"] != "outcome_unknown" {
		t.Fatalf("retry answered %v", again["state"])
	}
	time.Sleep(200 * time.Millisecond)
	if c := n.count(number); c != 1 {
		t.Fatalf("the SMSC got %d submits for the reminder, want 1", c)
	}
	s2.stop(t)
}

// TestGracefulShutdownDrainsInFlight: SIGTERM while a reminder waits for
// the SMSC; the request still gets its answer, then the server unbinds and
// exits cleanly.
func TestGracefulShutdownDrainsInFlight(t *testing.T) {
	n := startNode(t)
	s := startServe(t, t.TempDir(), n.args()...)
	biz := s.must(t, 201, "POST", "/v1/keys", s.admin, map[string]any{"role": "business", "tenant": "acme"})["token"].(string)
	s.must(t, 201, "POST", "/v1/relationships", biz, map[string]any{"number": number, "contract_ref": "POL-3"})
	approveRenewal(t, s, biz, "acme")
	n.send(t, map[string]bool{"hold": true})
	answer := make(chan reply, 1)
	go func() {
		answer <- s.do(t, "POST", "/v1/reminders", biz, renewal("drain-1", "POL-3"))
	}()
	eventually(t, "the submit to reach the SMSC", func() bool { return n.count(number) == 1 })
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	time.Sleep(300 * time.Millisecond)
	if r, err := http.Get(s.url + "/healthz"); err == nil {
		r.Body.Close()
		t.Fatal("the server still takes new requests while draining")
	}
	// The SMSC answers late; the draining server still records it.
	n.send(t, map[string]bool{"hold": false})
	select {
	case r := <-answer:
		if r.status != 201 || !strings.Contains(string(r.body), `"state":"submitted"`) {
			t.Fatalf("in-flight reminder answered %d: %s", r.status, r.body)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the in-flight request was not answered")
	}
	select {
	case err := <-s.done:
		if err != nil {
			t.Fatalf("exit: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no exit")
	}
}

// TestKeysCreate: keys made offline work once the server starts, and the
// command refuses to run beside a running server.
func TestKeysCreate(t *testing.T) {
	dir := t.TempDir()
	out, err := exec.Command(heed(t), "keys", "create", "--data", dir, "--role", "business", "--tenant", "acme").Output()
	if err != nil {
		t.Fatalf("keys create: %v", err)
	}
	tok := strings.TrimSpace(string(out))
	if !strings.HasPrefix(tok, "heed_") {
		t.Fatalf("printed %q", out)
	}
	if err := exec.Command(heed(t), "keys", "create", "--data", dir, "--role", "business").Run(); err == nil {
		t.Fatal("a business key without a tenant was created")
	}
	s := startServe(t, dir)
	if s.admin != "" {
		t.Fatal("an admin key was created although keys exist")
	}
	s.must(t, 201, "POST", "/v1/complaints", tok, map[string]any{"number": number, "source": "customer"})
	if err := exec.Command(heed(t), "keys", "create", "--data", dir, "--role", "auditor").Run(); err == nil {
		t.Fatal("keys create ran while the server holds the key file")
	}
	s.stop(t)
}

// TestTwoSMSCsRouteByLine: each tenant's line goes out through the SMSC
// configured for it.
func TestTwoSMSCsRouteByLine(t *testing.T) {
	a, b := startNode(t), startNode(t)
	cfg := fmt.Sprintf(`{"smscs": [{"name": "a", "addr": "127.0.0.1:%d", "lines": ["10690001"]}, {"name": "b", "addr": "127.0.0.1:%d", "lines": ["10690002"]}],
		"lines": {"10690002": "beta"}}`, a.port, b.port)
	path := filepath.Join(t.TempDir(), "heed.json")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServe(t, t.TempDir(), "--config", path)
	for _, c := range []struct {
		tenant, num string
		via         *nodeSMSC
	}{{"acme", "+8613900000001", a}, {"beta", "+8613900000002", b}} {
		key := s.must(t, 201, "POST", "/v1/keys", s.admin, map[string]any{"role": "business", "tenant": c.tenant})["token"].(string)
		s.must(t, 201, "POST", "/v1/relationships", key, map[string]any{"number": c.num, "contract_ref": "P"})
		approveRenewal(t, s, key, c.tenant)
		body := renewal("", "P")
		body["number"] = c.num
		r := s.must(t, 201, "POST", "/v1/reminders", key, body)
		if r["state"] != "submitted" {
			t.Fatalf("%s: %v", c.tenant, r)
		}
		eventually(t, c.tenant+"'s reminder at its SMSC", func() bool { return c.via.count(c.num) == 1 })
	}
	if a.count("+8613900000002") != 0 || b.count("+8613900000001") != 0 {
		t.Error("a reminder went through the other tenant's SMSC")
	}
	s.stop(t)
}

// TestShutdownUnbindsBeforeSimulatorStops: on SIGTERM, heed unbinds from
// the built-in simulator while it still runs, so the unbind is answered
// and counted, and no dropped link is reported.
func TestShutdownUnbindsBeforeSimulatorStops(t *testing.T) {
	s := startServe(t, t.TempDir())
	biz := s.must(t, 201, "POST", "/v1/keys", s.admin, map[string]any{"role": "business", "tenant": "acme"})["token"].(string)
	s.must(t, 201, "POST", "/v1/relationships", biz, map[string]any{"number": number, "contract_ref": "POL-9"})
	approveRenewal(t, s, biz, "acme")
	s.must(t, 201, "POST", "/v1/reminders", biz, renewal("bye-1", "POL-9"))
	eventually(t, "the receipt", func() bool {
		return s.must(t, 200, "GET", "/v1/reminders/bye-1", biz, nil)["state"] == "delivered"
	})
	s.stop(t)
	type rec struct {
		Level, Msg       string
		Binds, Unbinds   int
		Reason, SystemID string
	}
	var order []string
	var sim *rec
	for _, l := range strings.Split(s.stderr.String(), "\n") {
		var r rec
		if json.Unmarshal([]byte(l), &r) != nil {
			continue
		}
		if r.Level == "WARN" || r.Level == "ERROR" {
			t.Errorf("shutdown logged %s %q %s", r.Level, r.Msg, r.Reason)
		}
		switch r.Msg {
		case "smpp unbound", "simulator stopped", "stopped":
			order = append(order, r.Msg)
		}
		if r.Msg == "simulator stopped" {
			sim = &r
		}
	}
	if got := strings.Join(order, ", "); got != "smpp unbound, simulator stopped, stopped" {
		t.Fatalf("shutdown order: %s", got)
	}
	if sim.Binds != 1 || sim.Unbinds != 1 {
		t.Fatalf("simulator saw %d binds and %d unbinds, want 1 and 1", sim.Binds, sim.Unbinds)
	}
}

package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heed/heed/ledger/kurrent/fake"
	"github.com/heed/heed/projections"
	"github.com/heed/heed/smpp/sim"
	"github.com/heed/heed/smpp/text"
)

// burstFreeRules is the story's rules without the region burst limit, so
// that hundreds of reminders in a minute are all allowed.
func burstFreeRules(t *testing.T) string {
	t.Helper()
	cfg := projections.Default()
	cfg.Disabled = append(cfg.Disabled, projections.RuleQuietHours, projections.RuleRegionBurst)
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

// submits counts, at the SMSC, the submits of each reminder (its id is in
// its text), across restarts of the SMSC.
type submits struct {
	mu   sync.Mutex
	byID map[string]int
}

var reminderTag = regexp.MustCompile(`rid=([a-z0-9-]+)`)

func (s *submits) add(sm sim.Submit) {
	p := sm.PDU
	body := p.ShortMessage
	if p.ESMClass&0x40 != 0 && len(body) > 0 && int(body[0])+1 <= len(body) {
		body = body[int(body[0])+1:]
	}
	m := reminderTag.FindStringSubmatch(text.Decode(p.DataCoding, body))
	if m == nil {
		return
	}
	s.mu.Lock()
	s.byID[m[1]]++
	s.mu.Unlock()
}

func (s *submits) of(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byID[id]
}

// get returns the status and body of a plain GET.
func (s *server) get(t *testing.T, path string) (int, string) {
	t.Helper()
	res, err := http.Get(s.url + path)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// metric returns the value of one series of /metrics, or -1.
func (s *server) metric(t *testing.T, series string) float64 {
	t.Helper()
	_, body := s.get(t, "/metrics")
	for _, l := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	return -1
}

// answer is one POST /v1/reminders as the business saw it.
type answer struct {
	id, number, state string
	took              time.Duration
	at                time.Time
}

// TestSMSCDownUnderLoad: the SMSC goes away for 60 s while businesses keep
// sending reminders. Readiness fails once the grace is over, naming the
// SMSC; the metrics say unbound, count the failed binds and show nothing
// in flight; every reminder is answered at once, failed with status
// smsc_unavailable and never submitted. When the SMSC is back, readiness
// recovers, reminders go out, and no reminder reached the SMSC twice.
func TestSMSCDownUnderLoad(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	counts := &submits{byID: map[string]int{}}
	smsc, err := sim.Start(addr, sim.Config{ReceiptDelay: 10 * time.Millisecond, OnSubmit: counts.add})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { smsc.Close() }()

	const grace = 10 * time.Second
	s := startServe(t, t.TempDir(), "--smsc", addr, "--smsc-grace", grace.String(), "--rules", burstFreeRules(t))
	biz := s.must(t, 201, "POST", "/v1/keys", s.admin, map[string]any{"role": "business", "tenant": "acme"})["token"].(string)
	// The reminder id goes out as a parameter, so the SMSC can count
	// each reminder's submits.
	approveTemplate(t, s, biz, "acme", "tagged", "您的保单即将到期 rid={rid:ref}")

	var mu sync.Mutex
	var answers []answer
	seq := 0
	remind := func() answer {
		mu.Lock()
		seq++
		i := seq
		mu.Unlock()
		num := fmt.Sprintf("+86138%08d", i)
		id := fmt.Sprintf("r-%d", i)
		a := answer{id: id, number: num}
		// Called from the load goroutines too: errors, not t.Fatal.
		if r := s.do(t, "POST", "/v1/relationships", biz, map[string]any{"number": num, "contract_ref": "POL-" + id, "product": "car insurance"}); r.status != 201 {
			t.Errorf("relationship: %d %s", r.status, r.body)
			return a
		}
		a.at = time.Now()
		r := s.do(t, "POST", "/v1/reminders", biz, map[string]any{"id": id, "number": num, "relationship_ref": "POL-" + id,
			"template_id": "tagged", "template_version": 1, "params": map[string]string{"rid": id}})
		a.took = time.Since(a.at)
		var body struct{ State string }
		if err := json.Unmarshal(r.body, &body); r.status != 201 || err != nil {
			t.Errorf("reminder %s: %d %s", id, r.status, r.body)
			return a
		}
		a.state = body.State
		mu.Lock()
		answers = append(answers, a)
		mu.Unlock()
		return a
	}

	eventually(t, "the first bind", func() bool { return s.metric(t, `heed_smpp_bound{smsc="smsc"}`) == 1 })
	for range 5 {
		if a := remind(); a.state != "submitted" {
			t.Fatalf("reminder while the SMSC is up: %+v", a)
		}
	}

	// The SMSC goes away; two businesses keep sending.
	smsc.Close()
	down := time.Now()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				case <-time.After(100 * time.Millisecond):
				}
				remind()
			}
		}()
	}
	eventually(t, "a failed bind", func() bool { return s.metric(t, `heed_smpp_bind_failures_total{smsc="smsc"}`) > 0 })
	failedBind := time.Now()
	if code, body := s.get(t, "/readyz"); code != 200 && time.Since(down) < grace {
		t.Errorf("readyz within the grace: %d %s", code, body)
	}
	time.Sleep(time.Until(down.Add(grace + 2*time.Second)))
	code, body := s.get(t, "/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "smsc: smsc unbound for") || !strings.Contains(body, "connection refused") {
		t.Errorf("readyz after the grace: %d %q, want 503 naming the SMSC and its bind error", code, body)
	}
	if code, _ := s.get(t, "/healthz"); code != 200 {
		t.Errorf("healthz while the SMSC is down: %d, want 200 (alive)", code)
	}
	for series, want := range map[string]func(float64) bool{
		`heed_smpp_bound{smsc="smsc"}`:               func(v float64) bool { return v == 0 },
		`heed_smpp_window_in_flight{smsc="smsc"}`:    func(v float64) bool { return v == 0 },
		`heed_smpp_bind_failures_total{smsc="smsc"}`: func(v float64) bool { return v >= 3 },
		`heed_smpp_reconnects_total{smsc="smsc"}`:    func(v float64) bool { return v >= 3 },
	} {
		if v := s.metric(t, series); !want(v) {
			t.Errorf("while down: %s = %v", series, v)
		}
	}
	time.Sleep(time.Until(down.Add(60 * time.Second)))
	close(stop)
	wg.Wait()
	mu.Lock()
	during := append([]answer(nil), answers[5:]...)
	mu.Unlock()
	if st := s.metric(t, `heed_smpp_bound{smsc="smsc"}`); st != 0 {
		t.Fatalf("bound = %v while the SMSC was away", st)
	}

	// Every reminder requested after a bind attempt had failed was
	// answered at once, failed, and the ledger says why.
	var tooks []time.Duration
	for _, a := range during {
		if a.at.Before(failedBind) {
			// Sent while the client had not yet tried to bind again: it
			// may have waited for the bind, or gone out with the link.
			if a.state != "failed" && a.state != "outcome_unknown" {
				t.Errorf("reminder %s right after the SMSC left: %s", a.id, a.state)
			}
			continue
		}
		tooks = append(tooks, a.took)
		if a.state != "failed" {
			t.Errorf("reminder %s while the SMSC was down: %s, want failed", a.id, a.state)
		}
	}
	if len(tooks) < 100 {
		t.Fatalf("only %d reminders while the SMSC was down", len(tooks))
	}
	sort.Slice(tooks, func(i, j int) bool { return tooks[i] < tooks[j] })
	median, slowest := tooks[len(tooks)/2], tooks[len(tooks)-1]
	t.Logf("%d reminders while down: median answer %v, slowest %v", len(tooks), median, slowest)
	if median > 200*time.Millisecond || slowest > 5*time.Second {
		t.Errorf("answers while down: median %v, slowest %v; want at once", median, slowest)
	}
	for _, a := range []answer{during[len(during)/2], during[len(during)-1]} {
		h := s.must(t, 200, "GET", "/v1/subjects/"+strings.Replace(a.number, "+", "%2B", 1)+"/history", biz, nil)
		if got := fmt.Sprint(h["events"]); !strings.Contains(got, "ReminderFailed") || !strings.Contains(got, "status:smsc_unavailable") {
			t.Errorf("history of %s: %s, want ReminderFailed with status smsc_unavailable", a.id, got)
		}
	}

	// The SMSC comes back on the same address.
	smsc, err = sim.Start(addr, sim.Config{ReceiptDelay: 10 * time.Millisecond, OnSubmit: counts.add})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(45 * time.Second) // the client's backoff is at most 30 s
	for {
		code, body := s.get(t, "/readyz")
		if code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("readyz 45 s after the SMSC came back: %d %s", code, body)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if v := s.metric(t, `heed_smpp_bound{smsc="smsc"}`); v != 1 {
		t.Errorf("bound = %v after the SMSC came back", v)
	}
	for range 5 {
		a := remind()
		if a.state != "submitted" {
			t.Errorf("reminder after the SMSC came back: %+v", a)
		}
		eventually(t, "its receipt", func() bool {
			return s.must(t, 200, "GET", "/v1/reminders/"+a.id, biz, nil)["state"] == "delivered"
		})
	}

	// At most one submit per reminder: none for the failed, one for the
	// submitted.
	mu.Lock()
	defer mu.Unlock()
	for _, a := range answers {
		n := counts.of(a.id)
		switch {
		case n > 1:
			t.Errorf("reminder %s reached the SMSC %d times", a.id, n)
		case a.state == "failed" && n != 0:
			t.Errorf("reminder %s answered failed but reached the SMSC", a.id)
		case a.state == "submitted" && n != 1:
			t.Errorf("reminder %s answered submitted but reached the SMSC %d times", a.id, n)
		}
	}
}

// TestDeadSealerStopsServe: two instances with different signing keys
// pointed at one KurrentDB ledger. The second one's sealer finds the
// first one's checkpoints signed for another ledger and stops; serve does
// not stay half-alive but stops with the sealer's error and exit code 1.
func TestDeadSealerStopsServe(t *testing.T) {
	kdb, err := fake.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer kdb.Close()
	a := startServe(t, t.TempDir(), "--store", kdb.URL())
	biz := a.must(t, 201, "POST", "/v1/keys", a.admin, map[string]any{"role": "business", "tenant": "acme"})["token"].(string)
	a.must(t, 201, "POST", "/v1/relationships", biz, map[string]any{"number": number, "contract_ref": "POL-1", "product": "car insurance"})
	aud := a.must(t, 201, "POST", "/v1/keys", a.admin, map[string]any{"role": "auditor"})["token"].(string)
	// The first instance holds the lease and has published a checkpoint.
	a.must(t, 200, "GET", "/v1/audit/checkpoint", aud, nil)

	b := startServe(t, t.TempDir(), "--store", kdb.URL())
	select {
	case err := <-b.done:
		code := -1
		if ee, ok := err.(interface{ ExitCode() int }); ok {
			code = ee.ExitCode()
		}
		log := b.stderr.String()
		if code != 1 {
			t.Errorf("exit %v, want 1", err)
		}
		for _, want := range []string{`"msg":"essential task died; shutting down","task":"sealer"`, `"msg":"stopping: draining requests"`,
			`"msg":"stopped"`, "heed serve: sealer stopped: kurrent: published checkpoint is for another ledger"} {
			if !strings.Contains(log, want) {
				t.Errorf("log lacks %q:\n%s", want, log)
			}
		}
	case <-time.After(30 * time.Second):
		code, body := b.get(t, "/readyz")
		t.Fatalf("second instance still running 30 s later; readyz %d %s", code, body)
	}
	// The first instance is unaffected.
	if code, body := a.get(t, "/readyz"); code != 200 {
		t.Errorf("first instance: readyz %d %s", code, body)
	}
}

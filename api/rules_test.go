package api

import (
	"bytes"
	"context"
	"errors"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/heed/heed/api/auth"
	"github.com/heed/heed/ledger"
	"github.com/heed/heed/ledger/ledgertest"
	"github.com/heed/heed/ledger/mem"
	"github.com/heed/heed/ledger/pii"
	"github.com/heed/heed/notify"
	"github.com/heed/heed/projections"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// rulesHarness is a harness whose decisions come from the real
// projections following the log, with lines 10690001 (tenanta) and
// 10690002 (tenantb) configured, a regulator key and a tenanta key that
// may backfill. Quiet hours are off: the clock is the real one.
type rulesHarness struct {
	*harness
	regulator, backfiller string
	now                   time.Time
	reg                   *prometheus.Registry
}

// counter reads one sample of the harness's /metrics.
func (h *rulesHarness) counter(sample string) float64 {
	h.t.Helper()
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(h.reg, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, l := range strings.Split(rec.Body.String(), "\n") {
		if v, ok := strings.CutPrefix(l, sample+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				h.t.Fatal(err)
			}
			return f
		}
	}
	h.t.Fatalf("no sample %s", sample)
	return 0
}

func newRulesHarness(t *testing.T, store ledger.Store, rules *projections.Config) *rulesHarness {
	t.Helper()
	if rules == nil {
		rules = projections.Default()
	}
	rules.Disabled = append(rules.Disabled, projections.RuleQuietHours)
	if err := rules.Validate(); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	runner, err := projections.NewRunner(store, rules, projections.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runner.Run(ctx) }()
	keys, err := auth.Open(filepath.Join(t.TempDir(), "apikeys.db"))
	if err != nil {
		t.Fatal(err)
	}
	dataKeys, err := pii.OpenKeys(filepath.Join(t.TempDir(), "keys.db"), bytes.Repeat([]byte{9}, 32))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dataKeys.Close() })
	reg := prometheus.NewRegistry()
	metrics := NewMetrics(reg)
	srv := New(Config{Store: store, Keys: keys, Pseudonyms: hmacPseudonyms{}, Decider: notify.Projections(runner), PII: dataKeys, Metrics: metrics,
		Lines: map[string]string{"10690001": "tenanta", "10690002": "tenantb"}, LineStates: runner})
	h := &harness{t: t, keys: keys, api: srv, srv: httptest.NewServer(srv)}
	if m, ok := store.(*mem.Store); ok {
		h.store = m
	}
	t.Cleanup(func() {
		h.srv.Close()
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Error(err)
		}
		keys.Close()
	})
	mk := func(role, tenant string) string {
		tok, _, err := keys.Create(role, tenant)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	h.admin, h.a, h.b = mk(auth.RoleAdmin, ""), mk(auth.RoleBusiness, "tenanta"), mk(auth.RoleBusiness, "tenantb")
	h.auditor = mk(auth.RoleAuditor, "")
	rh := &rulesHarness{harness: h, regulator: mk(auth.RoleRegulator, ""), now: now, reg: reg}
	tok, _, err := keys.Issue(auth.Spec{Role: auth.RoleBusiness, Tenant: "tenanta", Backfill: true})
	if err != nil {
		t.Fatal(err)
	}
	rh.backfiller = tok
	return rh
}

func (h *rulesHarness) logHead() uint64 {
	h.t.Helper()
	n, err := h.api.cfg.Store.Head(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	return n
}

// noNumber fails when a problem body echoes the number.
func noNumber(t *testing.T, r resp, number string) {
	t.Helper()
	if strings.Contains(string(r.body), number) || strings.Contains(string(r.body), strings.TrimPrefix(number, "+86")) {
		t.Errorf("answer echoes the number: %s", r.body)
	}
}

// TestOccurredAtIsBounded: a write's occurred_at may be at most a few
// minutes ahead of heed's clock and at most 30 days back, unless a key
// allowed to backfill asks to; the problem names the field.
func TestOccurredAtIsBounded(t *testing.T) {
	h := newRulesHarness(t, mem.New(), nil)
	contact := func(at time.Time, backfill bool) map[string]any {
		b := map[string]any{"number": numA, "line": "10690001", "channel": "call", "purpose": "service", "occurred_at": at.Format(time.RFC3339Nano)}
		if backfill {
			b["backfill"] = true
		}
		return b
	}
	for _, tc := range []struct {
		name     string
		key      string
		body     map[string]any
		status   int
		location string
	}{
		{"dated 9999-12-31", h.a, contact(time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC), false), 422, "body.occurred_at"},
		{"ten minutes ahead", h.a, contact(h.now.Add(10*time.Minute), false), 422, "body.occurred_at"},
		{"four minutes ahead", h.a, contact(h.now.Add(4*time.Minute), false), 201, ""},
		{"29 days back", h.a, contact(h.now.Add(-29*24*time.Hour), false), 201, ""},
		{"31 days back", h.a, contact(h.now.Add(-31*24*time.Hour), false), 422, "body.occurred_at"},
		{"31 days back, backfill by a plain key", h.a, contact(h.now.Add(-31*24*time.Hour), true), 403, ""},
		{"31 days back, backfill by a backfill key", h.backfiller, contact(h.now.Add(-31*24*time.Hour), true), 201, ""},
		{"backfill dated ahead", h.backfiller, contact(h.now.Add(time.Hour), true), 422, "body.occurred_at"},
		{"a consent dated 9999", h.a, map[string]any{"number": numA, "purposes": []string{"service"}, "channels": []string{"sms"}, "source": "api", "occurred_at": "9999-12-31T00:00:00Z"}, 422, "body.occurred_at"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := "/v1/contacts"
			if _, ok := tc.body["purposes"]; ok {
				path = "/v1/consents"
			}
			before := h.logHead()
			r := h.do("POST", path, tc.key, tc.body)
			if r.status != tc.status {
				t.Fatalf("%d %s, want %d", r.status, r.body, tc.status)
			}
			noNumber(t, r, numA)
			if tc.status >= 400 {
				if h.logHead() != before {
					t.Errorf("a refused write changed the log")
				}
				if tc.location != "" && !strings.Contains(string(r.body), `"location":"`+tc.location+`"`) {
					t.Errorf("problem does not name %s: %s", tc.location, r.body)
				}
				return
			}
			evs, err := h.api.cfg.Store.ReadAll(context.Background(), h.logHead(), 1)
			if err != nil {
				t.Fatal(err)
			}
			p, err := ledger.Decode(&evs[0])
			if err != nil {
				t.Fatal(err)
			}
			if c, ok := p.(*ledger.ContactMade); ok && c.Backfill != (tc.body["backfill"] == true) {
				t.Errorf("backfill recorded as %v", c.Backfill)
			}
		})
	}
	// The bulk import is bounded the same way; ?backfill=true needs a key
	// allowed to, and marks the contacts.
	old := h.now.Add(-90 * 24 * time.Hour).Format(time.RFC3339)
	line := `{"type":"ContactMade","number":"` + numA + `","occurred_at":"` + old + `","data":{"line":"10690001","channel":"call","purpose":"service"}}` + "\n"
	nd := []string{"Content-Type", "application/x-ndjson"}
	if r := h.do("POST", "/v1/events:import", h.a, line, nd...); r.status != 422 || !strings.Contains(string(r.body), "occurred_at") {
		t.Errorf("import of 90-day-old history: %d %s", r.status, r.body)
	}
	if r := h.do("POST", "/v1/events:import?backfill=true", h.a, line, nd...); r.status != 403 {
		t.Errorf("import with backfill by a plain key: %d %s", r.status, r.body)
	}
	if r := h.do("POST", "/v1/events:import?backfill=true", h.backfiller, line, nd...); r.status != 201 {
		t.Errorf("import with backfill by a backfill key: %d %s", r.status, r.body)
	}
	sneaky := `{"type":"ContactMade","number":"` + numA + `","occurred_at":"` + recent + `","data":{"line":"10690001","channel":"call","purpose":"service","backfill":true}}` + "\n"
	if r := h.do("POST", "/v1/events:import", h.a, sneaky, nd...); r.status != 201 {
		t.Fatalf("import: %d %s", r.status, r.body)
	}
	evs, _ := h.api.cfg.Store.ReadAll(context.Background(), h.logHead(), 1)
	if p, _ := ledger.Decode(&evs[0]); p.(*ledger.ContactMade).Backfill {
		t.Errorf("a plain import set backfill in the data and it was kept")
	}
}

// TestFrequencyHoldsWhateverTheContactsSay: four contacts in a week deny
// the next, whatever business times the dialer gave them.
func TestFrequencyHoldsWhateverTheContactsSay(t *testing.T) {
	h := newRulesHarness(t, mem.New(), nil)
	if r := h.do("POST", "/v1/relationships", h.a, map[string]any{"number": numA, "contract_ref": "P-1"}); r.status != 201 {
		t.Fatal(r.status, string(r.body))
	}
	ask := map[string]any{"number": numA, "channel": "call", "purpose": "service", "line": "10690001"}
	for i, at := range []time.Time{h.now.Add(4 * time.Minute), h.now.Add(-29 * 24 * time.Hour), h.now.Add(-8 * 24 * time.Hour)} {
		if r := h.do("POST", "/v1/decisions", h.a, ask); r.status != 200 || r.json(t)["allowed"] != true {
			t.Fatalf("decision before contact %d: %d %s", i+1, r.status, r.body)
		}
		r := h.do("POST", "/v1/contacts", h.a, map[string]any{"number": numA, "line": "10690001", "channel": "call", "purpose": "service", "occurred_at": at.Format(time.RFC3339)})
		if r.status != 201 {
			t.Fatalf("contact %d: %d %s", i+1, r.status, r.body)
		}
	}
	r := h.do("POST", "/v1/decisions", h.a, ask)
	if r.status != 200 || r.json(t)["allowed"] != false || !strings.Contains(string(r.body), `"rule":"frequency"`) {
		t.Errorf("fourth call in a week: %d %s", r.status, r.body)
	}
}

// TestComplaintSuspendsTheLineAtOnce: the first decision after the
// acknowledged complaint that takes a line to 1 in 10 is denied with the
// figures, and the business reads its line's state.
func TestComplaintSuspendsTheLineAtOnce(t *testing.T) {
	for name, open := range stores {
		t.Run(name, func(t *testing.T) { complaintSuspendsTheLineAtOnce(t, open(t)) })
	}
}

// stores opens each kind of store the API runs over: in memory, the
// embedded bbolt store, and KurrentDB (the in-process fake).
var stores = ledgertest.Stores

func complaintSuspendsTheLineAtOnce(t *testing.T, store ledger.Store) {
	rules := projections.Default()
	rules.LineSuspension.MinContacts, rules.LineSuspension.Rate = 10, 0.1
	rules.Frequency.SubjectPerDay = 100
	if err := rules.Validate(); err != nil {
		t.Fatal(err)
	}
	h := newRulesHarness(t, store, rules)
	if r := h.do("POST", "/v1/relationships", h.a, map[string]any{"number": numA, "contract_ref": "P-1"}); r.status != 201 {
		t.Fatal(r.status, string(r.body))
	}
	for i := range 10 {
		n := "+86139000000" + string(rune('0'+i/10)) + string(rune('0'+i%10))
		if r := h.do("POST", "/v1/contacts", h.a, map[string]any{"number": n, "line": "10690001", "channel": "call", "purpose": "service"}); r.status != 201 {
			t.Fatal(r.status, string(r.body))
		}
	}
	ask := map[string]any{"number": numA, "channel": "call", "purpose": "service", "line": "10690001"}
	if r := h.do("POST", "/v1/decisions", h.a, ask); r.json(t)["allowed"] != true {
		t.Fatalf("before the complaint: %s", r.body)
	}
	line := h.do("GET", "/v1/lines/10690001", h.a, nil)
	if m := line.json(t); line.status != 200 || m["suspended"] != false || m["contacts"] != float64(10) || m["complaints"] != float64(0) {
		t.Fatalf("line before the complaint: %d %s", line.status, line.body)
	}
	c := h.do("POST", "/v1/complaints", h.a, map[string]any{"number": "+8613900000003", "line": "10690001", "channel": "call", "source": "customer"})
	if c.status != 201 {
		t.Fatal(c.status, string(c.body))
	}
	r := h.do("POST", "/v1/decisions", h.a, ask)
	if r.status != 200 || r.json(t)["allowed"] != false {
		t.Fatalf("first decision after the complaint: %d %s", r.status, r.body)
	}
	var reason map[string]any
	for _, x := range r.json(t)["reasons"].([]any) {
		if m := x.(map[string]any); m["rule"] == "line-suspended" && m["effect"] == "deny" {
			reason = m
		}
	}
	if reason == nil || !strings.Contains(reason["text"].(string), "1 complaints in 10 contacts over 30 days") ||
		!strings.Contains(reason["text_zh"].(string), "投诉1次") || reason["events"].([]any)[0] != c.json(t)["id"] {
		t.Errorf("reason: %v", reason)
	}
	line = h.do("GET", "/v1/lines/10690001", h.a, nil)
	m := line.json(t)
	if line.status != 200 || m["suspended"] != true || m["complaints"] != float64(1) || m["rate"] != 0.1 || m["window_days"] != float64(30) || m["reason"] == nil {
		t.Errorf("line after the complaint: %d %s", line.status, line.body)
	}
	if r := h.do("GET", "/v1/lines/10690001", h.b, nil); r.status != 403 {
		t.Errorf("tenant B reads tenant A's line: %d %s", r.status, r.body)
	}
	// Tenant B's own line of that name does not exist in B's tenancy.
	if r := h.do("GET", "/v1/lines/pbx-9", h.b, nil); r.status != 200 || r.json(t)["suspended"] != false || r.json(t)["contacts"] != float64(0) {
		t.Errorf("an unknown line: %d %s", r.status, r.body)
	}
}

// TestLinesBelongToTheirTenant: contacts, complaints and decisions on a
// line configured as another tenant's are refused; operators' and
// regulators' complaints come through a regulator key.
func TestLinesBelongToTheirTenant(t *testing.T) {
	h := newRulesHarness(t, mem.New(), nil)
	for _, tc := range []struct {
		name   string
		key    string
		path   string
		body   map[string]any
		status int
	}{
		{"B's contact on A's line", h.b, "/v1/contacts", map[string]any{"number": numA, "line": "10690001", "channel": "call", "purpose": "service"}, 403},
		{"B's complaint on A's line", h.b, "/v1/complaints", map[string]any{"number": numA, "line": "10690001", "source": "customer"}, 403},
		{"B's decision on A's line", h.b, "/v1/decisions", map[string]any{"number": numA, "line": "10690001", "channel": "call", "purpose": "service"}, 403},
		{"B as a regulator", h.b, "/v1/complaints", map[string]any{"number": numA, "line": "10690002", "source": "regulator"}, 403},
		{"B as an operator", h.b, "/v1/complaints", map[string]any{"number": numA, "source": "operator"}, 403},
		{"B's contact on B's line", h.b, "/v1/contacts", map[string]any{"number": numA, "line": "10690002", "channel": "call", "purpose": "service"}, 201},
		{"B's customer complaint on B's line", h.b, "/v1/complaints", map[string]any{"number": numA, "line": "10690002", "source": "customer"}, 201},
		{"B's contact on its own PBX line", h.b, "/v1/contacts", map[string]any{"number": numA, "line": "pbx-1", "channel": "call", "purpose": "service"}, 201},
		{"a regulator on A's line", h.regulator, "/v1/complaints/external", map[string]any{"number": numA, "line": "10690001", "source": "regulator"}, 201},
		{"an operator on A's line naming A", h.regulator, "/v1/complaints/external", map[string]any{"number": numA, "line": "10690001", "tenant": "tenanta", "source": "operator"}, 201},
		{"a regulator on A's line naming B", h.regulator, "/v1/complaints/external", map[string]any{"number": numA, "line": "10690001", "tenant": "tenantb", "source": "regulator"}, 422},
		{"a regulator on an unassigned line without a tenant", h.regulator, "/v1/complaints/external", map[string]any{"number": numA, "line": "pbx-1", "source": "regulator"}, 422},
		{"a regulator on B's PBX line", h.regulator, "/v1/complaints/external", map[string]any{"number": numA, "line": "pbx-1", "tenant": "tenantb", "source": "regulator"}, 201},
		{"a regulator as a customer", h.regulator, "/v1/complaints/external", map[string]any{"number": numA, "line": "pbx-1", "tenant": "tenantb", "source": "customer"}, 422},
		{"a business through the regulator door", h.a, "/v1/complaints/external", map[string]any{"number": numA, "line": "10690001", "source": "regulator"}, 403},
		{"a regulator recording a contact", h.regulator, "/v1/contacts", map[string]any{"number": numA, "line": "10690001", "channel": "call", "purpose": "service"}, 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := h.logHead()
			r := h.do("POST", tc.path, tc.key, tc.body)
			if r.status != tc.status {
				t.Fatalf("%d %s, want %d", r.status, r.body, tc.status)
			}
			noNumber(t, r, numA)
			if tc.status >= 400 {
				if h.logHead() != before {
					t.Errorf("a refused write changed the log")
				}
				return
			}
			if tc.path != "/v1/complaints/external" {
				return
			}
			want := tc.body["tenant"]
			if want == nil {
				want = "tenanta"
			}
			evs, _ := h.api.cfg.Store.ReadAll(context.Background(), h.logHead(), 1)
			e := evs[0]
			p, _ := ledger.Decode(&e)
			if e.Tenant != want || e.Stream != ledger.ContactStream(want.(string), hmacPseudonyms{}.Pseudonym(numA)) || p.(*ledger.ComplaintReceived).Source != tc.body["source"] {
				t.Errorf("recorded %+v %+v", e, p)
			}
		})
	}
}

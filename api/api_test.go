package api

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/heed/heed/ledger"
)

const numA = "+8613800138000"

func TestWritesAnswerWherePositionAndAreIdempotent(t *testing.T) {
	h := newHarness(t)
	for _, c := range []struct {
		path string
		body map[string]any
		typ  string
	}{
		{"/v1/consents", map[string]any{"number": numA, "purposes": []string{"service"}, "channels": []string{"sms"}, "source": "web_form"}, "ConsentGranted"},
		{"/v1/relationships", map[string]any{"number": "13800138000", "contract_ref": "P-1"}, "RelationshipStarted"},
		{"/v1/relationships/P-1/end", map[string]any{"number": numA}, "RelationshipEnded"},
		{"/v1/contacts", map[string]any{"number": numA, "line": "L1", "channel": "call", "purpose": "service"}, "ContactMade"},
		{"/v1/complaints", map[string]any{"number": numA, "source": "customer"}, "ComplaintReceived"},
		{"/v1/suppressions", map[string]any{"number": numA, "list": "dnc"}, "SuppressionListed"},
		{"/v1/suppressions", map[string]any{"number": numA, "list": "dnc", "action": "lift"}, "SuppressionLifted"},
		{"/v1/withdrawals", map[string]any{"number": numA, "via": "web"}, "ConsentWithdrawn"},
	} {
		before := h.head()
		key := "k-" + c.path + c.typ
		r := h.do("POST", c.path, h.a, c.body, "Idempotency-Key", key)
		if r.status != http.StatusCreated {
			t.Fatalf("%s: %d %s", c.path, r.status, r.body)
		}
		m := r.json(t)
		if m["type"] != c.typ || m["position"] != float64(before+1) || m["id"] == "" || m["revision"] == nil ||
			m["stream"] != "contact-tenanta-"+(hmacPseudonyms{}).Pseudonym(numA) {
			t.Fatalf("%s answered %s", c.path, r.body)
		}
		again := h.do("POST", c.path, h.a, c.body, "Idempotency-Key", key)
		if again.status != http.StatusOK || again.json(t)["id"] != m["id"] || again.json(t)["replayed"] != true {
			t.Fatalf("%s retry: %d %s", c.path, again.status, again.body)
		}
		if h.head() != before+1 {
			t.Fatalf("%s retry appended: head %d", c.path, h.head())
		}
	}
	// A client event id works the same way; reused with other content it conflicts.
	id := "0190f5a0-0000-7000-8000-000000000001"
	body := map[string]any{"id": id, "number": numA, "source": "customer", "occurred_at": recent}
	if r := h.do("POST", "/v1/complaints", h.a, body); r.status != 201 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	if r := h.do("POST", "/v1/complaints", h.a, body); r.status != 200 {
		t.Fatalf("retry with id: %d %s", r.status, r.body)
	}
	body["reason"] = "another complaint"
	before := h.head()
	if r := h.do("POST", "/v1/complaints", h.a, body); r.status != http.StatusConflict {
		t.Fatalf("reused id: %d %s", r.status, r.body)
	}
	if h.head() != before {
		t.Fatal("conflicting id appended")
	}
}

func TestReminderFlowAndHistory(t *testing.T) {
	h := newHarness(t)
	if r := h.do("POST", "/v1/relationships", h.a, map[string]any{"number": numA, "contract_ref": "P-9"}); r.status != 201 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	h.approved(h.a, "renewal", renewalText)
	r := h.do("POST", "/v1/reminders", h.a, renewal("rem-1", numA, "P-9"))
	if r.status != 201 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	m := r.json(t)
	if m["state"] != "submitted" || m["denied"] != false || len(m["events"].([]any)) != 3 {
		t.Fatalf("reminder: %s", r.body)
	}
	if got := h.sender.sent[0].Text; got != "【平安保险】您的车险保单P-9将于2026-12-31到期，请及时续保。" || !h.sender.sent[0].Flash {
		t.Fatalf("sent %+v", h.sender.sent[0])
	}
	if r := h.do("GET", "/v1/reminders/rem-1", h.a, nil); r.status != 200 || r.json(t)["state"] != "submitted" {
		t.Fatalf("get: %d %s", r.status, r.body)
	}
	if r := h.do("POST", "/v1/withdrawals", h.a, map[string]any{"number": numA, "via": "sms_keyword", "raw_text": "TD"}); r.status != 201 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	r = h.do("POST", "/v1/reminders", h.a, renewal("", numA, "P-9"))
	if m := r.json(t); r.status != 201 || m["state"] != "denied" || m["denied"] != true || !strings.Contains(string(r.body), `"rule":"withdrawal"`) {
		t.Fatalf("after opt-out: %d %s", r.status, r.body)
	}
	if len(h.sender.sent) != 1 {
		t.Fatalf("denied reminder was sent")
	}
	r = h.do("GET", "/v1/subjects/"+strings.ReplaceAll(numA, "+", "%2B")+"/history", h.a, nil)
	if r.status != 200 {
		t.Fatalf("history %d %s", r.status, r.body)
	}
	var types []string
	for _, e := range r.json(t)["events"].([]any) {
		types = append(types, e.(map[string]any)["type"].(string))
	}
	want := "RelationshipStarted ReminderRequested ReminderDispatched ReminderSubmitted ConsentWithdrawn ReminderRequested ReminderDenied"
	if strings.Join(types, " ") != want {
		t.Fatalf("history %v", types)
	}
}

func TestDecision(t *testing.T) {
	h := newHarness(t)
	ask := map[string]any{"number": numA, "channel": "call", "purpose": "service"}
	if r := h.do("POST", "/v1/decisions", h.a, ask); r.status != 200 || r.json(t)["allowed"] != false {
		t.Fatalf("%d %s", r.status, r.body)
	}
	h.do("POST", "/v1/relationships", h.a, map[string]any{"number": numA, "contract_ref": "P-1"})
	before := h.head()
	r := h.do("POST", "/v1/decisions", h.a, ask)
	if r.status != 200 || r.json(t)["allowed"] != true || r.json(t)["revision"] != float64(1) {
		t.Fatalf("%d %s", r.status, r.body)
	}
	if h.head() != before {
		t.Fatal("a decision appended")
	}
}

func TestImport(t *testing.T) {
	h := newHarness(t)
	nd := `{"type":"RelationshipStarted","number":"+8613800138000","occurred_at":"` + recent + `","data":{"contract_ref":"P-1","starts_at":"` + recent + `"}}
{"type":"ConsentGranted","number":"+8613800138000","occurred_at":"` + recent + `","data":{"purposes":["marketing"],"channels":["sms"],"source":"paper","evidence":{}}}
{"type":"ComplaintReceived","number":"+8613900139000","occurred_at":"` + recent + `","data":{"source":"customer"}}
`
	r := h.do("POST", "/v1/events:import", h.a, nd, "Content-Type", "application/x-ndjson", "Idempotency-Key", "batch-1")
	if r.status != 201 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	// Lines of one stream keep their order; streams are written concurrently.
	evs := r.json(t)["events"].([]any)
	if len(evs) != 3 || evs[0].(map[string]any)["revision"] != float64(1) || evs[1].(map[string]any)["revision"] != float64(2) ||
		evs[0].(map[string]any)["position"].(float64) > evs[1].(map[string]any)["position"].(float64) || h.head() != 3 {
		t.Fatalf("%s", r.body)
	}
	r = h.do("POST", "/v1/events:import", h.a, nd, "Content-Type", "application/x-ndjson", "Idempotency-Key", "batch-1")
	if r.status != 201 || h.head() != 3 {
		t.Fatalf("retried import: %d, head %d", r.status, h.head())
	}
	// One bad line refuses the whole batch.
	bad := nd + `{"type":"ReminderDispatched","number":"+8613800138000","occurred_at":"` + recent + `","data":{}}` + "\n"
	if r := h.do("POST", "/v1/events:import", h.a, bad, "Content-Type", "application/x-ndjson"); r.status != 422 || h.head() != 3 {
		t.Fatalf("bad batch: %d %s, head %d", r.status, r.body, h.head())
	}
}

func TestCustomerSeesOwnContactsWithBasis(t *testing.T) {
	h := newHarness(t)
	other := "+8613900139000"
	h.do("POST", "/v1/relationships", h.a, map[string]any{"number": numA, "contract_ref": "P-1"})
	h.do("POST", "/v1/consents", h.b, map[string]any{"number": numA, "purposes": []string{"marketing"}, "channels": []string{"call"}, "source": "call_recording"})
	h.do("POST", "/v1/contacts", h.b, map[string]any{"number": numA, "line": "L2", "channel": "call", "purpose": "marketing"})
	h.approved(h.a, "renewal", renewalText)
	h.do("POST", "/v1/reminders", h.a, renewal("r1", numA, "P-1"))
	h.do("POST", "/v1/withdrawals", h.a, map[string]any{"number": numA, "via": "sms_keyword"})
	h.do("POST", "/v1/reminders", h.a, renewal("r2", numA, "P-1"))
	h.do("POST", "/v1/contacts", h.a, map[string]any{"number": other, "line": "L1", "channel": "call", "purpose": "service"})

	before := h.head()
	if r := h.do("POST", "/v1/me/challenge", "", map[string]any{"number": "13800138000"}); r.status != 202 {
		t.Fatalf("challenge %d %s", r.status, r.body)
	}
	if h.head() != before+1 {
		t.Fatal("the code was not recorded as an event")
	}
	code := h.texter.code(numA)
	if r := h.do("POST", "/v1/me/session", "", map[string]any{"number": numA, "code": "999999x"}); r.status != 401 {
		t.Fatalf("wrong code: %d", r.status)
	}
	r := h.do("POST", "/v1/me/session", "", map[string]any{"number": numA, "code": code})
	if r.status != 200 {
		t.Fatalf("session %d %s", r.status, r.body)
	}
	tok := r.json(t)["token"].(string)
	if r := h.do("GET", "/v1/me/contacts", h.a, nil); r.status != 401 {
		t.Fatalf("API key accepted as customer token: %d", r.status)
	}
	r = h.do("GET", "/v1/me/contacts", tok, nil)
	if r.status != 200 {
		t.Fatalf("contacts %d %s", r.status, r.body)
	}
	cs := r.json(t)["contacts"].([]any)
	if len(cs) != 3 {
		t.Fatalf("want 3 contacts (one call by B, two reminders by A), got %s", r.body)
	}
	byID := map[string]map[string]any{}
	for _, c := range cs {
		m := c.(map[string]any)
		byID[m["id"].(string)] = m
	}
	r1, r2 := byID["r1"], byID["r2"]
	if r1["state"] != "submitted" || r1["allowed"] != true || len(r1["basis"].([]any)) != 1 ||
		r1["basis"].([]any)[0].(map[string]any)["contract_ref"] != "P-1" {
		t.Fatalf("r1: %v", r1)
	}
	if r2["state"] != "denied" || r2["allowed"] != false || !strings.Contains(fmt.Sprint(r2["reasons"]), "withdrawal") {
		t.Fatalf("r2: %v", r2)
	}
	// The customer reads the text sent, rebuilt from the approved template
	// and the sealed parameters, and confirmed by the recorded hash; a
	// denied reminder sent nothing.
	if want := "【平安保险】您的车险保单P-1将于2026-12-31到期，请及时续保。"; r1["text"] != want || r1["text_verified"] != true ||
		r1["template"] != "renewal" || r1["template_version"] != float64(1) {
		t.Fatalf("r1 text %q verified %v, want %q", r1["text"], r1["text_verified"], want)
	}
	if _, ok := r2["text"]; ok {
		t.Fatalf("a denied reminder shows a text: %v", r2)
	}
	var call map[string]any
	for _, c := range byID {
		if c["kind"] == "contact" {
			call = c
		}
	}
	if call["tenant"] != "tenantb" || call["basis"].([]any)[0].(map[string]any)["source"] != "call_recording" {
		t.Fatalf("call: %v", call)
	}
	if strings.Contains(string(r.body), `"line":"L1"`) {
		t.Fatal("another number's contact is listed")
	}
}

func TestAdminReinstatesLine(t *testing.T) {
	h := newHarness(t)
	r := h.do("POST", "/v1/lines/tenanta/L1/reinstatement", h.admin, map[string]any{"reason": "complaints resolved"})
	if r.status != 201 || r.json(t)["stream"] != "line-tenanta-L1" || r.json(t)["type"] != "LineReinstated" {
		t.Fatalf("%d %s", r.status, r.body)
	}
	if r := h.do("POST", "/v1/lines/tenanta/L1/reinstatement", h.a, map[string]any{"reason": "self-service"}); r.status != 403 {
		t.Fatalf("a business reinstated its own line: %d", r.status)
	}
}

func TestAuditEventsAreCanonicalLeavesInOrder(t *testing.T) {
	h := newHarness(t)
	for i := range 5 {
		h.do("POST", "/v1/complaints", h.a, map[string]any{"number": numA, "source": "customer", "reason": fmt.Sprint(i)})
	}
	r := h.do("GET", "/v1/audit/events?after=1&limit=3", h.auditor, nil)
	if r.status != 200 || r.header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("%d %s %s", r.status, r.header.Get("Content-Type"), r.body)
	}
	lines := strings.Split(strings.TrimSuffix(string(r.body), "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines, want 3:\n%s", len(lines), r.body)
	}
	for i, l := range lines {
		e, err := ledger.ParseLeaf([]byte(l))
		if err != nil {
			t.Fatalf("line %d is not a canonical leaf: %v", i, err)
		}
		if e.Position != uint64(i+2) {
			t.Fatalf("line %d has position %d", i, e.Position)
		}
	}
}

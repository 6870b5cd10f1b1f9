package api

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/heed/heed/ledger"
	"github.com/heed/heed/ledger/pii"
	"github.com/heed/heed/notify"
)

// personalWrites writes marker into every personal field the business API
// takes, once each, for number; the tag makes each write's text unique.
func personalWrites(marker, number string) []struct {
	path string
	body map[string]any
} {
	return []struct {
		path string
		body map[string]any
	}{
		{"/v1/consents", map[string]any{"number": number, "purposes": []string{"service"}, "channels": []string{"sms"}, "source": "web_form",
			"evidence": map[string]any{"text": "本人张伟（身份证110101199003071234）" + marker, "url": "https://forms.example/" + marker,
				"recording_id": "rec-" + marker, "content_hash": "sha256:0f"}}},
		{"/v1/withdrawals", map[string]any{"number": number, "via": "call", "channels": []string{"call"}, "raw_text": "别再打了 " + marker}},
		{"/v1/relationships", map[string]any{"number": number, "contract_ref": "POL-9"}},
		{"/v1/relationships/POL-9/end", map[string]any{"number": number, "reason": "moved abroad " + marker}},
		{"/v1/contacts", map[string]any{"number": number, "line": "L1", "channel": "call", "purpose": "service",
			"campaign": "c-" + marker, "outcome": "said " + marker}},
		{"/v1/complaints", map[string]any{"number": number, "source": "customer", "reason": "called at night " + marker}},
		{"/v1/suppressions", map[string]any{"number": number, "list": "dnc", "source": "asked by phone " + marker}},
		{"/v1/suppressions", map[string]any{"number": number, "list": "dnc", "action": "lift", "reason": "agreed again " + marker}},
	}
}

func TestPersonalFieldsAreSealedOnEveryWrite(t *testing.T) {
	h := newHarness(t)
	const marker = "MK-5e1d0b77"
	for _, w := range personalWrites(marker, numA) {
		if r := h.do("POST", w.path, h.a, w.body); r.status != http.StatusCreated {
			t.Fatalf("%s: %d %s", w.path, r.status, r.body)
		}
	}
	imp := `{"type":"ComplaintReceived","number":"` + numA + `","occurred_at":"` + recent + `","data":{"source":"customer","reason":"import ` + marker + `"}}`
	if r := h.do("POST", "/v1/events:import", h.a, imp, "Content-Type", "application/x-ndjson"); r.status != http.StatusCreated {
		t.Fatalf("import: %d %s", r.status, r.body)
	}

	audit := h.do("GET", "/v1/audit/events?limit=1000", h.auditor, nil)
	if audit.status != 200 || bytes.Count(audit.body, []byte("\n")) != 9 {
		t.Fatalf("audit events: %d %s", audit.status, audit.body)
	}
	history := h.do("GET", "/v1/subjects/"+numA+"/history", h.a, nil)
	for name, b := range map[string][]byte{"/v1/audit/events": audit.body, "history": history.body} {
		for _, clear := range []string{marker, "张伟", "110101199003071234"} {
			if bytes.Contains(b, []byte(clear)) {
				t.Fatalf("%s holds %q in clear", name, clear)
			}
		}
	}
	// Every leaf with personal fields carries them sealed, and they open.
	evs, err := h.store.ReadAll(context.Background(), 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	sealed := 0
	for i := range evs {
		fields, err := h.pii.OpenEvent(context.Background(), &evs[i])
		if err != nil {
			t.Fatalf("%s: %v", evs[i].Type, err)
		}
		for _, v := range fields {
			if !strings.Contains(v, marker) {
				t.Fatalf("%s: sealed field %q lacks the marker", evs[i].Type, v)
			}
		}
		if len(fields) > 0 {
			sealed++
		}
	}
	if sealed != 8 { // all but the relationship's start
		t.Fatalf("%d events carry sealed fields, want 8", sealed)
	}
}

// A retried write with the same client id is a no-op although sealing is
// involved, whether the client gave occurred_at or let it default.
func TestSealedWritesRetryAsNoOps(t *testing.T) {
	h := newHarness(t)
	for i, w := range personalWrites("retry", numA) {
		for j, at := range []string{"", recent} {
			body := map[string]any{}
			for k, v := range w.body {
				body[k] = v
			}
			if w.path == "/v1/relationships" && j > 0 {
				// A contract ref names one relationship: the second is
				// another contract.
				body["contract_ref"] = fmt.Sprint("POL-9-", j)
			}
			body["id"] = ledger.NewID()
			if at != "" {
				body["occurred_at"] = at
			}
			first := h.do("POST", w.path, h.a, body)
			if first.status != http.StatusCreated {
				t.Fatalf("write %d: %d %s", i, first.status, first.body)
			}
			before := h.head()
			again := h.do("POST", w.path, h.a, body)
			if again.status != http.StatusOK || again.json(t)["position"] != first.json(t)["position"] || h.head() != before {
				t.Fatalf("write %d (occurred_at %q) retried: %d %s", i, at, again.status, again.body)
			}
		}
	}
	// The same id with other personal text is a conflict.
	body := map[string]any{"id": ledger.NewID(), "number": numA, "source": "customer", "reason": "one"}
	if r := h.do("POST", "/v1/complaints", h.a, body); r.status != 201 {
		t.Fatal(r.status)
	}
	body["reason"] = "another"
	if r := h.do("POST", "/v1/complaints", h.a, body); r.status != http.StatusConflict {
		t.Fatalf("same id, other reason: %d %s", r.status, r.body)
	}
}

// A business's erasure destroys its own key for the number: its sealed
// fields no longer open, another business's still do, and the erasure is
// recorded in its own contact stream, not in one every tenant reads.
func TestBusinessErasureIsItsOwn(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	for _, tok := range []string{h.a, h.b} {
		body := map[string]any{"number": numA, "source": "customer", "reason": "complaint text"}
		if r := h.do("POST", "/v1/complaints", tok, body); r.status != 201 {
			t.Fatal(r.status)
		}
	}
	r := h.do("POST", "/v1/subjects/"+numA+"/erasure", h.a, map[string]any{"reason": "customer_request"})
	if r.status != http.StatusCreated {
		t.Fatalf("erasure: %d %s", r.status, r.body)
	}
	subject := hmacPseudonyms{}.Pseudonym(numA)
	if m := r.json(t); m["stream"] != ledger.ContactStream("tenanta", subject) {
		t.Fatalf("erasure recorded in %v", m["stream"])
	}
	if again := h.do("POST", "/v1/subjects/"+numA+"/erasure", h.a, nil); again.status != http.StatusOK || again.json(t)["id"] != r.json(t)["id"] {
		t.Fatalf("retried erasure: %d %s", again.status, again.body)
	}
	evs, _ := h.store.ReadAll(ctx, 1, 0)
	for i := range evs {
		_, err := h.pii.OpenEvent(ctx, &evs[i])
		switch evs[i].Tenant {
		case "tenanta":
			if len(evs[i].PII) > 0 && !errors.Is(err, pii.ErrErased) {
				t.Fatalf("tenant A's complaint after A's erasure: %v", err)
			}
		case "tenantb":
			if err != nil {
				t.Fatalf("tenant B's complaint after A's erasure: %v", err)
			}
		}
	}
	// Free text is not accepted as the reason: it stays readable after the key is gone.
	if r := h.do("POST", "/v1/subjects/"+numA+"/erasure", h.b, map[string]any{"reason": "张伟 asked"}); r.status != http.StatusUnprocessableEntity {
		t.Fatalf("free-text erasure reason: %d", r.status)
	}
}

// signIn returns a customer session token for number.
func (h *harness) signIn(t *testing.T, number string) string {
	t.Helper()
	if r := h.do("POST", "/v1/me/challenge", "", map[string]any{"number": number}); r.status != 202 {
		t.Fatalf("challenge %d %s", r.status, r.body)
	}
	r := h.do("POST", "/v1/me/session", "", map[string]any{"number": number, "code": h.texter.code(number)})
	if r.status != 200 {
		t.Fatalf("session %d %s", r.status, r.body)
	}
	return r.json(t)["token"].(string)
}

// accesses returns the access entries of the customer's contact list.
func accesses(t *testing.T, h *harness, tok string) []map[string]any {
	t.Helper()
	r := h.do("GET", "/v1/me/contacts", tok, nil)
	if r.status != 200 {
		t.Fatalf("contacts %d %s", r.status, r.body)
	}
	var out []map[string]any
	for _, c := range r.json(t)["contacts"].([]any) {
		if m := c.(map[string]any); m["kind"] == "access" {
			out = append(out, m)
		}
	}
	return out
}

// Staff read opened personal fields only through audit-personal, which
// records the read before answering; the customer sees who, what and why.
func TestStaffReadsOfPersonalFieldsAreRecordedAndShown(t *testing.T) {
	h := newHarness(t)
	r := h.do("POST", "/v1/complaints", h.a, map[string]any{"number": numA, "source": "customer", "reason": "called me at 23:00, 张伟"})
	if r.status != 201 {
		t.Fatal(r.status)
	}
	pos := int(r.json(t)["position"].(float64))
	path := fmt.Sprintf("/v1/audit/events/%d/personal?purpose=complaint+review+CASE-7", pos)
	for _, c := range []struct {
		name, tok string
		want      int
	}{{"business", h.a, 403}, {"no purpose", h.auditor, 422}} {
		p := path
		if c.name == "no purpose" {
			p = fmt.Sprintf("/v1/audit/events/%d/personal", pos)
		}
		if r := h.do("GET", p, c.tok, nil); r.status != c.want {
			t.Fatalf("%s: %d, want %d", c.name, r.status, c.want)
		}
	}
	before := h.head()
	r = h.do("GET", path, h.auditor, nil)
	if r.status != 200 {
		t.Fatalf("staff read: %d %s", r.status, r.body)
	}
	m := r.json(t)
	if m["fields"].(map[string]any)["reason"] != "called me at 23:00, 张伟" {
		t.Fatalf("opened fields: %s", r.body)
	}
	if h.head() != before+1 {
		t.Fatal("the read was not recorded")
	}
	evs, _ := h.store.ReadAll(context.Background(), before+1, 1)
	rec := evs[0]
	if rec.Type != ledger.TypePersonalDataAccessed || rec.Stream != ledger.ContactStream("tenanta", hmacPseudonyms{}.Pseudonym(numA)) ||
		rec.Position != uint64(m["access"].(map[string]any)["position"].(float64)) {
		t.Fatalf("access record: %+v", rec)
	}
	// An event without personal fields, or no event: nothing to read, nothing recorded.
	rel := h.do("POST", "/v1/relationships", h.a, map[string]any{"number": numA, "contract_ref": "P-1"})
	before = h.head()
	for _, p := range []string{fmt.Sprintf("/v1/audit/events/%v/personal?purpose=x", rel.json(t)["position"]), "/v1/audit/events/999/personal?purpose=x"} {
		if r := h.do("GET", p, h.admin, nil); r.status != 404 {
			t.Fatalf("%s: %d", p, r.status)
		}
	}
	if h.head() != before {
		t.Fatal("a read that returned nothing was recorded")
	}

	tok := h.signIn(t, numA)
	as := accesses(t, h, tok)
	if len(as) != 1 {
		t.Fatalf("customer sees %d accesses, want 1", len(as))
	}
	a := as[0]["access"].(map[string]any)
	if as[0]["tenant"] != "tenanta" || a["purpose"] != "complaint review CASE-7" || a["role"] != "auditor" ||
		a["event_type"] != ledger.TypeComplaintReceived || a["by"] == "" {
		t.Fatalf("access as the customer sees it: %v", as[0])
	}

	// After the business erases, the staff read answers 410 and records nothing.
	if r := h.do("POST", "/v1/subjects/"+numA+"/erasure", h.a, nil); r.status != 201 {
		t.Fatal(r.status)
	}
	before = h.head()
	if r := h.do("GET", path, h.auditor, nil); r.status != http.StatusGone || strings.Contains(string(r.body), "23:00") {
		t.Fatalf("staff read after erasure: %d %s", r.status, r.body)
	}
	if h.head() != before {
		t.Fatal("a refused read was recorded")
	}
}

// A customer who proved the number erases at one business, then at every
// business; opt-outs keep working afterwards.
func TestCustomerErasesAtOneOrEveryBusiness(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	for _, tok := range []string{h.a, h.b} {
		if r := h.do("POST", "/v1/withdrawals", tok, map[string]any{"number": numA, "via": "call", "raw_text": "不要再打了"}); r.status != 201 {
			t.Fatal(r.status)
		}
	}
	opens := func(tenant string) error {
		evs, _ := h.store.ReadStream(ctx, ledger.ContactStream(tenant, hmacPseudonyms{}.Pseudonym(numA)), 1, 1)
		_, err := h.pii.OpenEvent(ctx, &evs[0])
		return err
	}
	tok := h.signIn(t, numA)
	if r := h.do("POST", "/v1/me/erasure", h.a, map[string]any{}); r.status != 401 {
		t.Fatalf("a business key erasing as a customer: %d", r.status)
	}
	if r := h.do("POST", "/v1/me/erasure", tok, map[string]any{"tenant": "tenantc"}); r.status != 422 {
		t.Fatalf("erasure at a business that holds nothing: %d", r.status)
	}
	r := h.do("POST", "/v1/me/erasure", tok, map[string]any{"tenant": "tenantb"})
	if r.status != 201 || len(r.json(t)["erased"].([]any)) != 1 {
		t.Fatalf("erasure at B: %d %s", r.status, r.body)
	}
	if err := opens("tenantb"); !errors.Is(err, pii.ErrErased) {
		t.Fatalf("B's data after the customer's erasure at B: %v", err)
	}
	if err := opens("tenanta"); err != nil {
		t.Fatalf("A's data after the customer's erasure at B: %v", err)
	}
	r = h.do("POST", "/v1/me/erasure", tok, nil)
	if r.status != 201 || len(r.json(t)["erased"].([]any)) != 3 {
		t.Fatalf("erasure everywhere: %d %s", r.status, r.body)
	}
	if err := opens("tenanta"); !errors.Is(err, pii.ErrErased) {
		t.Fatalf("A's data after the customer's erasure everywhere: %v", err)
	}
	if again := h.do("POST", "/v1/me/erasure", tok, nil); again.status != 200 {
		t.Fatalf("repeated erasure everywhere: %d %s", again.status, again.body)
	}
	// The opt-outs still deny, through the pseudonym.
	for _, biz := range []string{h.a, h.b} {
		d := h.do("POST", "/v1/decisions", biz, map[string]any{"number": numA, "channel": "call", "purpose": "service"})
		if d.status != 200 || d.json(t)["allowed"] != false {
			t.Fatalf("decision after erasure: %d %s", d.status, d.body)
		}
	}
}

// A reply to a business's line from a number it never recorded anything
// about is sealed under that business's key; the customer's erasure at
// every business reaches it too.
func TestCustomerErasureReachesRepliesToALine(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	res, err := h.notify.OnInbound(ctx, notify.Inbound{From: "8613800138000", FromTON: 1, FromNPI: 1, To: "10690001", Text: "谁啊？我是张伟"})
	if err != nil || res.Unmatched == nil {
		t.Fatalf("inbound: %+v, %v", res, err)
	}
	e := *res.Unmatched
	if e.Tenant != "tenanta" || len(e.PII) == 0 || bytes.Contains(e.Data, []byte("张伟")) {
		t.Fatalf("unmatched reply recorded as %s for %q, pii %d bytes", e.Data, e.Tenant, len(e.PII))
	}
	if _, err := h.pii.OpenEvent(ctx, &e); err != nil {
		t.Fatal(err)
	}
	tok := h.signIn(t, numA)
	if r := h.do("POST", "/v1/me/erasure", tok, nil); r.status != 201 {
		t.Fatalf("erasure everywhere: %d %s", r.status, r.body)
	}
	if _, err := h.pii.OpenEvent(ctx, &e); !errors.Is(err, pii.ErrErased) {
		t.Fatalf("the reply after the customer's erasure everywhere: %v", err)
	}
}

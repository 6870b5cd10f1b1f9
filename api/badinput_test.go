package api

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/nyaruka/phonenumbers"
)

// TestBadInputIsRefusedWithProblemAndAppendsNothing covers invalid numbers,
// unknown enum values, malformed JSON, oversized bodies and missing or
// wrong auth.
func TestBadInputIsRefusedWithProblemAndAppendsNothing(t *testing.T) {
	h := newHarness(t)
	h.do("POST", "/v1/relationships", h.a, map[string]any{"number": numA, "contract_ref": "P-1"})
	contact := func(number, channel, purpose string) map[string]any {
		return map[string]any{"number": number, "line": "L1", "channel": channel, "purpose": purpose}
	}
	big := `{"number":"` + numA + `","source":"customer","reason":"` + strings.Repeat("x", MaxBody) + `"}`
	for _, c := range []struct {
		name, method, path, token string
		body                      any
		status                    int
		hdr                       []string
	}{
		{"short number", "POST", "/v1/contacts", h.a, contact("12345", "call", "service"), 422, nil},
		{"unknown country", "POST", "/v1/contacts", h.a, contact("+999123456789", "call", "service"), 422, nil},
		{"letters", "POST", "/v1/contacts", h.a, contact("call me maybe", "call", "service"), 422, nil},
		{"invalid mobile prefix", "POST", "/v1/contacts", h.a, contact("+8610000000000", "call", "service"), 422, nil},
		{"invalid number in path", "GET", "/v1/subjects/123/history", h.a, nil, 422, nil},
		{"invalid number in decision", "POST", "/v1/decisions", h.a, map[string]any{"number": "+86", "channel": "call", "purpose": "service"}, 422, nil},
		{"invalid number in import", "POST", "/v1/events:import", h.a, `{"type":"ComplaintReceived","number":"1","occurred_at":"` + recent + `","data":{"source":"customer"}}`, 422, []string{"Content-Type", "application/x-ndjson"}},
		{"invalid number in challenge", "POST", "/v1/me/challenge", "", map[string]any{"number": "000"}, 422, nil},
		{"unknown channel", "POST", "/v1/contacts", h.a, contact(numA, "fax", "service"), 422, nil},
		{"unknown purpose", "POST", "/v1/decisions", h.a, map[string]any{"number": numA, "channel": "call", "purpose": "spam"}, 422, nil},
		{"unknown consent source", "POST", "/v1/consents", h.a, map[string]any{"number": numA, "purposes": []string{"service"}, "channels": []string{"sms"}, "source": "telepathy"}, 422, nil},
		{"unknown purpose in a list", "POST", "/v1/consents", h.a, map[string]any{"number": numA, "purposes": []string{"service", "resale"}, "channels": []string{"sms"}, "source": "paper"}, 422, nil},
		{"unknown via", "POST", "/v1/withdrawals", h.a, map[string]any{"number": numA, "via": "pigeon"}, 422, nil},
		{"unknown role", "POST", "/v1/keys", h.admin, map[string]any{"role": "root"}, 422, nil},
		{"unknown field", "POST", "/v1/complaints", h.a, map[string]any{"number": numA, "source": "customer", "tenant": "tenantb"}, 422, nil},
		{"missing field", "POST", "/v1/relationships", h.a, map[string]any{"number": numA}, 422, nil},
		{"truncated JSON", "POST", "/v1/complaints", h.a, `{"number":"` + numA + `",`, 400, nil},
		{"not an object", "POST", "/v1/complaints", h.a, `[1,2,3]`, 422, nil},
		{"trailing garbage", "POST", "/v1/complaints", h.a, `{"number":"` + numA + `","source":"customer"} {}`, 400, nil},
		{"malformed NDJSON", "POST", "/v1/events:import", h.a, "{nope\n", 400, []string{"Content-Type", "application/x-ndjson"}},
		{"oversized body", "POST", "/v1/complaints", h.a, big, 413, nil},
		{"oversized import", "POST", "/v1/events:import", h.a, strings.Repeat(" ", MaxBody+1), 413, []string{"Content-Type", "application/x-ndjson"}},
		{"no auth", "POST", "/v1/complaints", "", map[string]any{"number": numA, "source": "customer"}, 401, nil},
		{"wrong key", "POST", "/v1/complaints", h.a + "x", map[string]any{"number": numA, "source": "customer"}, 401, nil},
		{"wrong scheme", "POST", "/v1/complaints", "", map[string]any{"number": numA, "source": "customer"}, 401, []string{"Authorization", "Basic " + h.a}},
		{"auditor key on a business write", "POST", "/v1/complaints", h.auditor, map[string]any{"number": numA, "source": "customer"}, 403, nil},
		{"admin key on a business write", "POST", "/v1/complaints", h.admin, map[string]any{"number": numA, "source": "customer"}, 403, nil},
		{"business key on the audit log", "GET", "/v1/audit/events", h.a, nil, 403, nil},
		{"customer without token", "GET", "/v1/me/contacts", "", nil, 401, nil},
		{"customer with an API key", "GET", "/v1/me/contacts", h.a, nil, 401, nil},
		{"wrong code", "POST", "/v1/me/session", "", map[string]any{"number": numA, "code": "123456"}, 401, nil},
		{"reminder with text and template", "POST", "/v1/reminders", h.a, map[string]any{"number": numA, "relationship_ref": "P-1", "text": "a", "template_id": "renewal", "template_version": 1}, 422, nil},
		{"reminder with free text", "POST", "/v1/reminders", h.a, map[string]any{"number": numA, "relationship_ref": "P-1", "text": "双十一大促！全场车险五折，回复1立即抢购"}, 422, nil},
		{"reminder with neither", "POST", "/v1/reminders", h.a, map[string]any{"number": numA, "relationship_ref": "P-1"}, 422, nil},
		{"reminder with a template but no version", "POST", "/v1/reminders", h.a, map[string]any{"number": numA, "relationship_ref": "P-1", "template_id": "renewal"}, 422, nil},
		{"reminder from another tenant's line", "POST", "/v1/reminders", h.a, map[string]any{"number": numA, "relationship_ref": "P-1", "template_id": "renewal", "template_version": 1, "line": "10690002"}, 422, nil},
		{"template with a promotion", "POST", "/v1/templates", h.a, map[string]any{"id": "promo", "signature": "平安保险", "text": "双十一大促！全场车险五折，回复1立即抢购"}, 422, nil},
		{"template for marketing", "POST", "/v1/templates", h.a, map[string]any{"id": "m", "purpose": "marketing", "signature": "平安保险", "text": "您的保单{p:ref}到期"}, 422, nil},
		{"review by a business", "POST", "/v1/review/templates/tenanta/renewal/versions/1/approve", h.a, map[string]any{}, 403, nil},
		{"rejection without a reason", "POST", "/v1/review/templates/tenanta/renewal/versions/1/reject", h.admin, map[string]any{}, 422, nil},
		{"global suppression by a business import", "POST", "/v1/events:import", h.a, `{"type":"SuppressionListed","number":"` + numA + `","occurred_at":"` + recent + `","data":{"scope":"global","list":"x"}}`, 422, []string{"Content-Type", "application/x-ndjson"}},
		{"notifier events by import", "POST", "/v1/events:import", h.a, `{"type":"ReminderDelivered","number":"` + numA + `","occurred_at":"` + recent + `","data":{"reminder_id":"x"}}`, 422, []string{"Content-Type", "application/x-ndjson"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := h.head()
			r := h.do(c.method, c.path, c.token, c.body, c.hdr...)
			if r.status != c.status {
				t.Fatalf("%d, want %d: %s", r.status, c.status, r.body)
			}
			if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
				t.Errorf("Content-Type %q, want application/problem+json", ct)
			}
			var p struct {
				Title  string `json:"title"`
				Status int    `json:"status"`
			}
			if err := json.Unmarshal(r.body, &p); err != nil || p.Status != c.status || p.Title == "" {
				t.Errorf("not a problem document: %s", r.body)
			}
			if strings.Contains(string(r.body), "13800138000") {
				t.Errorf("the problem repeats the number: %s", r.body)
			}
			if h.head() != before {
				t.Errorf("a refused request appended: head %d → %d", before, h.head())
			}
		})
	}
}

// TestChinaMobileMatchesParse: the shortcut for +861… numbers gives exactly
// what the full parse gives, for every four-digit mobile prefix, valid or
// not, and declines what it does not cover.
func TestChinaMobileMatchesParse(t *testing.T) {
	full := func(raw string) (string, bool) {
		n, err := phonenumbers.Parse(raw, "CN")
		if err != nil || !phonenumbers.IsValidNumber(n) {
			return "", false
		}
		return phonenumbers.Format(n, phonenumbers.E164), true
	}
	rng := rand.New(rand.NewPCG(1, 2))
	covered := 0
	for p := 1000; p < 2000; p++ {
		for range 4 {
			raw := fmt.Sprintf("+86%d%07d", p, rng.IntN(10_000_000))
			want, wantOK := full(raw)
			got, ok := chinaMobile(raw)
			if ok {
				covered++
				if !wantOK || got != want {
					t.Fatalf("%s: shortcut %q, full parse %q %v", raw, got, want, wantOK)
				}
			}
			if n, err := Normalize(raw, "CN"); (err == nil) != wantOK || n != want {
				t.Fatalf("%s: Normalize %q %v, full parse %q %v", raw, n, err, want, wantOK)
			}
		}
	}
	if covered < 1000 {
		t.Errorf("the shortcut answered only %d of 4000 numbers", covered)
	}
	for _, raw := range []string{"+8617951234567", "+86 13912345678", "+861391234567", "+86139123456789", "+8613912345x78", "13912345678", "+8612012345678"} {
		if _, ok := chinaMobile(raw); ok {
			t.Errorf("shortcut took %q", raw)
		}
	}
}

// TestChinaNationalMobileMatchesParse: a Chinese mobile number written
// nationally (13912345678) is normalised by the shortcut to what the
// library's full parse gives, for numbers across every three-digit prefix
// starting with 1, national prefixes and carrier codes included.
func TestChinaNationalMobileMatchesParse(t *testing.T) {
	full := func(raw string) (string, bool) {
		n, err := phonenumbers.ParseAndKeepRawInput(raw, "CN")
		if err != nil || n.GetCountryCodeSource() != phonenumbers.PhoneNumber_FROM_DEFAULT_COUNTRY || !phonenumbers.IsValidNumber(n) {
			return "", false
		}
		return phonenumbers.Format(n, phonenumbers.E164), true
	}
	rng := rand.New(rand.NewPCG(3, 4))
	shortcut := 0
	for p := 100; p < 200; p++ {
		for range 40 {
			raw := fmt.Sprintf("%d%08d", p, rng.IntN(100_000_000))
			want, wantOK := full(raw)
			if _, ok := chinaMobile("+86" + raw); ok {
				shortcut++
			}
			if n, err := Normalize(raw, "CN"); (err == nil) != wantOK || n != want {
				t.Fatalf("%s: Normalize %q %v, full parse %q %v", raw, n, err, want, wantOK)
			}
		}
	}
	if shortcut < 1000 {
		t.Errorf("the shortcut answered only %d of 4000 numbers", shortcut)
	}
}

package api

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/heed/heed/ledger"
)

// TestContactsCiteDecisions: every decision answer carries an id and a
// tag; a contact that cites one is recorded with the decision as heed
// verified it, and contacts that cite none, a denied, forged, mismatched
// or expired one are recorded all the same, counted, and listed for the
// auditor.
func TestContactsCiteDecisions(t *testing.T) {
	for name, open := range stores {
		t.Run(name, func(t *testing.T) { contactsCiteDecisions(t, open(t)) })
	}
}

func contactsCiteDecisions(t *testing.T, store ledger.Store) {
	h := newRulesHarness(t, store, nil)
	h.api.cfg.DecisionTTL = time.Minute
	for _, n := range []string{numA, "+8613900139111"} {
		if r := h.do("POST", "/v1/relationships", h.a, map[string]any{"number": n, "contract_ref": "P-" + n}); r.status != 201 {
			t.Fatal(r.status, string(r.body))
		}
	}
	decide := func(key, number, channel, purpose, line string, at *time.Time) map[string]any {
		t.Helper()
		body := map[string]any{"number": number, "channel": channel, "purpose": purpose, "line": line}
		if at != nil {
			body["at"] = at.Format(time.RFC3339Nano)
		}
		r := h.do("POST", "/v1/decisions", key, body)
		if r.status != 200 {
			t.Fatalf("decide: %d %s", r.status, r.body)
		}
		m := r.json(t)
		if !strings.HasPrefix(m["id"].(string), "d1.") || len(m["tag"].(string)) < 20 {
			t.Fatalf("decision without id or tag: %s", r.body)
		}
		return m
	}
	allowed := decide(h.a, numA, "call", "service", "10690001", nil)
	if allowed["allowed"] != true {
		t.Fatalf("service call denied: %v", allowed)
	}
	denied := decide(h.a, numA, "call", "marketing", "10690001", nil)
	if denied["allowed"] != false {
		t.Fatalf("marketing call without consent allowed: %v", denied)
	}
	otherNumber := decide(h.a, "+8613900139111", "call", "service", "10690001", nil)
	otherLine := decide(h.a, numA, "call", "service", "pbx-2", nil)
	hourAgo := time.Now().Add(-time.Hour)
	before := decide(h.a, numA, "call", "service", "10690001", &hourAgo)
	if before["allowed"] != false {
		t.Fatalf("as of an hour before the relationship: %v", before)
	}
	bsDecision := decide(h.b, numA, "call", "service", "10690002", nil)

	// An allowing id whose "allowed" byte was flipped from a denied one,
	// keeping the denied one's tag.
	raw, _ := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(denied["id"].(string), "d1."))
	raw[16] = 1
	flipped := "d1." + base64.RawURLEncoding.EncodeToString(raw)

	s := func(m map[string]any, k string) string { return m[k].(string) }
	for _, tc := range []struct {
		name     string
		key      string
		channel  string
		purpose  string
		id, tag  string
		status   string
		fromDecn map[string]any
		later    time.Duration
	}{
		{"valid", h.a, "call", "service", s(allowed, "id"), s(allowed, "tag"), ledger.CitedValid, allowed, 0},
		{"none", h.a, "call", "service", "", "", ledger.CitedNone, nil, 0},
		{"denied", h.a, "call", "marketing", s(denied, "id"), s(denied, "tag"), ledger.CitedDenied, denied, 0},
		{"forged tag", h.a, "call", "service", s(allowed, "id"), "AAAAAAAAAAAAAAAAAAAAAA", ledger.CitedForged, nil, 0},
		{"forged id", h.a, "call", "marketing", flipped, s(denied, "tag"), ledger.CitedForged, nil, 0},
		{"made-up id", h.a, "call", "service", "0190f5a0-0000-7000-8000-000000000001", "x", ledger.CitedForged, nil, 0},
		{"another tenant's decision", h.a, "call", "service", s(bsDecision, "id"), s(bsDecision, "tag"), ledger.CitedForged, nil, 0},
		{"another number's decision", h.a, "call", "service", s(otherNumber, "id"), s(otherNumber, "tag"), ledger.CitedMismatch, otherNumber, 0},
		{"another line's decision", h.a, "call", "service", s(otherLine, "id"), s(otherLine, "tag"), ledger.CitedMismatch, otherLine, 0},
		{"another channel's decision", h.a, "sms", "service", s(allowed, "id"), s(allowed, "tag"), ledger.CitedMismatch, allowed, 0},
		{"a decision older than it stays good", h.a, "call", "service", s(allowed, "id"), s(allowed, "tag"), ledger.CitedExpired, allowed, 4 * time.Minute},
		{"a decision after the contact", h.a, "call", "service", s(allowed, "id"), s(allowed, "tag"), ledger.CitedMismatch, allowed, -10 * time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sample := `heed_contacts_total{decision="` + tc.status + `"}`
			before := h.counter(sample)
			body := map[string]any{"number": numA, "line": "10690001", "channel": tc.channel, "purpose": tc.purpose}
			if tc.later != 0 {
				body["occurred_at"] = time.Now().Add(tc.later).Format(time.RFC3339Nano)
			}
			if tc.id != "" {
				body["decision_id"], body["decision_tag"] = tc.id, tc.tag
			}
			r := h.do("POST", "/v1/contacts", tc.key, body, "Idempotency-Key", "contact-"+tc.name)
			if r.status != 201 {
				t.Fatalf("contact not recorded: %d %s", r.status, r.body)
			}
			if again := h.do("POST", "/v1/contacts", tc.key, body, "Idempotency-Key", "contact-"+tc.name); again.status != 200 {
				t.Errorf("retry: %d %s", again.status, again.body)
			}
			evs, err := h.api.cfg.Store.ReadAll(context.Background(), uint64(r.json(t)["position"].(float64)), 1)
			if err != nil {
				t.Fatal(err)
			}
			p, err := ledger.Decode(&evs[0])
			if err != nil {
				t.Fatal(err)
			}
			c := p.(*ledger.ContactMade)
			if c.Decision == nil || c.Decision.Status != tc.status || c.DecisionID != tc.id {
				t.Fatalf("recorded decision %+v for %q, want status %s", c.Decision, c.DecisionID, tc.status)
			}
			if d := tc.fromDecn; d != nil {
				if c.Decision.ID != d["id"] || c.Decision.Allowed != d["allowed"] || c.Decision.RulesVersion != d["rules_version"] ||
					float64(c.Decision.AsOf) != d["as_of"] || c.Decision.At == nil {
					t.Errorf("kept %+v, decision was %v", c.Decision, d)
				}
			}
			if got := h.counter(sample) - before; got != 1 {
				t.Errorf("heed_contacts_total{decision=%q} rose by %v", tc.status, got)
			}
		})
	}

	// The auditor lists every flagged contact, and only those.
	r := h.do("GET", "/v1/audit/flagged-contacts", h.auditor, nil)
	if r.status != 200 {
		t.Fatalf("flagged: %d %s", r.status, r.body)
	}
	got := map[string]int{}
	for _, c := range r.json(t)["contacts"].([]any) {
		got[c.(map[string]any)["decision"].(map[string]any)["status"].(string)]++
	}
	want := map[string]int{"none": 1, "denied": 1, "forged": 4, "mismatch": 4, "expired": 1}
	if len(got) != len(want) {
		t.Errorf("flagged by status %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("flagged by status %v, want %v", got, want)
			break
		}
	}
	r = h.do("GET", "/v1/audit/flagged-contacts?status=forged&scan=100000", h.auditor, nil)
	if n := len(r.json(t)["contacts"].([]any)); n != 4 {
		t.Errorf("forged only: %d contacts", n)
	}
	// Paging: a one-event scan moves on by one position.
	r = h.do("GET", "/v1/audit/flagged-contacts?after=0&scan=1", h.auditor, nil)
	if r.json(t)["next"] != float64(1) {
		t.Errorf("scan of one event: %s", r.body)
	}
	if r := h.do("GET", "/v1/audit/flagged-contacts", h.a, nil); r.status != 403 {
		t.Errorf("a business reads the auditor's list: %d", r.status)
	}
}

package api

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/heed/heed/ledger"
	"github.com/heed/heed/ledger/pii"
	"github.com/heed/heed/notify"
	"github.com/heed/heed/projections"
)

// withProjections makes h decide with the real projections following its
// store (quiet hours off, so the test passes at any hour).
func withProjections(h *harness) {
	h.t.Helper()
	cfg := projections.Default()
	cfg.Disabled = []string{projections.RuleQuietHours}
	runner, err := projections.NewRunner(h.store, cfg, projections.Options{})
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.t.Cleanup(cancel)
	go func() { _ = runner.Run(ctx) }()
	h.notify = notify.New(notify.Config{Store: pii.Seal(h.store, h.pii), Decider: notify.Projections(runner), Sender: h.sender, DefaultLine: "10690001",
		Sealer: h.pii, Lines: map[string]string{"10690001": "tenanta", "10690002": "tenantb"}, Pseudonym: hmacPseudonyms{}.Pseudonym})
	h.api.cfg.Reminders, h.api.cfg.Gate, h.api.cfg.Decider = h.notify, h.notify, notify.Projections(runner)
}

func denials(t *testing.T, r resp) []string {
	t.Helper()
	var out []string
	for _, x := range r.json(t)["reasons"].([]any) {
		if m := x.(map[string]any); m["effect"] == "deny" {
			out = append(out, m["rule"].(string))
		}
	}
	return out
}

// TestIssuePromotionToABogusContract is the issue's request: a promotion as
// free text about a contract the business does not have with the number.
// The free text is refused outright; through an approved template the
// bogus contract is denied by the real projections, recorded as denied,
// and nothing is sent.
func TestIssuePromotionToABogusContract(t *testing.T) {
	h := newHarness(t)
	withProjections(h)
	if r := h.do("POST", "/v1/relationships", h.a, map[string]any{"number": numA, "contract_ref": "POL-S2B"}); r.status != 201 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	before := h.head()
	r := h.do("POST", "/v1/reminders", h.a, map[string]any{"number": numA, "relationship_ref": "NO-SUCH-CONTRACT",
		"text": "双十一大促！全场车险五折，回复1立即抢购"})
	if r.status != http.StatusUnprocessableEntity || h.head() != before || len(h.sender.sent) != 0 {
		t.Fatalf("free-text promotion: %d %s (head %d → %d, %d sent)", r.status, r.body, before, h.head(), len(h.sender.sent))
	}
	h.approved(h.a, "renewal", renewalText)
	r = h.do("POST", "/v1/reminders", h.a, renewal("bogus", numA, "NO-SUCH-CONTRACT"))
	if r.status != 201 || r.json(t)["state"] != "denied" || !slices.Contains(denials(t, r), "relationship-active") || len(h.sender.sent) != 0 {
		t.Fatalf("bogus contract: %d %s", r.status, r.body)
	}
	r = h.do("POST", "/v1/reminders", h.a, renewal("real", numA, "POL-S2B"))
	if r.status != 201 || r.json(t)["state"] != "submitted" || len(h.sender.sent) != 1 {
		t.Fatalf("real contract: %d %s", r.status, r.body)
	}
	// Ended, the contract no longer carries reminders.
	if r := h.do("POST", "/v1/relationships/POL-S2B/end", h.a, map[string]any{"number": numA}); r.status != 201 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	r = h.do("POST", "/v1/reminders", h.a, renewal("ended", numA, "POL-S2B"))
	if r.json(t)["state"] != "denied" || !slices.Contains(denials(t, r), "relationship-active") {
		t.Fatalf("ended contract: %s", r.body)
	}
}

// TestFailedReminderSaysWhy: a reminder that could not be sent because no
// SMSC was bound is answered failed with smsc_unavailable, at once and
// when read back, so the business knows to retry rather than wait for a
// receipt.
func TestFailedReminderSaysWhy(t *testing.T) {
	h := newHarness(t)
	withProjections(h)
	if r := h.do("POST", "/v1/relationships", h.a, map[string]any{"number": numA, "contract_ref": "POL-F1"}); r.status != 201 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	h.approved(h.a, "renewal", renewalText)
	h.sender.mu.Lock()
	h.sender.fail = fmt.Errorf("smpp: %w: no bind", notify.ErrUnavailable)
	h.sender.mu.Unlock()
	r := h.do("POST", "/v1/reminders", h.a, renewal("down", numA, "POL-F1"))
	if m := r.json(t); r.status != 201 || m["state"] != "failed" || m["failure"] != "smsc_unavailable" {
		t.Fatalf("reminder while no SMSC is bound: %d %s", r.status, r.body)
	}
	if m := h.do("GET", "/v1/reminders/down", h.a, nil).json(t); m["failure"] != "smsc_unavailable" {
		t.Fatalf("read back: %v", m)
	}
	h.sender.mu.Lock()
	h.sender.fail = nil
	h.sender.mu.Unlock()
	if m := h.do("POST", "/v1/reminders", h.a, renewal("up", numA, "POL-F1")).json(t); m["state"] != "submitted" || m["failure"] != nil {
		t.Fatalf("reminder once the SMSC is back: %v", m)
	}
}

// TestTemplateReview walks a template through the review: proposed (the
// automatic checks pass), unusable while pending, approved by a reviewer
// (recorded as the actor), usable, revoked, unusable again; a rejected
// version stays unusable and cannot then be approved.
func TestTemplateReview(t *testing.T) {
	h := newHarness(t)
	h.do("POST", "/v1/relationships", h.a, map[string]any{"number": numA, "contract_ref": "P-1"})
	r := h.do("POST", "/v1/templates", h.a, map[string]any{"id": "renewal", "signature": "平安保险", "text": renewalText})
	m := r.json(t)
	if r.status != 201 || m["state"] != "pending" || m["version"] != float64(1) || len(m["params"].([]any)) != 3 {
		t.Fatalf("propose: %d %s", r.status, r.body)
	}
	if r := h.do("POST", "/v1/templates", h.a, map[string]any{"id": "renewal", "signature": "平安保险", "text": renewalText}); r.status != 200 || r.json(t)["replayed"] != true {
		t.Fatalf("retried proposal: %d %s", r.status, r.body)
	}
	r = h.do("POST", "/v1/reminders", h.a, renewal("pending", numA, "P-1"))
	if r.json(t)["state"] != "denied" || strings.Join(denials(t, r), ",") != "template-approved" {
		t.Fatalf("pending template: %s", r.body)
	}
	// The reviewer's queue shows every tenant's pending templates.
	h.do("POST", "/v1/templates", h.b, map[string]any{"id": "expiry", "signature": "ACME", "text": "您的保单{policy:ref}将于{expires_on:date}到期。"})
	r = h.do("GET", "/v1/review/templates", h.review, nil)
	if r.status != 200 || !strings.Contains(string(r.body), `"tenant":"tenanta"`) || !strings.Contains(string(r.body), `"tenant":"tenantb"`) {
		t.Fatalf("queue: %d %s", r.status, r.body)
	}
	if r := h.do("GET", "/v1/templates", h.a, nil); strings.Contains(string(r.body), "expiry") {
		t.Fatalf("tenant A lists B's template: %s", r.body)
	}
	r = h.do("POST", "/v1/review/templates/tenanta/renewal/versions/1/approve", h.review, map[string]any{"reason": "a plain expiry notice"})
	if r.status != 201 || r.json(t)["state"] != "approved" || !strings.HasPrefix(r.json(t)["decided_by"].(string), "key_") {
		t.Fatalf("approve: %d %s", r.status, r.body)
	}
	if r := h.do("POST", "/v1/review/templates/tenanta/renewal/versions/1/approve", h.review, nil); r.status != 409 {
		t.Fatalf("approved twice: %d %s", r.status, r.body)
	}
	if r := h.do("POST", "/v1/reminders", h.a, renewal("approved", numA, "P-1")); r.json(t)["state"] != "submitted" {
		t.Fatalf("approved template: %s", r.body)
	}
	r = h.do("POST", "/v1/review/templates/tenanta/renewal/versions/1/revoke", h.admin, map[string]any{"reason": "used for marketing"})
	if r.status != 201 || r.json(t)["state"] != "revoked" {
		t.Fatalf("revoke: %d %s", r.status, r.body)
	}
	r = h.do("POST", "/v1/reminders", h.a, renewal("revoked", numA, "P-1"))
	if r.json(t)["state"] != "denied" || strings.Join(denials(t, r), ",") != "template-approved" || len(h.sender.sent) != 1 {
		t.Fatalf("revoked template: %s", r.body)
	}
	// Version 2, rejected.
	r = h.do("POST", "/v1/templates", h.a, map[string]any{"id": "renewal", "signature": "平安保险", "text": renewalText})
	if r.status != 201 || r.json(t)["version"] != float64(2) {
		t.Fatalf("version 2: %d %s", r.status, r.body)
	}
	if r := h.do("POST", "/v1/review/templates/tenanta/renewal/versions/2/reject", h.review, map[string]any{"reason": "misused before"}); r.status != 201 {
		t.Fatalf("reject: %d %s", r.status, r.body)
	}
	if r := h.do("POST", "/v1/review/templates/tenanta/renewal/versions/2/approve", h.review, nil); r.status != 409 {
		t.Fatalf("rejected then approved: %d %s", r.status, r.body)
	}
	body := renewal("rejected", numA, "P-1")
	body["template_version"] = 2
	if r := h.do("POST", "/v1/reminders", h.a, body); r.json(t)["state"] != "denied" {
		t.Fatalf("rejected template: %s", r.body)
	}
	// Every step is an event in the template's stream, with its actor.
	evs, err := h.store.ReadStream(context.Background(), ledger.TemplateStream("tenanta", "renewal"), 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	var steps []string
	for _, e := range evs {
		if e.Actor == "" {
			t.Errorf("%s has no actor", e.Type)
		}
		steps = append(steps, e.Type)
	}
	if got := strings.Join(steps, " "); got != "TemplateProposed TemplateApproved TemplateRevoked TemplateProposed TemplateRejected" {
		t.Fatalf("template stream: %s", got)
	}
}

// TestTemplateOfAnotherBusiness: B's approved template cannot carry A's
// reminder, and A cannot review its own.
func TestTemplateOfAnotherBusiness(t *testing.T) {
	h := newHarness(t)
	h.do("POST", "/v1/relationships", h.a, map[string]any{"number": numA, "contract_ref": "P-1"})
	h.approved(h.b, "renewal", renewalText)
	r := h.do("POST", "/v1/reminders", h.a, renewal("borrowed", numA, "P-1"))
	if r.json(t)["state"] != "denied" || strings.Join(denials(t, r), ",") != "template-approved" || len(h.sender.sent) != 0 {
		t.Fatalf("A used B's template: %s", r.body)
	}
	h.do("POST", "/v1/templates", h.a, map[string]any{"id": "own", "signature": "平安保险", "text": renewalText})
	if r := h.do("POST", "/v1/review/templates/tenanta/own/versions/1/approve", h.a, nil); r.status != 403 {
		t.Fatalf("a business approved its own template: %d", r.status)
	}
}

// TestProposalFailsAutomaticReview: promotional, linked or badly typed
// templates are refused at once with every problem named; nothing is
// recorded.
func TestProposalFailsAutomaticReview(t *testing.T) {
	h := newHarness(t)
	for text, rule := range map[string]string{
		"双十一大促！全场车险五折，回复1立即抢购{p}":      "promotion",
		"您的保单{p:ref}到期，详见https://x.cn": "link",
		"您的保单{p:ref}到期，请联系13912345678": "mobile",
		"您的保单{p:when}到期":               "syntax",
	} {
		before := h.head()
		r := h.do("POST", "/v1/templates", h.a, map[string]any{"id": "t", "signature": "平安保险", "text": text})
		if r.status != 422 || !strings.Contains(string(r.body), rule+":") || h.head() != before {
			t.Errorf("%s: %d %s", text, r.status, r.body)
		}
	}
	if r := h.do("POST", "/v1/templates", h.a, map[string]any{"id": "t", "signature": "客服通知", "text": renewalText}); r.status != 422 {
		t.Errorf("neutral signature: %d %s", r.status, r.body)
	}
}

// TestParamsSmugglingOverHTTP: values carrying a link, a mobile number or
// promotional wording are denied (template-params) and nothing is sent.
func TestParamsSmugglingOverHTTP(t *testing.T) {
	h := newHarness(t)
	h.do("POST", "/v1/relationships", h.a, map[string]any{"number": numA, "contract_ref": "P-1"})
	h.approved(h.a, "renewal", renewalText)
	for i, bad := range []map[string]string{
		{"product": "www.x.cn", "policy": "P-1", "expires_on": "2026-12-31"},
		{"product": "车险", "policy": "13912345678", "expires_on": "2026-12-31"},
		{"product": "五折抢购", "policy": "P-1", "expires_on": "2026-12-31"},
		{"product": "车险", "policy": "P-1", "expires_on": "回复1领红包"},
	} {
		body := renewal(fmt.Sprint("s", i), numA, "P-1")
		body["params"] = bad
		r := h.do("POST", "/v1/reminders", h.a, body)
		if r.json(t)["state"] != "denied" || strings.Join(denials(t, r), ",") != "template-params" {
			t.Errorf("%v: %s", bad, r.body)
		}
		for _, v := range bad {
			if v != "P-1" && strings.Contains(string(r.body), v) {
				t.Errorf("the answer repeats the value %q", v)
			}
		}
	}
	if len(h.sender.sent) != 0 {
		t.Fatalf("%d smuggled reminders sent", len(h.sender.sent))
	}
}

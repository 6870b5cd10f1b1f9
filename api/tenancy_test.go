package api

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/heed/heed/ledger"
)

// attack is one request tenant A's key makes against tenant B's data.
type attack func(h *harness) (method, path string, body any)

const shared = "+8613700137000" // a number both tenants know

// sharedPlanned is a number B plans reminders to (shared is on B's
// do-not-contact list, which cancels them).
const sharedPlanned = "+8613700137001"

// attacks has an entry for every operation in the OpenAPI document; the
// test fails if an operation is added without one.
var attacks = map[string]attack{
	"record-consent": func(*harness) (string, string, any) {
		return "POST", "/v1/consents", map[string]any{"number": shared, "purposes": []string{"service"}, "channels": []string{"sms"}, "source": "api"}
	},
	"record-withdrawal": func(*harness) (string, string, any) {
		return "POST", "/v1/withdrawals", map[string]any{"number": shared, "via": "api"}
	},
	"start-relationship": func(*harness) (string, string, any) {
		return "POST", "/v1/relationships", map[string]any{"number": shared, "contract_ref": "B-1"}
	},
	"end-relationship": func(*harness) (string, string, any) {
		return "POST", "/v1/relationships/B-1/end", map[string]any{"number": shared}
	},
	"record-contact": func(*harness) (string, string, any) {
		return "POST", "/v1/contacts", map[string]any{"number": shared, "line": "LB", "channel": "call", "purpose": "service"}
	},
	"record-complaint": func(*harness) (string, string, any) {
		return "POST", "/v1/complaints", map[string]any{"number": shared, "source": "customer"}
	},
	"record-suppression": func(*harness) (string, string, any) {
		return "POST", "/v1/suppressions", map[string]any{"number": shared, "list": "b-list", "action": "lift"}
	},
	"decide": func(*harness) (string, string, any) {
		return "POST", "/v1/decisions", map[string]any{"number": shared, "channel": "flash", "purpose": "service"}
	},
	"send-reminder": func(*harness) (string, string, any) {
		return "POST", "/v1/reminders", renewal("rb-1", shared, "B-1")
	},
	"propose-template": func(*harness) (string, string, any) {
		return "POST", "/v1/templates", map[string]any{"id": "renewal", "signature": "平安保险", "text": renewalText}
	},
	"list-templates": func(*harness) (string, string, any) { return "GET", "/v1/templates", nil },
	"get-template":   func(*harness) (string, string, any) { return "GET", "/v1/templates/renewal", nil },
	"review-queue":   func(*harness) (string, string, any) { return "GET", "/v1/review/templates?state=all", nil },
	"review-template": func(*harness) (string, string, any) {
		return "POST", "/v1/review/templates/tenantb/renewal/versions/1/revoke", map[string]any{"reason": "mine now"}
	},
	"get-reminder": func(*harness) (string, string, any) { return "GET", "/v1/reminders/rb-1", nil },
	"subject-history": func(*harness) (string, string, any) {
		return "GET", "/v1/subjects/" + url.PathEscape(shared) + "/history", nil
	},
	"erase-subject": func(*harness) (string, string, any) {
		return "POST", "/v1/subjects/" + url.PathEscape(shared) + "/erasure", map[string]any{}
	},
	"import-events": func(*harness) (string, string, any) {
		return "POST", "/v1/events:import", `{"type":"RelationshipEnded","number":"` + shared + `","occurred_at":"` + recent + `","data":{"contract_ref":"B-1","ended_at":"` + recent + `"}}`
	},
	"import-relationships": func(*harness) (string, string, any) {
		return "POST", "/v1/relationships:import", "number,contract_ref,starts_at,expires_at\n" + shared + ",B-1,2025-06-01,2026-06-01\n"
	},
	"record-cdrs": func(*harness) (string, string, any) {
		return "POST", "/v1/calls:cdr?format=csv", "call_id,callee,answered,duration_s\nrb-1," + shared + ",true,10\n"
	},
	"customer-challenge": func(*harness) (string, string, any) {
		return "POST", "/v1/me/challenge", map[string]any{"number": shared}
	},
	"customer-session": func(*harness) (string, string, any) {
		return "POST", "/v1/me/session", map[string]any{"number": shared, "code": "123456"}
	},
	"customer-contacts": func(*harness) (string, string, any) { return "GET", "/v1/me/contacts", nil },
	"customer-erasure": func(*harness) (string, string, any) {
		return "POST", "/v1/me/erasure", map[string]any{"tenant": "tenantb"}
	},
	"customer-withdrawal": func(*harness) (string, string, any) {
		return "POST", "/v1/me/withdrawals", map[string]any{"tenant": "tenantb"}
	},
	"customer-complaint": func(*harness) (string, string, any) {
		return "POST", "/v1/me/complaints", map[string]any{"tenant": "tenantb", "contact": "rb-1"}
	},
	"audit-personal": func(h *harness) (string, string, any) {
		return "GET", "/v1/audit/events/1/personal?purpose=curious", nil
	},
	"audit-events":      func(*harness) (string, string, any) { return "GET", "/v1/audit/events", nil },
	"audit-checkpoint":  func(*harness) (string, string, any) { return "GET", "/v1/audit/checkpoint", nil },
	"audit-inclusion":   func(*harness) (string, string, any) { return "GET", "/v1/audit/proofs/inclusion?position=1", nil },
	"audit-consistency": func(*harness) (string, string, any) { return "GET", "/v1/audit/proofs/consistency?old=1", nil },
	"audit-bundle":      func(*harness) (string, string, any) { return "GET", "/v1/audit/bundle", nil },
	"audit-log":         func(*harness) (string, string, any) { return "GET", "/v1/audit/log?tenant=tenantb", nil },
	"audit-report":      func(*harness) (string, string, any) { return "GET", "/v1/audit/reports", nil },
	"audit-report-chart": func(*harness) (string, string, any) {
		return "GET", "/v1/audit/reports/contacts/chart.svg", nil
	},
	"audit-report-data": func(*harness) (string, string, any) { return "GET", "/v1/audit/reports/opt-out-list/data.csv", nil },
	"reinstate-line": func(*harness) (string, string, any) {
		return "POST", "/v1/lines/tenantb/LB/reinstatement", map[string]any{"reason": "mine now"}
	},
	"get-line":               func(*harness) (string, string, any) { return "GET", "/v1/lines/10690002", nil },
	"audit-flagged-contacts": func(*harness) (string, string, any) { return "GET", "/v1/audit/flagged-contacts", nil },
	"record-external-complaint": func(*harness) (string, string, any) {
		return "POST", "/v1/complaints/external", map[string]any{"number": shared, "line": "10690002", "source": "regulator"}
	},
	"create-key": func(*harness) (string, string, any) {
		return "POST", "/v1/keys", map[string]any{"role": "business", "tenant": "tenantb"}
	},
	"list-keys": func(*harness) (string, string, any) { return "GET", "/v1/keys", nil },
	"set-tenant-profile": func(*harness) (string, string, any) {
		return "PUT", "/v1/tenants/tenantb/profile", map[string]any{"display_name": "mine now"}
	},
	"get-tenant-profile": func(*harness) (string, string, any) { return "GET", "/v1/tenants/tenantb/profile", nil },
	"define-plan":        func(*harness) (string, string, any) { return "POST", "/v1/plans", motorPlan("7d") },
	"get-plan":           func(*harness) (string, string, any) { return "GET", "/v1/plans/motor", nil },
	"renew-relationship": func(*harness) (string, string, any) {
		return "POST", "/v1/relationships/B-2/renew", map[string]any{"number": sharedPlanned, "expires_at": "2030-01-01T00:00:00Z"}
	},
	"relationship-reminders": func(*harness) (string, string, any) {
		return "GET", "/v1/relationships/B-2/reminders?number=" + url.QueryEscape(sharedPlanned), nil
	},
	"cancel-planned-reminder": func(h *harness) (string, string, any) {
		return "POST", "/v1/relationships/B-2/reminders/" + h.bPlanned + "/cancel", map[string]any{"number": sharedPlanned}
	},
	"planned-queue":      func(h *harness) (string, string, any) { return "GET", "/v1/planned-reminders?day=" + h.bDay, nil },
	"customer-reminders": func(*harness) (string, string, any) { return "GET", "/v1/me/reminders", nil },
	"revoke-key": func(h *harness) (string, string, any) {
		return "DELETE", "/v1/keys/" + h.keyID(h.b), nil
	},
}

// TestTenantIsolation: for every operation, tenant A's key neither reads
// nor writes tenant B's data.
func TestTenantIsolation(t *testing.T) {
	h := plannedHarness(t)
	// Tenant B's data about the shared number.
	var bIDs []string
	for _, c := range []struct {
		path string
		body any
	}{
		{"/v1/relationships", map[string]any{"number": shared, "contract_ref": "B-1"}},
		{"/v1/consents", map[string]any{"number": shared, "purposes": []string{"marketing"}, "channels": []string{"call"}, "source": "paper"}},
		{"/v1/suppressions", map[string]any{"number": shared, "list": "b-list"}},
	} {
		r := h.do("POST", c.path, h.b, c.body)
		if r.status != 201 {
			t.Fatalf("%d %s", r.status, r.body)
		}
		bIDs = append(bIDs, r.json(t)["id"].(string))
	}
	h.approved(h.b, "renewal", renewalText)
	r := h.do("GET", "/v1/templates/renewal", h.b, nil)
	for _, v := range r.json(t)["templates"].([]any) {
		for _, id := range v.(map[string]any)["events"].([]any) {
			bIDs = append(bIDs, id.(string))
		}
	}
	// B's plan, and a relationship under it with its planned reminders.
	r = h.do("POST", "/v1/plans", h.b, motorPlan("7d"))
	if r.status != 201 {
		t.Fatalf("B's plan: %d %s", r.status, r.body)
	}
	bIDs = append(bIDs, r.json(t)["event"].(string))
	exp := time.Now().Add(30 * 24 * time.Hour).UTC().Truncate(time.Second)
	if r := h.do("POST", "/v1/relationships", h.b, map[string]any{"number": sharedPlanned, "contract_ref": "B-2", "plan": "motor",
		"expires_at": exp.Format(time.RFC3339)}); r.status != 201 {
		t.Fatalf("B's planned relationship: %d %s", r.status, r.body)
	}
	deadline := time.Now().Add(10 * time.Second)
	for h.bPlanned == "" {
		r := h.do("GET", "/v1/relationships/B-2/reminders?number="+url.QueryEscape(sharedPlanned), h.b, nil)
		if list := r.json(t)["reminders"].([]any); len(list) == 1 {
			m := list[0].(map[string]any)
			h.bPlanned = m["reminder_id"].(string)
			due := must(time.Parse(time.RFC3339, m["due_at"].(string)))
			h.bDay = due.In(must(time.LoadLocation("Asia/Shanghai"))).Format(time.DateOnly)
		} else if time.Now().After(deadline) {
			t.Fatalf("B's planned reminder: %s", r.body)
		} else {
			time.Sleep(5 * time.Millisecond)
		}
	}
	bIDs = append(bIDs, h.bPlanned)
	r = h.do("POST", "/v1/reminders", h.b, renewal("rb-1", shared, "B-1"))
	if r.status != 201 || r.json(t)["state"] != "submitted" {
		t.Fatalf("B's reminder: %d %s", r.status, r.body)
	}
	reminderEvent := len(bIDs)
	for _, e := range r.json(t)["events"].([]any) {
		bIDs = append(bIDs, e.(map[string]any)["id"].(string))
	}
	bStream := ledger.ContactStream("tenantb", hmacPseudonyms{}.Pseudonym(shared))
	bRev, _ := h.store.StreamRevision(context.Background(), bStream)

	if r := h.do("GET", "/v1/reminders/rb-1", h.a, nil); r.status != http.StatusNotFound {
		t.Errorf("tenant A reads B's reminder: %d, want 404", r.status)
	}
	head := h.head()
	ops := 0
	for _, item := range h.api.API().OpenAPI().Paths {
		for _, op := range []*huma.Operation{item.Get, item.Post, item.Put, item.Patch, item.Delete} {
			if op == nil {
				continue
			}
			ops++
			mk, ok := attacks[op.OperationID]
			if !ok {
				t.Errorf("operation %s has no tenancy check", op.OperationID)
				continue
			}
			method, path, body := mk(h)
			var hdr []string
			switch op.OperationID {
			case "import-events":
				hdr = []string{"Content-Type", "application/x-ndjson"}
			case "record-cdrs", "import-relationships":
				hdr = []string{"Content-Type", "text/csv"}
			}
			r := h.do(method, path, h.a, body, hdr...)
			if r.status >= 500 {
				t.Errorf("%s: %d %s", op.OperationID, r.status, r.body)
			}
			for _, id := range append(bIDs, "tenantb") {
				if strings.Contains(string(r.body), id) {
					t.Errorf("%s: tenant A's answer shows tenant B's data (%s): %s", op.OperationID, id, r.body)
				}
			}
			if strings.HasPrefix(op.OperationID, "audit-") || strings.HasPrefix(op.OperationID, "review-") || strings.HasSuffix(op.OperationID, "-key") || op.OperationID == "list-keys" || op.OperationID == "reinstate-line" ||
				op.OperationID == "get-line" || op.OperationID == "record-external-complaint" || strings.HasSuffix(op.OperationID, "-tenant-profile") {
				if r.status != http.StatusForbidden {
					t.Errorf("%s with a business key: %d, want 403", op.OperationID, r.status)
				}
			}
			if (op.OperationID == "customer-contacts" || op.OperationID == "customer-erasure" || op.OperationID == "customer-withdrawal" || op.OperationID == "customer-complaint" || op.OperationID == "customer-reminders") && r.status != http.StatusUnauthorized {
				t.Errorf("%s with a business key: %d, want 401", op.OperationID, r.status)
			}
		}
	}
	if ops != len(attacks) {
		t.Errorf("checked %d operations, the table has %d", ops, len(attacks))
	}
	// Nothing A did landed in B's stream or under B's tenant.
	if rev, _ := h.store.StreamRevision(context.Background(), bStream); rev != bRev {
		t.Errorf("tenant B's stream went from revision %d to %d", bRev, rev)
	}
	evs, err := h.store.ReadAll(context.Background(), head+1, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evs {
		if e.Tenant == "tenantb" || strings.Contains(e.Stream, "tenantb") {
			t.Errorf("tenant A's key wrote %s into %s", e.Type, e.Stream)
		}
	}
	// And B's reminder id is still B's: A's same id is a separate reminder.
	if r := h.do("GET", "/v1/reminders/rb-1", h.b, nil); r.status != 200 || !strings.Contains(string(r.body), bIDs[reminderEvent]) {
		t.Errorf("B's reminder after A's requests: %d %s", r.status, r.body)
	}
}

package notify

import (
	"context"
	"strings"
	"testing"

	"github.com/heed/heed/ledger"
	"github.com/heed/heed/ledger/ledgertest"
)

// TestTemplatesOnEveryStore: the template review read through the Store
// gates reminders the same on the in-memory store, the embedded bbolt
// store and KurrentDB (its in-process fake): approved sends, revoked and
// another tenant's deny.
func TestTemplatesOnEveryStore(t *testing.T) {
	stores := ledgertest.Stores
	for name, open := range stores {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			st := open(t)
			approveRenewal(t, st)
			sender := &fakeSender{}
			n := New(Config{Store: st, Decider: &streamDecider{store: st}, Sender: sender, Lines: map[string]string{line: tenant, "10690009": "other"},
				DefaultLine: line, Pseudonym: pseudo})
			relate(t, st, tenant, number)
			if res, err := n.Remind(ctx, req("approved")); err != nil || res.State != StateSubmitted {
				t.Fatalf("approved template: %s, %v", res.State, err)
			}
			if got := sender.sent[0].Text; got != "【平安保险】您的保单P-1将于2026-12-01到期" {
				t.Fatalf("sent %q", got)
			}
			// Another tenant's approved template of the same id is not ours.
			q := req("borrowed")
			q.Tenant, q.Line = "other", "10690009"
			relate(t, st, "other", number)
			if res, err := n.Remind(ctx, q); err != nil || res.State != StateDenied || strings.Join(denialRules(res), ",") != RuleTemplateApproved {
				t.Fatalf("another tenant's template: %s %v, %v", res.State, denialRules(res), err)
			}
			templateEvent(t, st, tenant, ledger.TemplateRevoked{TemplateID: "renewal", Version: 1, Reason: "misused"})
			if res, err := n.Remind(ctx, req("revoked")); err != nil || res.State != StateDenied || strings.Join(denialRules(res), ",") != RuleTemplateApproved {
				t.Fatalf("revoked template: %s %v, %v", res.State, denialRules(res), err)
			}
			if len(sender.sent) != 1 {
				t.Fatalf("%d sent, want 1", len(sender.sent))
			}
			vs, rev, err := ReadTemplate(ctx, st, tenant, "renewal")
			if err != nil || rev != 3 || len(vs) != 1 || vs[0].State != TemplateRevoked {
				t.Fatalf("ReadTemplate = %+v rev %d, %v", vs, rev, err)
			}
		})
	}
}

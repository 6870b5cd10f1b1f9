package projections

import (
	"slices"
	"testing"

	"github.com/heed/heed/ledger"
)

// TestTenants: the tenants that know a subject, read right after their
// appends (the projection waits for the head), and only from contact
// streams.
func TestTenants(t *testing.T) {
	e := newEnv(t, nil)
	e.append(ledger.ContactStream("acme", subject), "acme", subject, ledger.ReminderDispatched{ReminderID: "r1", ContractRef: "P", ContentHash: "h", Line: "10690001"})
	e.append(ledger.ContactStream("bank", subject), "bank", subject, ledger.RelationshipStarted{ContractRef: "P", StartsAt: base})
	e.append(ledger.SubjectStream(subject), "", subject, ledger.SuppressionListed{Scope: "global", List: "national"})
	e.append(ledger.ContactStream("acme", "other"), "acme", "other", ledger.RelationshipStarted{ContractRef: "P", StartsAt: base})
	got, err := e.r.Tenants(e.ctx, subject)
	slices.Sort(got)
	if err != nil || !slices.Equal(got, []string{"acme", "bank"}) {
		t.Fatalf("tenants %v, %v", got, err)
	}
	if got, err := e.r.Tenants(e.ctx, "nobody"); err != nil || len(got) != 0 {
		t.Fatalf("tenants of an unknown subject: %v, %v", got, err)
	}
}

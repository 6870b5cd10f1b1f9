package projections

import (
	"slices"
	"testing"

	"github.com/heed/heed/ledger"
)

// TestRelationshipActive: a query naming a contract is allowed only while
// that contract of the tenant and subject is active or in its grace
// period; another contract, another tenant's contract of the same name,
// or a service consent do not stand in for it.
func TestRelationshipActive(t *testing.T) {
	past := base.Add(-days(60))
	for _, c := range []struct {
		name     string
		contract string
		setup    func(b *book) uint32 // the event a reason must cite, or 0
		deny     bool
	}{
		{"active", "P-1", func(b *book) uint32 { return policy(b, past, ptr(base.Add(days(30)))) }, false},
		{"open-ended", "P-1", func(b *book) uint32 { return policy(b, past, nil) }, false},
		{"expired within grace", "P-1", func(b *book) uint32 { return policy(b, base.Add(-days(400)), ptr(base.Add(-days(30)))) }, false},
		{"expired beyond grace", "P-1", func(b *book) uint32 { return policy(b, base.Add(-days(400)), ptr(base.Add(-days(91)))) }, true},
		{"ended", "P-1", func(b *book) uint32 {
			p := policy(b, past, nil)
			b.contact(tenant, subject, past, ledger.RelationshipEnded{ContractRef: "P-1", EndedAt: base.Add(-days(1))})
			return p
		}, true},
		{"not started yet", "P-2", func(b *book) uint32 {
			policy(b, past, nil)
			return b.contact(tenant, subject, past, ledger.RelationshipStarted{ContractRef: "P-2", StartsAt: base.Add(days(3))})
		}, true},
		{"renewed past its first expiry", "P-1", func(b *book) uint32 {
			p := policy(b, base.Add(-days(400)), ptr(base.Add(-days(91))))
			b.contact(tenant, subject, past, ledger.RelationshipRenewed{ContractRef: "P-1", ExpiresAt: base.Add(days(270))})
			return p
		}, false},
		{"renewed, then ended", "P-1", func(b *book) uint32 {
			p := policy(b, past, ptr(base.Add(days(30))))
			b.contact(tenant, subject, past, ledger.RelationshipRenewed{ContractRef: "P-1", ExpiresAt: base.Add(days(400))})
			b.contact(tenant, subject, past, ledger.RelationshipEnded{ContractRef: "P-1", EndedAt: base.Add(-days(1))})
			return p
		}, true},
		{"another contract renewed", "P-1", func(b *book) uint32 {
			p := policy(b, base.Add(-days(400)), ptr(base.Add(-days(91))))
			b.contact(tenant, subject, past, ledger.RelationshipStarted{ContractRef: "P-2", StartsAt: past})
			b.contact(tenant, subject, past, ledger.RelationshipRenewed{ContractRef: "P-2", ExpiresAt: base.Add(days(400))})
			return p
		}, true},
		{"bogus contract", "NO-SUCH-CONTRACT", func(b *book) uint32 { policy(b, past, nil); return 0 }, true},
		{"second contract named", "P-2", func(b *book) uint32 {
			policy(b, past, nil)
			return b.contact(tenant, subject, past, ledger.RelationshipStarted{ContractRef: "P-2", StartsAt: past})
		}, false},
		{"another tenant's contract", "P-1", func(b *book) uint32 {
			b.contact("other-tenant", subject, past, ledger.RelationshipStarted{ContractRef: "P-1", StartsAt: past})
			return 0
		}, true},
		{"service consent is no contract", "P-1", func(b *book) uint32 {
			b.contact(tenant, subject, past, grant("sms_reply", []string{ledger.ChannelFlash}, service))
			return 0
		}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := newBook(t, nil)
			cite := c.setup(b)
			d := b.decide(Query{Tenant: tenant, Subject: subject, Number: number, Channel: ledger.ChannelFlash,
				Purpose: ledger.PurposeService, At: base, Contract: c.contract})
			if d.Denied(RuleRelationshipActive) != c.deny || d.Allowed == c.deny {
				t.Fatalf("allowed %v, relationship-active denied %v; want denied %v: %+v", d.Allowed, d.Denied(RuleRelationshipActive), c.deny, d.Reasons)
			}
			i := slices.IndexFunc(d.Reasons, func(r Reason) bool { return r.Rule == RuleRelationshipActive })
			if i < 0 {
				t.Fatal("no relationship-active reason")
			}
			if cite != 0 && !slices.Contains(d.Reasons[i].Positions, uint64(cite)) {
				t.Errorf("reason cites %v, want %d", d.Reasons[i].Positions, cite)
			}
			// Without a contract the decision is the general one.
			g := b.decide(Query{Tenant: tenant, Subject: subject, Number: number, Channel: ledger.ChannelFlash, Purpose: ledger.PurposeService, At: base})
			if slices.ContainsFunc(g.Reasons, func(r Reason) bool { return r.Rule == RuleRelationshipActive }) {
				t.Errorf("a query without a contract got a relationship-active reason")
			}
		})
	}
}

package projections

import (
	"slices"
	"testing"

	"github.com/heed/heed/ledger"
)

// erasedReason reports whether a decision cites an erasure.
func erasedReason(d Decision, pos uint32) bool {
	return slices.ContainsFunc(d.Reasons, func(r Reason) bool { return slices.Contains(r.Positions, uint64(pos)) })
}

// A business's erasure bears on its own decisions only, wherever it was
// recorded (its contact stream now, the subject stream before); a
// customer's erasure at every business (tenant "") bears on all.
func TestErasureIsPerTenant(t *testing.T) {
	const rival = "globex"
	for _, c := range []struct {
		name         string
		stream       func() string
		tenant       string
		mine, theirs bool
	}{
		{"business, its contact stream", func() string { return ledger.ContactStream(tenant, subject) }, tenant, true, false},
		{"business, the subject stream", func() string { return ledger.SubjectStream(subject) }, tenant, true, false},
		{"everywhere", func() string { return ledger.SubjectStream(subject) }, "", true, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := newBook(t, nil)
			for _, ten := range []string{tenant, rival} {
				b.contact(ten, subject, base, ledger.RelationshipStarted{ContractRef: "P-1", StartsAt: base})
			}
			before := map[string]Decision{}
			q := func(ten string) Query {
				return Query{Tenant: ten, Subject: subject, Number: number, Channel: ledger.ChannelSMS, Purpose: ledger.PurposeService, At: base.Add(days(1))}
			}
			for _, ten := range []string{tenant, rival} {
				before[ten] = b.decide(q(ten))
			}
			pos := b.add(c.stream(), c.tenant, subject, base.Add(days(1)/2), ledger.SubjectErased{Reason: "customer_request"})
			for ten, want := range map[string]bool{tenant: c.mine, rival: c.theirs} {
				d := b.decide(q(ten))
				if got := erasedReason(d, pos); got != want {
					t.Errorf("%s's decision cites the erasure: %v, want %v (%v)", ten, got, want, d.Reasons)
				}
				if !want && !slices.EqualFunc(d.Reasons, before[ten].Reasons, func(a, b Reason) bool { return a.Rule == b.Rule && a.Effect == b.Effect }) {
					t.Errorf("%s's decision changed: %v, before %v", ten, d.Reasons, before[ten].Reasons)
				}
			}
		})
	}
}

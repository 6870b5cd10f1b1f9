package projections_test

import (
	"context"
	"fmt"
	"time"

	"github.com/heed/heed/ledger"
	"github.com/heed/heed/ledger/mem"
	"github.com/heed/heed/projections"
)

func ExampleRunner_Decide() {
	ctx := context.Background()
	store := mem.New()
	runner, err := projections.NewRunner(store, projections.Default(), projections.Options{})
	if err != nil {
		panic(err)
	}
	const tenant, subject = "acme-insurance", "5f2b1c0a9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a"
	now := time.Now()
	policy, _ := ledger.NewEvent(tenant, subject, now, ledger.RelationshipStarted{
		ContractRef: "AUTO-001", StartsAt: now.AddDate(-1, 0, 0), ExpiresAt: ptr(now.AddDate(0, 0, 20)),
	})
	if _, err := store.Append(ctx, ledger.ContactStream(tenant, subject), ledger.Any(), []ledger.Event{policy}); err != nil {
		panic(err)
	}
	// Tomorrow 10:00 in Beijing, outside quiet hours.
	y, m, d := now.UTC().Date()
	at := time.Date(y, m, d+1, 2, 0, 0, 0, time.UTC)
	for _, purpose := range []string{"service", "marketing"} {
		d, err := runner.Decide(ctx, projections.Query{
			Tenant: tenant, Subject: subject, Number: "+8613800138000",
			Channel: "flash", Purpose: purpose, Line: "pbx-1", At: at,
		})
		if err != nil {
			panic(err)
		}
		fmt.Println(purpose, "allowed:", d.Allowed, "revision:", d.Revision)
		for _, r := range d.Reasons {
			fmt.Printf("  %s %s: %s\n", r.Effect, r.Rule, r.TextZH)
		}
	}
	// Output:
	// service allowed: true revision: 1
	//   allow service-basis: 客户与本企业有有效的合同关系。
	// marketing allowed: false revision: 1
	//   deny marketing-consent: 客户从未同意通过闪信接收营销信息。
	//   deny flash-service-only: 闪信只能用于服务提醒。
}

func ptr(t time.Time) *time.Time { return &t }

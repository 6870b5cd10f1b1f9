package schedule

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/heed/heed/ledger"
	"github.com/heed/heed/ledger/book"
)

// TestImportedBookGetsTimers: a renewal book imported as heed import
// does gets its plan's timers, and the same book exported later with an
// expiry moved renews that contract: its timers move to the new expiry.
func TestImportedBookGetsTimers(t *testing.T) {
	day0 := tomorrow()
	r := newRig(t, stores["bolt"](t), nil, day0)
	r.plan(motor("7d", "1d"))
	r.start(nil)
	im, err := book.New(book.Config{Store: r.base, Keys: r.keys, Tenant: tenant, Actor: "test", Location: shanghai,
		Report:  func(e book.RowError) { t.Errorf("row refused: %s", e) },
		Subject: func(n string) (string, string, error) { return n, pseudo(n), nil }})
	if err != nil {
		t.Fatal(err)
	}
	numbers := []string{"+8613800000001", "+8613800000002", "+8613800000003"}
	csv := func(moved time.Time) string {
		var b strings.Builder
		b.WriteString("number,contract_ref,product,starts_at,expires_at,plan\n")
		for i, n := range numbers {
			exp := day0.AddDate(0, 0, 20+i)
			starts := exp.AddDate(-1, 0, 0)
			if i == 0 && !moved.IsZero() {
				exp = moved
			}
			fmt.Fprintf(&b, "%s,P-%d,车险,%s,%s,motor\n", n, i, starts.Format(time.DateOnly), exp.Format(time.DateOnly))
		}
		return b.String()
	}
	c, err := im.Run(context.Background(), strings.NewReader(csv(time.Time{})), book.CSV)
	if err != nil || c.Recorded != 3 {
		t.Fatalf("import: %+v, %v", c, err)
	}
	for i, n := range numbers {
		r.eventually("the timers of a row", func() bool { return pending(r.timers(n)) == 2 })
		exp := day0.AddDate(0, 0, 20+i)
		y, m, d := exp.Date()
		for j, tm := range r.timers(n) {
			want := time.Date(y, m, d-[]int{7, 1}[j], 10, 0, 0, 0, shanghai)
			if !tm.DueAt.Equal(want) {
				t.Fatalf("row %d timer %s due %s, want %s", i, tm.Scheduled.Offset, tm.DueAt, want)
			}
		}
	}
	// The book again, the first contract's expiry a year later: a renewal.
	moved := day0.AddDate(1, 0, 20)
	c, err = im.Run(context.Background(), strings.NewReader(csv(moved)), book.CSV)
	if err != nil || c.Renewed != 1 || c.Already != 2 || c.Recorded != 3 {
		t.Fatalf("the book again: %+v, %v", c, err)
	}
	r.eventually("the renewed contract's timers", func() bool {
		ts := r.timers(numbers[0])
		return len(ts) == 4 && pending(ts) == 2 && ts[0].Cancelled != nil && ts[0].Cancelled.Reason == ledger.CancelRenewed
	})
	r.settled()
	if got := r.s.Stats().Pending; got != 6 {
		t.Fatalf("%d pending, want 6", got)
	}
}

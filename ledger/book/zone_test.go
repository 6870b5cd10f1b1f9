package book_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/heed/heed/ledger"
	"github.com/heed/heed/ledger/book"
	"github.com/heed/heed/ledger/mem"
)

// zoneOf stands in for projections.Zone (a layer above the ledger, tested
// there and through the API's import): the zone a number's prefix names,
// nil for a toll-free number in many.
func zoneOf(t *testing.T) func(string) *time.Location {
	zones := map[string]*time.Location{}
	for prefix, name := range map[string]string{"+86": "Asia/Shanghai", "+1415": "America/Los_Angeles", "+4420": "Europe/London"} {
		l, err := time.LoadLocation(name)
		if err != nil {
			t.Fatal(err)
		}
		zones[prefix] = l
	}
	return func(e164 string) *time.Location {
		for n := 5; n >= 3; n-- {
			if l := zones[e164[:n]]; l != nil {
				return l
			}
		}
		return nil
	}
}

// TestBareDatesInTheNumbersZone: a date without a time of day is that
// day's midnight in the customer's own zone, taken from the number (with
// its daylight saving time), whatever zone the import runs in; the
// import's zone serves only numbers whose zone is unknown or ambiguous.
func TestBareDatesInTheNumbersZone(t *testing.T) {
	utc := func(s string) time.Time {
		t.Helper()
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	cases := []struct {
		name, number, starts, expires string
		wantStarts, wantExpires       time.Time
	}{
		{"Shanghai", "+8613800000001", "2025-07-01", "2026-12-31", utc("2025-06-30T16:00:00Z"), utc("2026-12-30T16:00:00Z")},
		{"Los Angeles, summer and winter", "+14155550123", "2025-07-01", "2026-12-31", utc("2025-07-01T07:00:00Z"), utc("2026-12-31T08:00:00Z")},
		{"Los Angeles, the day clocks go forward", "+14155550124", "2025-11-02", "2026-03-08", utc("2025-11-02T07:00:00Z"), utc("2026-03-08T08:00:00Z")},
		{"London, winter and summer", "+442071234567", "2025-12-31", "2026-07-01", utc("2025-12-31T00:00:00Z"), utc("2026-06-30T23:00:00Z")},
		{"a toll-free number in many zones: the import's zone", "+18005550123", "2025-07-01", "2026-07-01", utc("2025-06-30T22:00:00Z"), utc("2026-06-30T22:00:00Z")},
		{"a time of day is kept as written", "+14155550125", "2025-07-01T09:00:00+08:00", "2026-07-01T00:00:00Z", utc("2025-07-01T01:00:00Z"), utc("2026-07-01T00:00:00Z")},
	}
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	st := mem.New()
	defer st.Close()
	definePlan(t, st, "t", "renewal")
	var file strings.Builder
	file.WriteString("number,contract_ref,starts_at,expires_at\n")
	for i, tc := range cases {
		file.WriteString(tc.number + ",Z-" + string(rune('a'+i)) + "," + tc.starts + "," + tc.expires + "\n")
	}
	rep := &report{}
	im, err := book.New(book.Config{Store: st, Keys: dataKeys(t), Tenant: "t", Actor: "test", Subject: subject, Zone: zoneOf(t),
		Location: berlin, Now: func() time.Time { return now }, Report: rep.add, Workers: 4})
	if err != nil {
		t.Fatal(err)
	}
	c, err := im.Run(context.Background(), strings.NewReader(file.String()), book.CSV)
	if err != nil || c.Recorded != int64(len(cases)) {
		t.Fatalf("%+v %v %v", c, err, rep.sorted())
	}
	evs, err := st.ReadAll(context.Background(), 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]ledger.RelationshipStarted{}
	for _, e := range evs {
		if e.Type == ledger.TypeRelationshipStarted {
			var p ledger.RelationshipStarted
			if err := json.Unmarshal(e.Data, &p); err != nil {
				t.Fatal(err)
			}
			got[p.ContractRef] = p
		}
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := got["Z-"+string(rune('a'+i))]
			if !r.StartsAt.Equal(tc.wantStarts) || r.ExpiresAt == nil || !r.ExpiresAt.Equal(tc.wantExpires) {
				t.Fatalf("starts %v expires %v, want %v and %v", r.StartsAt, r.ExpiresAt, tc.wantStarts, tc.wantExpires)
			}
		})
	}
}

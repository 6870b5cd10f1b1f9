package api

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/heed/heed/ledger/pii"
	"github.com/heed/heed/notify/schedule"
	"github.com/heed/heed/projections"
)

// plannedHarness is the harness with a scheduler of planned reminders
// running over its store.
func plannedHarness(t *testing.T) *harness {
	var sched *schedule.Scheduler
	h := newHarnessWith(t, nil, func(h *harness, c *Config) {
		var err error
		sched, err = schedule.New(context.Background(), schedule.Config{Store: pii.Seal(h.store, h.pii), Notifier: h.notify,
			Decider: c.Decider, Keys: h.pii, Rules: projections.Default(), Poll: 10 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		c.Planned = sched
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sched.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	<-sched.Ready()
	return h
}

func motorPlan(offsets ...string) map[string]any {
	return map[string]any{"id": "motor", "offsets": offsets, "window": map[string]string{"start": "10:00", "end": "18:00"},
		"template_id": "renewal", "template_version": 1,
		"params": map[string]string{"product": "product", "policy": "contract_ref", "expires_on": "expires_at"}}
}

// remindersOf polls a relationship's planned reminders until want holds.
func remindersOf(t *testing.T, h *harness, ref, number string, want func([]map[string]any) bool) []map[string]any {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := h.do("GET", "/v1/relationships/"+ref+"/reminders?number="+url.QueryEscape(number), h.a, nil)
		if r.status != 200 {
			t.Fatalf("reminders: %d %s", r.status, r.body)
		}
		var list []map[string]any
		for _, x := range r.json(t)["reminders"].([]any) {
			list = append(list, x.(map[string]any))
		}
		if want(list) {
			return list
		}
		if time.Now().After(deadline) {
			t.Fatalf("reminders of %s: %s", ref, r.body)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func count(list []map[string]any, status string) int {
	n := 0
	for _, r := range list {
		if r["status"] == status {
			n++
		}
	}
	return n
}

// TestPlansThroughTheAPI: a business defines a plan (a retry of the same
// definition is no new version), starts a relationship under it and sees
// its planned reminders, its queue by day, cancels one and renews the
// relationship; its customer sees what the reminders will say.
func TestPlansThroughTheAPI(t *testing.T) {
	h := plannedHarness(t)
	h.approved(h.a, "renewal", renewalText)
	const number = "+8613800138000"

	bad := []struct {
		name string
		body map[string]any
		says string
	}{
		{"unfilled parameter", func() map[string]any {
			p := motorPlan("7d")
			p["params"] = map[string]string{"policy": "contract_ref", "expires_on": "expires_at"}
			return p
		}(), "product is not filled"},
		{"date from a name", func() map[string]any {
			p := motorPlan("7d")
			p["params"] = map[string]string{"product": "product", "policy": "contract_ref", "expires_on": "product"}
			return p
		}(), "expires_on is of type date"},
		{"unknown template", func() map[string]any { p := motorPlan("7d"); p["template_id"] = "nope"; return p }(), "no version 1"},
		{"offset in weeks", motorPlan("2w"), "not a number of days or hours"},
		{"window backwards", func() map[string]any {
			p := motorPlan("7d")
			p["window"] = map[string]string{"start": "18:00", "end": "10:00"}
			return p
		}(), "before its end"},
		{"another business's line", func() map[string]any { p := motorPlan("7d"); p["line"] = "10690002"; return p }(), "another business"},
	}
	for _, b := range bad {
		r := h.do("POST", "/v1/plans", h.a, b.body)
		if r.status != 422 && r.status != 403 || !strings.Contains(string(r.body), b.says) {
			t.Errorf("%s: %d %s", b.name, r.status, r.body)
		}
	}
	r := h.do("POST", "/v1/plans", h.a, motorPlan("30d", "7d"))
	if r.status != 201 || r.json(t)["version"] != 1.0 {
		t.Fatalf("define: %d %s", r.status, r.body)
	}
	if r := h.do("POST", "/v1/plans", h.a, motorPlan("30d", "7d")); r.status != 200 || r.json(t)["version"] != 1.0 {
		t.Fatalf("the same definition again: %d %s", r.status, r.body)
	}
	if r := h.do("POST", "/v1/plans", h.a, motorPlan("30d", "7d", "1d")); r.status != 201 || r.json(t)["version"] != 2.0 {
		t.Fatalf("a new version: %d %s", r.status, r.body)
	}
	if r := h.do("GET", "/v1/plans/motor", h.a, nil); r.status != 200 || len(r.json(t)["versions"].([]any)) != 2 {
		t.Fatalf("get: %d %s", r.status, r.body)
	}
	if r := h.do("GET", "/v1/plans/motor", h.b, nil); r.status != 404 {
		t.Fatalf("another business read the plan: %d", r.status)
	}

	exp := time.Now().Add(60 * 24 * time.Hour).UTC().Truncate(time.Second)
	rel := map[string]any{"number": number, "contract_ref": "P-1", "product": "车险", "expires_at": exp.Format(time.RFC3339), "plan": "motor"}
	if r := h.do("POST", "/v1/relationships", h.a, map[string]any{"number": number, "contract_ref": "P-1", "plan": "motor"}); r.status != 422 {
		t.Fatalf("a plan without expiry: %d %s", r.status, r.body)
	}
	if r := h.do("POST", "/v1/relationships", h.b, rel); r.status != 422 || !strings.Contains(string(r.body), "unknown plan") {
		t.Fatalf("another business's plan: %d %s", r.status, r.body)
	}
	if r := h.do("POST", "/v1/relationships", h.a, rel); r.status != 201 {
		t.Fatalf("relationship: %d %s", r.status, r.body)
	}
	list := remindersOf(t, h, "P-1", number, func(l []map[string]any) bool { return count(l, "upcoming") == 3 })
	for _, x := range list {
		if x["plan_version"] != 2.0 || x["expires_at"] == nil {
			t.Fatalf("reminder %v", x)
		}
	}

	// The queue on the day the 7-day reminder falls due.
	due7 := must(time.Parse(time.RFC3339, list[1]["due_at"].(string)))
	day := due7.In(must(time.LoadLocation("Asia/Shanghai"))).Format(time.DateOnly)
	// The queue is the scheduler's index, which follows the log.
	deadline := time.Now().Add(10 * time.Second)
	for r = h.do("GET", "/v1/planned-reminders?day="+day, h.a, nil); r.status != 200 || r.json(t)["total"] != 1.0; {
		if time.Now().After(deadline) {
			t.Fatalf("queue: %d %s", r.status, r.body)
		}
		time.Sleep(5 * time.Millisecond)
		r = h.do("GET", "/v1/planned-reminders?day="+day, h.a, nil)
	}
	q := r.json(t)["reminders"].([]any)[0].(map[string]any)
	if q["contract_ref"] != "P-1" || q["offset"] != "7d" || q["reminder_id"] != list[1]["reminder_id"] {
		t.Fatalf("queued %v", q)
	}
	if week := r.json(t)["week"].([]any); len(week) != 7 || week[0].(map[string]any)["count"] != 1.0 {
		t.Fatalf("week %v", week)
	}
	if r := h.do("GET", "/v1/planned-reminders?day="+day, h.b, nil); r.status != 200 || r.json(t)["total"] != 0.0 {
		t.Fatalf("another business's queue: %d %s", r.status, r.body)
	}

	// The customer sees what will be said, and when.
	tok := h.signIn(t, number)
	r = h.do("GET", "/v1/me/reminders", tok, nil)
	mine := r.json(t)["reminders"].([]any)
	if r.status != 200 || len(mine) != 3 {
		t.Fatalf("me: %d %s", r.status, r.body)
	}
	want := fmt.Sprintf("【平安保险】您的车险保单P-1将于%s到期，请及时续保。", exp.In(must(time.LoadLocation("Asia/Shanghai"))).Format(time.DateOnly))
	if m := mine[0].(map[string]any); m["text"] != want || m["business"] != "tenanta" || m["status"] != "upcoming" {
		t.Fatalf("my reminder %v, want text %s", m, want)
	}

	// Cancel one.
	id := list[0]["reminder_id"].(string)
	path := "/v1/relationships/P-1/reminders/" + id + "/cancel"
	if r := h.do("POST", path, h.b, map[string]any{"number": number}); r.status != 404 {
		t.Fatalf("another business cancelled: %d", r.status)
	}
	if r := h.do("POST", path, h.a, map[string]any{"number": number}); r.status != 200 {
		t.Fatalf("cancel: %d %s", r.status, r.body)
	}
	if r := h.do("POST", path, h.a, map[string]any{"number": number}); r.status != 409 {
		t.Fatalf("cancel again: %d %s", r.status, r.body)
	}
	list = remindersOf(t, h, "P-1", number, func(l []map[string]any) bool { return count(l, "cancelled") == 1 })
	if list[0]["cancel_reason"] != "cancelled_by_business" {
		t.Fatalf("cancelled %v", list[0])
	}

	// A renewal cancels the two left and plans three from the new expiry.
	renewed := exp.AddDate(1, 0, 0)
	if r := h.do("POST", "/v1/relationships/P-2/renew", h.a, map[string]any{"number": number, "expires_at": renewed.Format(time.RFC3339)}); r.status != 404 {
		t.Fatalf("renewing what was never started: %d", r.status)
	}
	if r := h.do("POST", "/v1/relationships/P-1/renew", h.a, map[string]any{"number": number, "expires_at": renewed.Format(time.RFC3339)}); r.status != 201 {
		t.Fatalf("renew: %d %s", r.status, r.body)
	}
	list = remindersOf(t, h, "P-1", number, func(l []map[string]any) bool {
		return count(l, "cancelled") == 3 && count(l, "upcoming") == 3
	})
	for _, x := range list[1:3] {
		if x["cancel_reason"] != "relationship_renewed" {
			t.Fatalf("after a renewal: %v", x)
		}
	}
	for _, x := range list[3:] {
		if x["expires_at"] != renewed.Format(time.RFC3339) {
			t.Fatalf("new reminder %v, want expiry %s", x, renewed)
		}
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

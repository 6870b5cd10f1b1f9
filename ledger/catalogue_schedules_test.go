package ledger_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/heed/heed/ledger"
)

func TestScheduleEventsChecked(t *testing.T) {
	at := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	plan := func(edit func(*ledger.ReminderPlanDefined)) any {
		p := ledger.ReminderPlanDefined{PlanID: "motor-renewal", Version: 1, Offsets: []string{"30d", "7d", "1d"},
			Window: ledger.SendWindow{Start: "10:00", End: "18:00"}, TemplateID: "renewal", TemplateVersion: 2,
			Params: map[string]string{"product": "product", "expires_on": "expires_at", "policy": "contract_ref"},
			Retry:  &ledger.PlanRetry{After: "4h", Attempts: 1}}
		if edit != nil {
			edit(&p)
		}
		return &p
	}
	exp := at.AddDate(0, 1, 0)
	sched := func(edit func(*ledger.ReminderScheduled)) any {
		p := ledger.ReminderScheduled{ReminderID: "r-1", ContractRef: "P-1", PlanID: "motor-renewal", PlanVersion: 1,
			Offset: "7d", ExpiresAt: exp, DueAt: exp.AddDate(0, 0, -7)}
		if edit != nil {
			edit(&p)
		}
		return &p
	}
	tests := []struct {
		name    string
		payload any
		naming  string // empty: valid
	}{
		{"plan", plan(nil), ""},
		{"plan in hours, no retry", plan(func(p *ledger.ReminderPlanDefined) { p.Offsets, p.Retry = []string{"12h", "0d"}, nil }), ""},
		{"plan without offsets", plan(func(p *ledger.ReminderPlanDefined) { p.Offsets = nil }), "offsets"},
		{"offset in weeks", plan(func(p *ledger.ReminderPlanDefined) { p.Offsets = []string{"2w"} }), `"2w"`},
		{"negative offset", plan(func(p *ledger.ReminderPlanDefined) { p.Offsets = []string{"-1d"} }), `"-1d"`},
		{"offset too far", plan(func(p *ledger.ReminderPlanDefined) { p.Offsets = []string{"401d"} }), "400 days"},
		{"same offset twice", plan(func(p *ledger.ReminderPlanDefined) { p.Offsets = []string{"1d", "24h"} }), "twice"},
		{"window backwards", plan(func(p *ledger.ReminderPlanDefined) { p.Window = ledger.SendWindow{Start: "18:00", End: "10:00"} }), "before its end"},
		{"window not a time", plan(func(p *ledger.ReminderPlanDefined) { p.Window.Start = "9:00" }), `"9:00"`},
		{"window past midnight", plan(func(p *ledger.ReminderPlanDefined) { p.Window.End = "24:30" }), `"24:30"`},
		{"plan id in a stream name", plan(func(p *ledger.ReminderPlanDefined) { p.PlanID = "a/b" }), "plan_id"},
		{"version 0", plan(func(p *ledger.ReminderPlanDefined) { p.Version = 0 }), "version"},
		{"no template", plan(func(p *ledger.ReminderPlanDefined) { p.TemplateID = "" }), "template_id"},
		{"unknown source", plan(func(p *ledger.ReminderPlanDefined) { p.Params = map[string]string{"x": "name"} }), `"name"`},
		{"retry too soon", plan(func(p *ledger.ReminderPlanDefined) { p.Retry.After = "10s" }), "retry after"},
		{"retry too often", plan(func(p *ledger.ReminderPlanDefined) { p.Retry.Attempts = 4 }), "attempts"},
		{"renewal", &ledger.RelationshipRenewed{ContractRef: "P-1", ExpiresAt: exp}, ""},
		{"renewal without expiry", &ledger.RelationshipRenewed{ContractRef: "P-1"}, "expires_at"},
		{"renewal without contract", &ledger.RelationshipRenewed{ExpiresAt: exp}, "contract_ref"},
		{"timer", sched(nil), ""},
		{"timer without due time", sched(func(p *ledger.ReminderScheduled) { p.DueAt = time.Time{} }), "due_at"},
		{"timer without reminder id", sched(func(p *ledger.ReminderScheduled) { p.ReminderID = "" }), "reminder_id"},
		{"timer with a bad offset", sched(func(p *ledger.ReminderScheduled) { p.Offset = "7" }), `"7"`},
		{"timer without plan", sched(func(p *ledger.ReminderScheduled) { p.PlanID = "" }), "plan_id"},
		{"deferral", &ledger.ReminderDeferred{ReminderID: "r-1", Rule: "quiet-hours", DueAt: at, NextAt: at.Add(time.Hour)}, ""},
		{"deferral backwards", &ledger.ReminderDeferred{ReminderID: "r-1", Rule: "quiet-hours", DueAt: at, NextAt: at}, "next_at"},
		{"deferral without rule", &ledger.ReminderDeferred{ReminderID: "r-1", DueAt: at, NextAt: at.Add(time.Hour)}, "rule"},
		{"cancellation", &ledger.ReminderCancelled{ReminderID: "r-1", Reason: ledger.CancelOptedOut}, ""},
		{"cancellation for no reason", &ledger.ReminderCancelled{ReminderID: "r-1", Reason: "bored"}, `"bored"`},
		{"relationship with plan", &ledger.RelationshipStarted{ContractRef: "P-1", StartsAt: at, ExpiresAt: &exp, Plan: "motor-renewal"}, ""},
		{"plan without expiry", &ledger.RelationshipStarted{ContractRef: "P-1", StartsAt: at, Plan: "motor-renewal"}, "expires_at"},
		{"bad plan name", &ledger.RelationshipStarted{ContractRef: "P-1", StartsAt: at, ExpiresAt: &exp, Plan: "motor renewal"}, "plan"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := ledger.NewEvent("acme", "s", at, tt.payload)
			if err != nil {
				t.Fatal(err)
			}
			if ledger.TypeReminderPlanDefined == e.Type {
				e.Subject = ""
			}
			err = ledger.Validate(&e)
			if tt.naming == "" {
				if err != nil {
					t.Fatalf("Validate = %v", err)
				}
				if _, err := ledger.Decode(&e); err != nil {
					t.Fatalf("Decode = %v", err)
				}
				return
			}
			if !errors.Is(err, ledger.ErrInvalid) || !strings.Contains(err.Error(), tt.naming) {
				t.Fatalf("Validate = %v, want ErrInvalid naming %s", err, tt.naming)
			}
		})
	}
}

// A relationship's number is personal: it leaves Data for the sealed PII,
// and nothing else of it does.
func TestRelationshipNumberIsPersonal(t *testing.T) {
	exp := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	e, err := ledger.NewEvent("acme", "s", exp, &ledger.RelationshipStarted{ContractRef: "P-1", StartsAt: exp.AddDate(-1, 0, 0),
		ExpiresAt: &exp, Plan: "motor", Number: "+8613800138000"})
	if err != nil {
		t.Fatal(err)
	}
	fields, err := ledger.SplitPersonal(&e)
	if err != nil {
		t.Fatal(err)
	}
	if len(fields) != 1 || fields["number"] != "+8613800138000" {
		t.Fatalf("personal fields %v", fields)
	}
	if strings.Contains(string(e.Data), "138") {
		t.Fatalf("the number stayed in data: %s", e.Data)
	}
	var back ledger.RelationshipStarted
	if err := json.Unmarshal(e.Data, &back); err != nil || back.Plan != "motor" || back.ContractRef != "P-1" {
		t.Fatalf("data lost the rest: %s", e.Data)
	}
}

func TestParseOffset(t *testing.T) {
	tests := []struct {
		in   string
		d    time.Duration
		days bool
		ok   bool
	}{
		{"30d", 30 * 24 * time.Hour, true, true}, {"0d", 0, true, true}, {"12h", 12 * time.Hour, false, true},
		{"400d", 400 * 24 * time.Hour, true, true}, {"401d", 0, false, false}, {"d", 0, false, false},
		{"+1d", 0, false, false}, {"1.5d", 0, false, false}, {"7", 0, false, false}, {"1m", 0, false, false},
	}
	for _, tt := range tests {
		d, days, err := ledger.ParseOffset(tt.in)
		if (err == nil) != tt.ok || d != tt.d || days != tt.days {
			t.Errorf("ParseOffset(%q) = %v, %v, %v", tt.in, d, days, err)
		}
	}
}

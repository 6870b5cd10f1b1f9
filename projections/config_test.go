package projections

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestConfigFileIsValidatedNamingTheField(t *testing.T) {
	good, err := os.ReadFile(filepath.Join("testdata", "rules.json"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(filepath.Join("testdata", "rules.json"))
	if err != nil {
		t.Fatalf("shipped rules file: %v", err)
	}
	// The shipped file spells out the defaults of DESIGN.md.
	if d := Default(); strings.TrimPrefix(cfg.RulesVersion(), cfg.Version) != strings.TrimPrefix(d.RulesVersion(), d.Version) {
		t.Errorf("testdata/rules.json differs from Default(): %s vs %s", cfg.RulesVersion(), d.RulesVersion())
	}
	tests := []struct{ from, to, field string }{
		{`"21:00"`, `"25:00"`, "quiet_hours.start"},
		{`"Asia/Shanghai"`, `"Mars/Olympus"`, "quiet_hours.fallback_zone"},
		{`"max": 3`, `"max": 0`, "frequency.service.max"},
		{`"max": 1`, `"max": 5000`, "frequency.marketing.max"},
		{`"rate": 0.0001`, `"rate": 2`, "line_suspension.rate"},
		{`"min_contacts": 10000`, `"min_contacts": -1`, "line_suspension.min_contacts"},
		{`"max_per_hour": 60`, `"max_per_hour": 0`, "region_burst.max_per_hour"},
		{`"grace_days": 90`, `"grace_days": -5`, "service_basis.grace_days"},
		{`"version": "2026-11"`, `"version": ""`, "version"},
		{`"disabled": []`, `"disabled": ["no-such-rule"]`, "disabled"},
		{`"grace_days": 90`, `"grace_dayz": 90`, "grace_dayz"},
	}
	for _, tc := range tests {
		t.Run(tc.field, func(t *testing.T) {
			bad := strings.Replace(string(good), tc.from, tc.to, 1)
			if bad == string(good) {
				t.Fatalf("%s not in testdata/rules.json", tc.from)
			}
			_, err := ParseConfig([]byte(bad))
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("error %v does not name %s", err, tc.field)
			}
		})
	}
}

func TestRulesVersionChangesWithAnyNumber(t *testing.T) {
	a, b := Default(), Default()
	b.Frequency.SubjectPerDay = 11
	if err := b.Validate(); err != nil {
		t.Fatal(err)
	}
	if a.RulesVersion() == b.RulesVersion() || !strings.HasPrefix(b.RulesVersion(), "default+") {
		t.Errorf("versions %q and %q", a.RulesVersion(), b.RulesVersion())
	}
}

func TestDisabledRuleIsNotEvaluated(t *testing.T) {
	cfg := Default()
	cfg.Disabled = []string{RuleQuietHours}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	b := newBook(t, cfg)
	basis(b)
	late := base.Add(10 * 60 * 60e9) // 22:00 in Beijing
	if d := b.decide(Query{Tenant: tenant, Subject: subject, Number: number, Channel: "call", Purpose: "service", At: late}); !d.Allowed {
		t.Errorf("disabled quiet hours still deny: %+v", d.Reasons)
	}
}

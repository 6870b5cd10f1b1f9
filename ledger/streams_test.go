package ledger

import "testing"

func TestParseStream(t *testing.T) {
	for _, c := range []struct {
		name, tenant string
		kind         StreamKind
		key          string
		ok           bool
	}{
		{ContactStream("acme", "s1"), "acme", StreamContact, "s1", true},
		{ContactStream("a-b", "s1"), "a-b", StreamContact, "s1", true},
		{ContactStream("a-b", "s1"), "a-c", StreamContact, "", false},
		{ContactStream("acme", ""), "acme", StreamContact, "", false},
		{LineStream("acme", "1069-1"), "acme", StreamLine, "1069-1", true},
		{LineStream("acme", "1069"), "other", StreamLine, "", false},
		{SubjectStream("s1"), "", StreamSubject, "s1", true},
		{SubjectStream("s1"), "acme", StreamSubject, "s1", true},
		{TemplateStream("acme", "renewal"), "acme", StreamTemplate, "renewal", true},
		{PlanStream("acme", "p1"), "acme", StreamPlan, "p1", true},
		{"profile-acme", "acme", StreamOther, "", false},
		{"contact", "acme", StreamOther, "", false},
		{"", "", StreamOther, "", false},
	} {
		kind, key, ok := ParseStream(c.name, c.tenant)
		if kind != c.kind || key != c.key || ok != c.ok {
			t.Errorf("ParseStream(%q, %q) = %d %q %v, want %d %q %v", c.name, c.tenant, kind, key, ok, c.kind, c.key, c.ok)
		}
		bkind, bkey, bok := ParseStream([]byte(c.name), []byte(c.tenant))
		if bkind != kind || string(bkey) != key || bok != ok {
			t.Errorf("ParseStream of bytes %q differs: %d %q %v", c.name, bkind, bkey, bok)
		}
	}
}

package api

import (
	"strings"
	"testing"
)

func TestPeopleCache(t *testing.T) {
	p := newPeople(3)
	long := "+86 " + strings.Repeat("1", 40)
	p.put("13800138000", "+8613800138000", "subj-a")
	p.put(long, "+8613800138001", "subj-b")                         // raw too long: not kept
	p.put("13800138002", "+8613800138002", strings.Repeat("s", 65)) // subject too long: not kept
	for _, tc := range []struct {
		raw, e164, subject string
		ok                 bool
	}{
		{"13800138000", "+8613800138000", "subj-a", true},
		{long, "", "", false},
		{"13800138002", "", "", false},
		{"13800138003", "", "", false},
	} {
		e, s, ok := p.get(tc.raw)
		if e != tc.e164 || s != tc.subject || ok != tc.ok {
			t.Errorf("get(%.20q) = %q %q %v, want %q %q %v", tc.raw, e, s, ok, tc.e164, tc.subject, tc.ok)
		}
	}
	// Filling up drops the whole cache, then keeps the newest.
	p.put("1", "+1", "x")
	p.put("2", "+2", "y")
	p.put("3", "+3", "z")
	if _, _, ok := p.get("13800138000"); ok {
		t.Error("a full cache kept its oldest entry")
	}
	if e, s, ok := p.get("3"); !ok || e != "+3" || s != "z" {
		t.Errorf("newest entry: %q %q %v", e, s, ok)
	}
}

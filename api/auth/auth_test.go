package auth

import (
	"errors"
	"path/filepath"
	"testing"
	"time"
)

func TestKeysSurviveReopenAndStoreOnlyHashes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "apikeys.db")
	k, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	token, key, err := k.Create(RoleBusiness, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if err := k.Close(); err != nil {
		t.Fatal(err)
	}
	k, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	got, err := k.Lookup(token)
	if err != nil || got != key {
		t.Fatalf("Lookup after reopen = %+v, %v; want %+v", got, err, key)
	}
	if _, err := k.Lookup(token + "x"); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("Lookup(wrong) err = %v, want ErrUnknownKey", err)
	}
	for h := range k.byID {
		if h == token {
			t.Fatal("token stored in clear")
		}
	}
}

func TestCreateRefusesBadRoles(t *testing.T) {
	k, err := Open(filepath.Join(t.TempDir(), "apikeys.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	for _, c := range []struct{ role, tenant string }{
		{"root", ""}, {RoleBusiness, ""}, {RoleAdmin, "acme"}, {RoleBusiness, "a-b"}, {RoleAuditor, "x"},
	} {
		if _, _, err := k.Create(c.role, c.tenant); !errors.Is(err, ErrInvalidRole) {
			t.Errorf("Create(%q, %q) err = %v, want ErrInvalidRole", c.role, c.tenant, err)
		}
	}
	if k.Len() != 0 {
		t.Fatalf("refused keys were stored: %d", k.Len())
	}
}

func TestSessions(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	s := NewSessions(SessionConfig{Now: func() time.Time { return now }})
	const num = "+8613800138000"

	code, err := s.Challenge(num, "a", nil, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Verify(num, "xxxxxx", "a"); !errors.Is(err, ErrBadCode) {
		t.Fatalf("wrong code err = %v", err)
	}
	tok, _, err := s.Verify(num, code, "a")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.Number(tok); err != nil || got != num {
		t.Fatalf("Number = %q, %v", got, err)
	}
	if _, _, err := s.Verify(num, code, "a"); !errors.Is(err, ErrBadCode) {
		t.Fatalf("code reused: err = %v", err)
	}
	now = now.Add(16 * time.Minute)
	if _, err := s.Number(tok); !errors.Is(err, ErrNoSession) {
		t.Fatalf("expired token err = %v", err)
	}

	// Attempts are limited: after 5 wrong codes the right one fails too.
	code, err = s.Challenge(num, "b", nil, false)
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		_, _, _ = s.Verify(num, "000000x", "b")
	}
	if _, _, err := s.Verify(num, code, "b"); !errors.Is(err, ErrBadCode) {
		t.Fatalf("code worked after 5 wrong attempts: %v", err)
	}

	// Codes expire.
	code, err = s.Challenge(num, "c", nil, false)
	if err != nil {
		t.Fatal(err)
	}
	now = now.Add(6 * time.Minute)
	if _, _, err := s.Verify(num, code, "c"); !errors.Is(err, ErrBadCode) {
		t.Fatalf("expired code err = %v", err)
	}
}

func TestSessionRateLimits(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	s := NewSessions(SessionConfig{Now: func() time.Time { return now }, PerNumber: 3, PerAddr: 5})
	for i := range 5 {
		if _, err := s.Challenge("+861380013800"+string(rune('1'+i)), "one", nil, false); err != nil {
			t.Fatal(err)
		}
	}
	_, err := s.Challenge("+8613900139000", "one", nil, false)
	var le *LimitError
	if !errors.Is(err, ErrRateLimited) || !errors.As(err, &le) || le.RetryAfter != 10*time.Minute {
		t.Fatalf("6th challenge from one address err = %v", err)
	}
	now = now.Add(11 * time.Minute)
	if _, err := s.Challenge("+8613800138000", "one", nil, false); err != nil {
		t.Fatalf("limit did not reset after the window: %v", err)
	}
}

// TestNumberLimits: the number's limits come from the codes the log says
// were sent (so a restart resets nothing), 3 per 10 minutes and 5 per day
// by default, 1 a day for a restricted number, and a refusal says when to
// try again.
func TestNumberLimits(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	ago := func(ds ...time.Duration) []time.Time {
		var out []time.Time
		for _, d := range ds {
			out = append(out, now.Add(-d))
		}
		return out
	}
	m := time.Minute
	for _, c := range []struct {
		name       string
		sent       []time.Time
		restricted bool
		retry      time.Duration // zero: allowed
	}{
		{"first code", nil, false, 0},
		{"two in the window", ago(1*m, 2*m), false, 0},
		{"three in the window", ago(1*m, 2*m, 4*m), false, 6 * m},
		{"three, unordered", ago(4*m, 1*m, 2*m), false, 6 * m},
		{"three, one just out of the window", ago(1*m, 2*m, 10*m), false, 0},
		{"four today", ago(1*m, 3*time.Hour, 5*time.Hour, 6*time.Hour), false, 0},
		{"five today", ago(1*m, 3*time.Hour, 5*time.Hour, 6*time.Hour, 20*time.Hour), false, 4 * time.Hour},
		{"five, one yesterday", ago(1*m, 3*time.Hour, 5*time.Hour, 6*time.Hour, 24*time.Hour), false, 0},
		{"restricted, none today", ago(25 * time.Hour), true, 0},
		{"restricted, one today", ago(23 * time.Hour), true, time.Hour},
	} {
		s := NewSessions(SessionConfig{Now: func() time.Time { return now }})
		_, err := s.Challenge("+8613800138000", "a", c.sent, c.restricted)
		var le *LimitError
		switch {
		case c.retry == 0 && err != nil:
			t.Errorf("%s: refused: %v", c.name, err)
		case c.retry != 0 && (!errors.As(err, &le) || le.RetryAfter != c.retry):
			t.Errorf("%s: %v, want retry after %s", c.name, err, c.retry)
		}
	}
}

// TestSessionsSayWhyACodeIsRefused: a person is told whether to try again
// (wrong, with the tries left) or to ask for a new code (used, used up by
// wrong tries, expired, none sent).
func TestSessionsSayWhyACodeIsRefused(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	s := NewSessions(SessionConfig{Now: func() time.Time { return now }, MaxAttempts: 3})
	const num = "+8613800138000"
	why := func(code string) (string, int) {
		t.Helper()
		_, _, err := s.Verify(num, code, "a")
		var ce *CodeError
		if !errors.As(err, &ce) || !errors.Is(err, ErrBadCode) {
			t.Fatalf("Verify = %v, want a CodeError", err)
		}
		return ce.Why, ce.Left
	}
	if w, _ := why("123456"); w != CodeNone {
		t.Errorf("before any code: %s", w)
	}
	code, _ := s.Challenge(num, "a", nil, false)
	for left := 2; left > 0; left-- {
		if w, l := why("000000x"); w != CodeWrong || l != left {
			t.Errorf("wrong code: %s, %d left; want %d", w, l, left)
		}
	}
	if w, _ := why("000000x"); w != CodeUsedUp {
		t.Errorf("the last wrong try: %s", w)
	}
	if w, _ := why(code); w != CodeUsedUp {
		t.Errorf("the right code after it was used up: %s", w)
	}
	code, _ = s.Challenge(num, "a", nil, false)
	if _, _, err := s.Verify(num, code, "a"); err != nil {
		t.Fatal(err)
	}
	if w, _ := why(code); w != CodeUsedUp {
		t.Errorf("a code used once: %s", w)
	}
	code, _ = s.Challenge(num, "a", nil, false)
	now = now.Add(6 * time.Minute)
	if w, _ := why(code); w != CodeExpired {
		t.Errorf("an expired code: %s", w)
	}
	if w, _ := why(code); w != CodeNone {
		t.Errorf("an expired code, again: %s", w)
	}
}

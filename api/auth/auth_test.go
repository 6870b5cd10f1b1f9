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

	code, err := s.Challenge(num, "a")
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
	code, err = s.Challenge(num, "b")
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
	code, err = s.Challenge(num, "c")
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
	for i := range 3 {
		if _, err := s.Challenge("+8613800138000", "addr"+string(rune('a'+i))); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Challenge("+8613800138000", "other"); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("4th challenge for one number err = %v", err)
	}
	for i := range 5 {
		if _, err := s.Challenge("+861380013800"+string(rune('1'+i)), "one"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Challenge("+8613900139000", "one"); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("6th challenge from one address err = %v", err)
	}
	now = now.Add(11 * time.Minute)
	if _, err := s.Challenge("+8613800138000", "one"); err != nil {
		t.Fatalf("limit did not reset after the window: %v", err)
	}
}

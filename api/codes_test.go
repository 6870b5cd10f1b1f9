package api

import (
	"context"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/heed/heed/api/auth"
	"github.com/heed/heed/ledger"
)

// restart returns a server over the harness's store with fresh in-memory
// state (sessions, limiters, caches), as after a restart of heed.
func (h *harness) restart(t *testing.T, sessions *auth.Sessions) *harness {
	t.Helper()
	cfg := h.api.cfg
	cfg.Sessions = sessions
	srv := New(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { _ = srv.Run(ctx) }()
	hs := httptest.NewServer(srv)
	t.Cleanup(func() { hs.Close(); cancel() })
	c := *h
	c.api, c.srv = srv, hs
	return &c
}

// challenge asks for a code and returns the status and the Retry-After
// header in seconds (-1 when absent).
func (h *harness) challenge(t *testing.T, number string) (int, int) {
	t.Helper()
	r := h.do("POST", "/v1/me/challenge", "", map[string]any{"number": number})
	if r.status != 202 && strings.Contains(string(r.body), strings.TrimPrefix(number, "+")) {
		t.Errorf("problem body repeats the number: %s", r.body)
	}
	ra := r.header.Get("Retry-After")
	if ra == "" {
		return r.status, -1
	}
	secs, err := strconv.Atoi(ra)
	if err != nil {
		t.Fatalf("Retry-After %q is not seconds", ra)
	}
	return r.status, secs
}

// TestCodeLimitsSurviveRestart: three codes per 10 minutes, counted from
// the log, so a restart does not hand out three more; a refusal is 429
// with Retry-After.
func TestCodeLimitsSurviveRestart(t *testing.T) {
	h := newHarness(t)
	for i := range 3 {
		if st, _ := h.challenge(t, numA); st != 202 {
			t.Fatalf("code %d: %d", i+1, st)
		}
	}
	st, ra := h.challenge(t, numA)
	if st != 429 || ra < 590 || ra > 600 {
		t.Fatalf("4th code: %d, Retry-After %d; want 429 and about 600", st, ra)
	}
	again := h.restart(t, auth.NewSessions(auth.SessionConfig{}))
	if st, ra := again.challenge(t, numA); st != 429 || ra < 590 || ra > 600 {
		t.Fatalf("4th code after a restart: %d, Retry-After %d; want 429 and about 600", st, ra)
	}
	// Another number is not affected.
	if st, _ := again.challenge(t, "+8613900139000"); st != 202 {
		t.Fatalf("another number: %d", st)
	}
}

// TestCodesPerDay: at most five codes a day to a number, however spread.
func TestCodesPerDay(t *testing.T) {
	h := newHarness(t)
	// The 10-minute limit out of the way: the daily one is under test.
	h = h.restart(t, auth.NewSessions(auth.SessionConfig{Window: time.Nanosecond}))
	for i := range 5 {
		if st, _ := h.challenge(t, numA); st != 202 {
			t.Fatalf("code %d: %d", i+1, st)
		}
	}
	if st, ra := h.challenge(t, numA); st != 429 || ra < 86_000 || ra > 86_400 {
		t.Fatalf("6th code in a day: %d, Retry-After %d; want 429 and about a day", st, ra)
	}
	if st, ra := h.restart(t, auth.NewSessions(auth.SessionConfig{Window: time.Nanosecond})).challenge(t, numA); st != 429 || ra < 86_000 {
		t.Fatalf("6th code after a restart: %d, Retry-After %d", st, ra)
	}
}

// TestCodesToRestrictedNumbers: a number on a national list, or that opted
// out of everything at a business, can still sign in, once a day.
func TestCodesToRestrictedNumbers(t *testing.T) {
	h := newHarness(t)
	const listed, optedOut, optedIn = "+8613700000001", "+8613700000002", "+8613700000003"
	sub := hmacPseudonyms{}.Pseudonym(listed)
	ev, err := ledger.NewEvent("", sub, time.Now(), ledger.SuppressionListed{Scope: "global", List: "national-dnc"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.store.Append(context.Background(), ledger.SubjectStream(sub), ledger.Any(), []ledger.Event{ev}); err != nil {
		t.Fatal(err)
	}
	if r := h.do("POST", "/v1/withdrawals", h.a, map[string]any{"number": optedOut, "all": true, "via": "sms_keyword"}); r.status != 201 {
		t.Fatalf("withdrawal: %d %s", r.status, r.body)
	}
	// Opted out of one purpose only: not restricted.
	if r := h.do("POST", "/v1/withdrawals", h.a, map[string]any{"number": optedIn, "purposes": []string{"marketing"}, "channels": []string{"sms"}, "via": "web"}); r.status != 201 {
		t.Fatalf("withdrawal: %d %s", r.status, r.body)
	}
	for _, n := range []string{listed, optedOut} {
		if st, _ := h.challenge(t, n); st != 202 {
			t.Fatalf("first code to a restricted number: %d", st)
		}
		if st, ra := h.challenge(t, n); st != 429 || ra < 86_000 {
			t.Fatalf("second code to a restricted number: %d, Retry-After %d", st, ra)
		}
	}
	for i := range 3 {
		if st, _ := h.challenge(t, optedIn); st != 202 {
			t.Fatalf("code %d to a number that withdrew marketing only: %d", i+1, st)
		}
	}
}

// TestCodeLanguage: Chinese for a Chinese number, English otherwise.
func TestCodeLanguage(t *testing.T) {
	h := newHarness(t)
	for n, want := range map[string]string{numA: "验证码", "+14155552671": "verification code", "+447911123456": "verification code"} {
		if st, _ := h.challenge(t, n); st != 202 {
			t.Fatalf("challenge: %d", st)
		}
		if got := h.texter.text(n); !strings.Contains(got, want) || h.texter.code(n) == "" {
			t.Errorf("code to a %s number: %q", n[:3], got)
		}
	}
}

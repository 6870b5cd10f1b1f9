package api

import (
	"fmt"
	"testing"
)

func TestClientIP(t *testing.T) {
	trusted, err := ParseProxies("10.0.0.0/8, 192.0.2.7, ::1")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, remote string
		xff          []string
		want         string
	}{
		{"no proxy", "203.0.113.5:4000", nil, "203.0.113.5"},
		{"untrusted peer's header is ignored", "203.0.113.5:4000", []string{"198.51.100.1"}, "203.0.113.5"},
		{"trusted proxy", "10.1.2.3:4000", []string{"198.51.100.1"}, "198.51.100.1"},
		{"forged entries left of the proxy's", "10.1.2.3:4000", []string{"1.1.1.1, 198.51.100.1"}, "198.51.100.1"},
		{"chain of trusted proxies", "10.1.2.3:4000", []string{"198.51.100.1, 192.0.2.7", "10.9.9.9"}, "198.51.100.1"},
		{"garbled hop stops the walk", "10.1.2.3:4000", []string{"198.51.100.1, nonsense"}, "10.1.2.3"},
		{"only proxies", "10.1.2.3:4000", []string{"10.0.0.1"}, "10.1.2.3"},
		{"trusted proxy without header", "[::1]:4000", nil, "::1"},
		{"IPv4-mapped client", "[::1]:4000", []string{"::ffff:198.51.100.9"}, "198.51.100.9"},
		{"no port", "203.0.113.5", nil, "203.0.113.5"},
	} {
		if got := clientIP(tc.remote, tc.xff, trusted); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
	for _, bad := range []string{"10.0.0.0/33", "example.com", "1.2.3"} {
		if _, err := ParseProxies(bad); err == nil {
			t.Errorf("ParseProxies(%q) accepted it", bad)
		}
	}
}

// TestChallengeLimitBehindProxy: behind a trusted proxy each customer has
// the per-address allowance of code requests; without trust in the proxy,
// X-Forwarded-For changes nothing and everyone shares the proxy's.
func TestChallengeLimitBehindProxy(t *testing.T) {
	h := newHarness(t)
	num := 0
	challenge := func(xff string) int {
		num++
		body := map[string]any{"number": fmt.Sprintf("+86138%08d", num)}
		return h.do("POST", "/v1/me/challenge", "", body, "X-Forwarded-For", xff).status
	}
	trusted, err := ParseProxies("127.0.0.0/8, ::1")
	if err != nil {
		t.Fatal(err)
	}
	h.api.cfg.TrustedProxies = trusted
	for i := range 30 {
		if st := challenge("198.51.100.1"); st != 202 {
			t.Fatalf("request %d from a customer behind the proxy: %d", i+1, st)
		}
	}
	if st := challenge("198.51.100.1"); st != 429 {
		t.Fatalf("31st request from one customer: %d, want 429", st)
	}
	if st := challenge("198.51.100.2"); st != 202 {
		t.Fatalf("another customer behind the same proxy: %d, want 202", st)
	}

	h.api.cfg.TrustedProxies = nil
	for i := range 30 {
		if st := challenge(fmt.Sprintf("203.0.113.%d", i)); st != 202 {
			t.Fatalf("untrusted request %d: %d", i+1, st)
		}
	}
	if st := challenge("203.0.113.200"); st != 429 {
		t.Fatalf("a forged X-Forwarded-For from an untrusted peer escaped the limit: %d", st)
	}
}

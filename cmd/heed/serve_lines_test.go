package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestServeRefusesAmbiguousLines: heed serve does not start when a tenant
// with several lines has not named its SMS sender (the lowest-sorting
// line, a voice line, would have become it), or when sign-in codes would
// go from a tenant's line.
func TestServeRefusesAmbiguousLines(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "heed.json")
	if err := os.WriteFile(cfg, []byte(`{"lines": {"10690001": "acme", "95500": "acme"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"several lines, no sender", []string{"--config", cfg}, "senders"},
		{"codes from a tenant's line", []string{"--lines", "10690001=acme", "--verify-line", "10690001"}, "verify-line"},
		{"no codes at all", []string{"--codes-per-day", "0"}, "codes-per"},
	} {
		args := append([]string{"serve", "--data", t.TempDir(), "--listen", "127.0.0.1:0"}, c.args...)
		code, _, stderr := exitCode(t, heedCmd(t, args...))
		if code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("%s: exit %d, %s", c.name, code, lastLine(stderr))
		}
	}
}

package main

import (
	"context"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestBenchSchedule runs the planned reminders' bench small: a book
// imported, its timers derived (up to three a relationship, one for each
// reminder of the firing book), read back after a restart, every reminder
// of the firing book fired and delivered, and the last line the README
// quotes.
func TestBenchSchedule(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	out := captureStdout(t, func() {
		if err := benchSchedule(context.Background(), []string{"--data", dir, "--relationships", "300", "--fire", "200",
			"--rate", "500", "--workers", "16"}); err != nil {
			t.Fatal(err)
		}
	})
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 5 {
		t.Fatalf("output:\n%s", out)
	}
	if !regexp.MustCompile(`^imported=300 `).MatchString(lines[0]) {
		t.Errorf("import line %q", lines[0])
	}
	if !regexp.MustCompile(`^fired=200 elapsed_s=\S+ delivered=200 `).MatchString(lines[len(lines)-2]) {
		t.Errorf("want every reminder of the firing book fired and delivered: %q", lines[len(lines)-2])
	}
	m := regexp.MustCompile(`^imported_per_s=\d+ pending=(\d+) bytes_per_timer=\d+ ready_s=\d+\.\d+ fired_per_s=\d+ lag_p99_ms=\d+$`).FindStringSubmatch(lines[len(lines)-1])
	if m == nil {
		t.Fatalf("last line %q", lines[len(lines)-1])
	}
	// 300 relationships under three offsets (fewer when the expiry is
	// too near for the first) and 200 of the firing book.
	if p, _ := strconv.Atoi(m[1]); p < 1050 || p > 1100 {
		t.Errorf("pending %d, want 1050-1100", p)
	}
	if err := benchSchedule(context.Background(), []string{"--data", dir}); err == nil {
		t.Error("a data directory holding a ledger accepted")
	}
}

package main

import (
	"context"
	"regexp"
	"strings"
	"testing"
)

// TestBenchSIP runs the in-process call gate bench small: real decisions
// over the synthetic book (customers redirected, opted-out numbers and
// strangers declined), the disk's flush latency beside it, and the last
// line the README quotes.
func TestBenchSIP(t *testing.T) {
	out := captureStdout(t, func() {
		if err := benchSIP(context.Background(), []string{"--calls", "300", "--book", "100", "--conns", "4"}); err != nil {
			t.Fatal(err)
		}
	})
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 3 {
		t.Fatalf("output:\n%s", out)
	}
	if m := regexp.MustCompile(`^answered=300 lost=0 elapsed_s=\S+ answers=302:(\d+),603:(\d+) p50_ms=\S+$`).FindStringSubmatch(lines[len(lines)-3]); m == nil {
		t.Errorf("want every INVITE answered, some redirected and some declined: %q", lines[len(lines)-3])
	}
	if !regexp.MustCompile(`^disk_flush_p50_ms=\d+\.\d+ disk_flush_p99_ms=\d+\.\d+$`).MatchString(lines[len(lines)-2]) {
		t.Errorf("flush line %q", lines[len(lines)-2])
	}
	if !regexp.MustCompile(`^invites_per_s=\d+ p99_ms=\d+\.\d+$`).MatchString(lines[len(lines)-1]) {
		t.Errorf("last line %q", lines[len(lines)-1])
	}
	if err := benchSIP(context.Background(), []string{"--calls", "0"}); err == nil {
		t.Error("--calls 0 accepted")
	}
}

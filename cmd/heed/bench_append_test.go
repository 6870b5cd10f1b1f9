package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/heed/heed/ledger"
	"github.com/heed/heed/ledger/bolt"
)

// TestBenchEventSize checks --size: events come out within a few bytes of
// the size asked for, or as the smallest ConsentGranted when less is asked.
func TestBenchEventSize(t *testing.T) {
	size := func(want int) int {
		e, err := benchEvent(want)
		if err != nil {
			t.Fatal(err)
		}
		// Fill what the store fills as benchEvent's own measurement does, so
		// only the times' trailing zeros (at most 9 bytes each) can differ.
		e.ID, e.Stream, e.Revision, e.Position, e.RecordedAt = "0190a8f4-0000-7000-8000-000000000000",
			ledger.ContactStream(e.Tenant, e.Subject), 1, 1000000, time.Now()
		leaf, err := e.Leaf()
		if err != nil {
			t.Fatal(err)
		}
		return len(leaf)
	}
	smallest := size(0)
	if smallest > 420 {
		t.Fatalf("the smallest bench event is %d bytes; ~300-byte events are the point", smallest)
	}
	for _, want := range []int{100, 300, 1000, 4000} {
		if d := size(want) - max(want, smallest); d < -20 || d > 20 {
			t.Errorf("--size %d gives %d-byte events (smallest %d)", want, size(want), smallest)
		}
	}
}

func TestBenchAppend(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	out := captureStdout(t, func() {
		if err := benchAppend(context.Background(), []string{"--data", dir, "--appenders", "4", "--events", "60", "--size", "300"}); err != nil {
			t.Fatal(err)
		}
	})
	lines := strings.Split(strings.TrimSpace(out), "\n")
	last := lines[len(lines)-1]
	if !regexp.MustCompile(`^appends_per_s=\d+ appenders=4 events=60 p99_ms=\d+\.\d+$`).MatchString(last) {
		t.Fatalf("last line %q", last)
	}
	s, err := bolt.Open(filepath.Join(dir, storeFile), bolt.ReadOnly())
	if err != nil {
		t.Fatal(err)
	}
	h, _ := s.Head(context.Background())
	s.Close()
	if h != 60 {
		t.Fatalf("data dir holds %d events, want 60", h)
	}
	// A second run adds to the same directory, and its slices say where
	// the log stood at each slice's end.
	out = captureStdout(t, func() {
		if err := benchAppend(context.Background(), []string{"--data", dir, "--appenders", "4", "--events", "20", "--report-every", "10"}); err != nil {
			t.Fatalf("second run: %v", err)
		}
	})
	var ends []string
	for _, m := range regexp.MustCompile(`(?m)^slice_end=(\d+) appends_per_s=\d+ p99_ms=\d+\.\d+ written_bytes_per_event=\d+$`).FindAllStringSubmatch(out, -1) {
		ends = append(ends, m[1])
	}
	// Two slices of 10 after the 60 already there; a slice whose line was
	// overtaken by the next one's is folded into it.
	if got := strings.Join(ends, ","); got != "70,80" && got != "80" {
		t.Fatalf("slices end at %v, want 70,80:\n%s", ends, out)
	}
	// The events are sealed, so the directory verifies.
	if err := verify(context.Background(), []string{"--data", dir}); err != nil {
		t.Fatalf("verify after bench: %v", err)
	}
	if err := benchAppend(context.Background(), []string{"--data", dir, "--events", "0"}); err == nil {
		t.Fatal("--events 0 accepted")
	}
}

func captureStdout(t *testing.T, fn func()) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stdout
	os.Stdout = w
	done := make(chan string)
	go func() {
		b, _ := io.ReadAll(r)
		done <- string(b)
	}()
	fn()
	os.Stdout = old
	w.Close()
	return <-done
}

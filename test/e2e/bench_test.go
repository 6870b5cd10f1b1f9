package e2e

import (
	"os/exec"
	"regexp"
	"strconv"
	"testing"
)

// TestBenchHTTPDecisionsMix: the decisions load is a mix a user would
// recognise (both answers occur, in about the planned share) and no
// request fails; appends are all recorded.
func TestBenchHTTPDecisionsMix(t *testing.T) {
	s := startServe(t, t.TempDir())
	defer s.stop(t)
	outcome := func(out []byte, name string) int {
		m := regexp.MustCompile(`\b` + name + `=(\d+)`).FindSubmatch(out)
		if m == nil {
			return 0
		}
		n, _ := strconv.Atoi(string(m[1]))
		return n
	}
	run := func(op string) []byte {
		out, err := exec.Command(heed(t), "bench", "http", "--url", s.url, "--admin-key", s.admin, "--op", op,
			"--numbers", "400", "--conns", "4", "--duration", "1s").Output()
		if err != nil {
			t.Fatalf("bench http --op %s: %v\n%s", op, err, s.stderr)
		}
		return out
	}

	out := run("decisions")
	t.Logf("%s", out)
	allowed, denied := outcome(out, "allowed"), outcome(out, "denied")
	if allowed == 0 || denied == 0 {
		t.Fatalf("decisions are not a mix: %s", out)
	}
	// Planned: 3 of 8 questions are allowed (relationship and service, or
	// consent); the rest are denied.
	if share := float64(allowed) / float64(allowed+denied); share < 0.30 || share > 0.45 {
		t.Errorf("allowed share %.2f, want about 0.375: %s", share, out)
	}
	if regexp.MustCompile(`\b(error|[45]\d\d)=`).Match(out) {
		t.Errorf("failed requests: %s", out)
	}

	out = run("appends")
	if outcome(out, "201") == 0 || regexp.MustCompile(`\b(error|[45]\d\d)=`).Match(out) {
		t.Errorf("appends: %s", out)
	}
}

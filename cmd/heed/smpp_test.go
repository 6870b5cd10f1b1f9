package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// heedEnv makes the test binary act as the heed binary (see TestHeedMain),
// so the commands are run as a user runs them, exit codes and all, without
// building anything.
const heedEnv = "HEED_TEST_MAIN"

// TestHeedMain is not a test: it is the entry point of the child processes
// heedCmd starts.
func TestHeedMain(t *testing.T) {
	if os.Getenv(heedEnv) != "1" {
		return
	}
	args := os.Args
	for i, a := range args {
		if a == "--" {
			args = args[i+1:]
			break
		}
	}
	os.Exit(run(args))
}

// heedCmd returns `heed args...` as a process.
func heedCmd(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"-test.run=^TestHeedMain$", "--"}, args...)...)
	cmd.Env = append(os.Environ(), heedEnv+"=1")
	return cmd
}

// exitCode runs cmd and returns its exit code, stdout and stderr.
func exitCode(t *testing.T, cmd *exec.Cmd) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, out.String(), errb.String()
	case errors.As(err, &ee):
		return ee.ExitCode(), out.String(), errb.String()
	}
	t.Fatal(err)
	return 0, "", ""
}

// smscProc is a running `heed smsc`, whose JSON log lines are read as they come.
type smscProc struct {
	cmd   *exec.Cmd
	lines chan map[string]any
	raw   chan string
}

func startSMSC(t *testing.T, args ...string) (*smscProc, string) {
	t.Helper()
	cmd := heedCmd(t, append([]string{"smsc", "--listen", "127.0.0.1:0"}, args...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &smscProc{cmd: cmd, lines: make(chan map[string]any, 64), raw: make(chan string, 64)}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	go p.read(stderr)
	ev := p.next(t, "smsc listening")
	addr, _ := ev["addr"].(string)
	if addr == "" || strings.HasSuffix(addr, ":0") {
		t.Fatalf("smsc did not say where it listens: %v", ev)
	}
	return p, addr
}

func (p *smscProc) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		var ev map[string]any
		if json.Unmarshal(sc.Bytes(), &ev) == nil {
			p.lines <- ev
		} else {
			p.raw <- sc.Text()
		}
	}
	close(p.lines)
}

// next returns the next log line whose msg is msg.
func (p *smscProc) next(t *testing.T, msg string) map[string]any {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case ev, ok := <-p.lines:
			if !ok {
				t.Fatalf("smsc exited before logging %q", msg)
			}
			if ev["msg"] == msg {
				return ev
			}
		case line := <-p.raw:
			t.Logf("smsc: %s", line)
		case <-timeout:
			t.Fatalf("smsc did not log %q in 20s", msg)
		}
	}
}

// stop ends the smsc as an operator would, with SIGTERM, and returns the
// counters it logs on the way out.
func (p *smscProc) stop(t *testing.T) map[string]any {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	ev := p.next(t, "smsc stopped")
	if err := p.cmd.Wait(); err != nil {
		t.Errorf("smsc exited with %v after SIGTERM", err)
	}
	return ev
}

var benchLine = regexp.MustCompile(`^submits_per_s=(\d+) window=(\d+) messages=(\d+)$`)

// lastLine returns the last non-empty line of s.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// TestBenchAgainstSMSC: `heed bench smpp` against a separate `heed smsc`
// process prints the agreed last line, and the SMSC counted every submit.
func TestBenchAgainstSMSC(t *testing.T) {
	smsc, addr := startSMSC(t)
	code, out, errOut := exitCode(t, heedCmd(t, "bench", "smpp", "--smsc", addr, "--messages", "2000", "--window", "10"))
	if code != 0 {
		t.Fatalf("bench exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	m := benchLine.FindStringSubmatch(lastLine(out))
	if m == nil {
		t.Fatalf("last line %q does not read submits_per_s=R window=W messages=N", lastLine(out))
	}
	if r, _ := strconv.Atoi(m[1]); r <= 0 || m[2] != "10" || m[3] != "2000" {
		t.Errorf("last line %q", m[0])
	}
	st := smsc.stop(t)
	if st["submits"] != 2000.0 || st["binds"] != 1.0 || st["unbinds"] != 1.0 || st["throttled"] != 0.0 {
		t.Errorf("smsc counted %v, want 2000 submits on one bind, unbound at the end", st)
	}
}

// TestBenchInProcess: without --smsc the bench runs its own simulator.
func TestBenchInProcess(t *testing.T) {
	code, out, errOut := exitCode(t, heedCmd(t, "bench", "smpp", "--messages", "300", "--window", "100"))
	if code != 0 {
		t.Fatalf("bench exit %d\n%s%s", code, out, errOut)
	}
	if m := benchLine.FindStringSubmatch(lastLine(out)); m == nil || m[2] != "100" || m[3] != "300" {
		t.Errorf("last line %q", lastLine(out))
	}
}

// TestBenchWrongCredentials: a refused bind fails the bench at once with
// the status named, and the SMSC saw no submit.
func TestBenchWrongCredentials(t *testing.T) {
	smsc, addr := startSMSC(t, "--system-id", "heed", "--password", "right")
	start := time.Now()
	code, out, errOut := exitCode(t, heedCmd(t, "bench", "smpp", "--smsc", addr, "--messages", "10", "--password", "wrong"))
	if code != 1 || !strings.Contains(errOut, "ESME_RINVPASWD") {
		t.Errorf("exit %d, stderr %q: want 1 and the status named", code, errOut)
	}
	if strings.Contains(out, "submits_per_s") {
		t.Errorf("a failed bench printed a rate: %q", out)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("refused bind took %v to report", d)
	}
	if st := smsc.stop(t); st["binds_refused"] != 1.0 || st["submits"] != 0.0 {
		t.Errorf("smsc counted %v", st)
	}
}

// TestSMPPCommandUsage: a command-line mistake exits 2 and says what was wrong.
func TestSMPPCommandUsage(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"bench", "smpp", "--window", "0"}, "--window"},
		{[]string{"bench", "smpp", "--messages", "-5"}, "--messages"},
		{[]string{"bench", "smpp", "--messages", "many"}, `invalid value "many"`},
		{[]string{"bench", "smpp", "--smsc"}, "flag needs an argument"},
		{[]string{"bench", "smpp", "extra"}, `unexpected argument "extra"`},
		{[]string{"smsc", "--failure-ratio", "2"}, "--failure-ratio"},
		{[]string{"smsc", "--receipt-delay", "soon"}, `invalid value "soon"`},
		{[]string{"smsc", "--no-such-flag"}, "flag provided but not defined"},
		{[]string{"smsc", "--listen", "127.0.0.1:0", "--receipt-queue", "-1"}, "--receipt-queue"},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, out, errOut := exitCode(t, heedCmd(t, tc.args...))
			if code != 2 || !strings.Contains(errOut, tc.want) {
				t.Errorf("exit %d, stderr %q: want 2 and %q", code, errOut, tc.want)
			}
			if out != "" {
				t.Errorf("stdout %q on a usage error", out)
			}
		})
	}
}

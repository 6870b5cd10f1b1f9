package schedule

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/heed/heed/ledger"
	"github.com/heed/heed/ledger/bolt"
	"github.com/heed/heed/ledger/pii"
	"github.com/heed/heed/notify"
	"github.com/heed/heed/projections"
	"github.com/heed/heed/smpp"
	"github.com/heed/heed/smpp/sim"
)

// The crash test's child is this test binary run again with these set.
const (
	childDir  = "HEED_SCHEDULE_CHILD_DIR"
	childSMSC = "HEED_SCHEDULE_CHILD_SMSC"
	// childDrain makes the child exit once nothing is pending.
	childDrain = "HEED_SCHEDULE_CHILD_DRAIN"
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(childDir); dir != "" {
		if err := child(dir, os.Getenv(childSMSC), os.Getenv(childDrain) != ""); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

var crashKEK = bytes.Repeat([]byte{3}, 32)

// crashRules leave out the rules that would defer the test's burst of
// reminders (its clock is the real one, and its numbers share a region).
func crashRules() *projections.Config {
	c := projections.Default()
	c.Disabled = []string{projections.RuleQuietHours, projections.RuleRegionBurst}
	if err := c.Validate(); err != nil {
		panic(err)
	}
	return c
}

// child is heed's firing path as serve wires it, over the bbolt store in
// dir and the SMSC at smsc: projections, notifier (which marks what a
// kill left dispatched as outcome unknown), scheduler with snapshots.
func child(dir, smsc string, drain bool) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := bolt.Open(filepath.Join(dir, "ledger.db"))
	if err != nil {
		return err
	}
	defer st.Close()
	keys, err := pii.OpenKeys(filepath.Join(dir, "keys.db"), crashKEK)
	if err != nil {
		return err
	}
	defer keys.Close()
	rules := crashRules()
	runner, err := projections.NewRunner(st, rules, projections.Options{})
	if err != nil {
		return err
	}
	go func() { _ = runner.Run(ctx) }()
	sender := notify.NewSMSCs([]notify.SMSCRoute{{Name: "sim"}}, line)
	sender.Bind(map[string]smpp.Config{"sim": {Addr: smsc, SystemID: "heed", Source: line, Window: 50, Handler: sender.Handler("sim")}})
	sealed := pii.Seal(st, keys)
	n := notify.New(notify.Config{Store: sealed, Decider: notify.Projections(runner), Sender: sender, Sealer: keys,
		Lines: map[string]string{line: tenant}, DefaultLine: line, SMSCOf: sender.Route, Pseudonym: pseudo})
	if _, err := n.Recover(ctx); err != nil {
		return err
	}
	sender.Attach(n)
	s, err := New(ctx, Config{Store: sealed, Notifier: n, Decider: notify.Projections(runner), Keys: keys, Rules: rules,
		SMSCOf: sender.Route, Ready: func(string) bool { return sender.Links()[0].Stats.Bound },
		Dir: filepath.Join(dir, "schedule"), SnapshotEvery: 100 * time.Millisecond, Workers: 16})
	if err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	if !drain {
		return <-done
	}
	// Exit once every timer has fired; Run returns once the reminders in
	// flight have their submit outcome recorded.
	for {
		select {
		case err := <-done:
			return err
		case <-time.After(20 * time.Millisecond):
		}
		head, err := st.Head(ctx)
		if err != nil {
			return err
		}
		stats := s.Stats()
		if stats.Position >= head && stats.Pending == 0 && stats.Dirty == 0 {
			cancel()
			return <-done
		}
	}
}

// TestKilledWhileFiring: a process firing a burst of due timers is killed
// with SIGKILL at random moments, 20 times, then runs until none is
// pending. The SMSC saw at most one submit per reminder, exactly one for
// every reminder the log says was submitted, and every timer fired: none
// was lost, and none went twice.
func TestKilledWhileFiring(t *testing.T) {
	dir := t.TempDir()
	var mu sync.Mutex
	submits := map[string]int{} // destination → submits
	srv, err := sim.Start("127.0.0.1:0", sim.Config{ReceiptDelay: 5 * time.Millisecond, OnSubmit: func(s sim.Submit) {
		mu.Lock()
		submits["+"+s.PDU.Dest]++
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()

	// The book: one timer per relationship, falling due over a few
	// seconds from now, so that kills land before, during and after the
	// firing.
	const n = 600
	numbers := make([]string, n)
	func() {
		st, err := bolt.Open(filepath.Join(dir, "ledger.db"))
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		keys, err := pii.OpenKeys(filepath.Join(dir, "keys.db"), crashKEK)
		if err != nil {
			t.Fatal(err)
		}
		defer keys.Close()
		sealed := pii.Seal(st, keys)
		ctx := context.Background()
		put := func(stream, subject string, payload any) {
			e, err := ledger.NewEvent(tenant, subject, time.Now(), payload)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := sealed.Append(ctx, stream, ledger.Any(), []ledger.Event{e}); err != nil {
				t.Fatal(err)
			}
		}
		ts := ledger.TemplateStream(tenant, "renewal")
		put(ts, "", &ledger.TemplateProposed{TemplateID: "renewal", Version: 1, Purpose: ledger.PurposeService, Signature: "平安保险",
			Text: "您的保单{policy:ref}将于{expires_on:date}到期"})
		put(ts, "", &ledger.TemplateApproved{TemplateID: "renewal", Version: 1})
		put(ledger.PlanStream(tenant, "motor"), "", &ledger.ReminderPlanDefined{PlanID: "motor", Version: 1, Offsets: []string{"1h"},
			Window: ledger.SendWindow{Start: "00:00", End: "24:00"}, TemplateID: "renewal", TemplateVersion: 1,
			Params: map[string]string{"policy": ledger.SourceContractRef, "expires_on": ledger.SourceExpiresAt}})
		start := time.Now().Add(2 * time.Second)
		for i := range n {
			numbers[i] = fmt.Sprintf("+86139%08d", i)
			exp := start.Add(time.Hour + time.Duration(i)*10*time.Millisecond)
			put(ledger.ContactStream(tenant, pseudo(numbers[i])), pseudo(numbers[i]), &ledger.RelationshipStarted{
				ContractRef: fmt.Sprintf("P-%d", i), StartsAt: exp.AddDate(-1, 0, 0), ExpiresAt: &exp, Plan: "motor", Number: numbers[i]})
		}
	}()

	var out bytes.Buffer
	run := func(drain bool) *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), childDir+"="+dir, childSMSC+"="+srv.Addr())
		if drain {
			cmd.Env = append(cmd.Env, childDrain+"=1")
		}
		out.Reset()
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if cmd.ProcessState == nil {
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
			}
		})
		return cmd
	}
	for round := range 20 {
		cmd := run(false)
		// A random moment: the kill is the event under test, not a wait
		// for a condition.
		time.Sleep(time.Duration(100+rand.IntN(500)) * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		_ = cmd.Wait()
	}
	cmd := run(true)
	finished := make(chan error, 1)
	go func() { finished <- cmd.Wait() }()
	select {
	case err := <-finished:
		if err != nil {
			t.Fatalf("the last run: %v", err)
		}
	case <-time.After(2 * time.Minute):
		_ = cmd.Process.Kill()
		<-finished
		t.Fatalf("the last run did not drain the timers:\n%s", out.String())
	}

	st, err := bolt.Open(filepath.Join(dir, "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	mu.Lock()
	defer mu.Unlock()
	states := map[string]int{}
	for _, num := range numbers {
		v, err := Read(context.Background(), st, tenant, pseudo(num))
		if err != nil {
			t.Fatal(err)
		}
		if len(v.Timers) != 1 {
			t.Fatalf("%d timers for one relationship", len(v.Timers))
		}
		var tm *Timer
		for _, x := range v.Timers {
			tm = x
		}
		states[tm.State]++
		got := submits[num]
		switch {
		case tm.State == "":
			t.Errorf("timer %s never fired", tm.ReminderID)
		case got > 1:
			t.Errorf("reminder %s submitted %d times", tm.ReminderID, got)
		case tm.State == notify.StateSubmitted || tm.State == notify.StateDelivered:
			if got != 1 {
				t.Errorf("reminder %s is %s in the log, the SMSC saw %d submits", tm.ReminderID, tm.State, got)
			}
		case tm.State == notify.StateUnknown:
			// Killed between its dispatch and the record of its submit:
			// never resubmitted, whether or not it reached the SMSC.
		default:
			t.Errorf("reminder %s ended %s", tm.ReminderID, tm.State)
		}
	}
	t.Logf("%d timers after 20 kills: %v; simulator saw %d submits", n, states, srv.Stats().Submits)
}

package book_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/heed/heed/ledger"
	"github.com/heed/heed/ledger/bolt"
	"github.com/heed/heed/ledger/book"
	"github.com/heed/heed/ledger/kurrent"
	"github.com/heed/heed/ledger/kurrent/fake"
	"github.com/heed/heed/ledger/pii"
)

// The crash test runs an import in a child process (this test binary,
// told so by the environment) and kills it.
const (
	envStore = "BOOK_CRASH_STORE" // bolt:PATH or a kurrentdb:// URL
	envRows  = "BOOK_CRASH_ROWS"
	envKeys  = "BOOK_CRASH_KEYS" // the data keys' file
)

func TestMain(m *testing.M) {
	if s := os.Getenv(envStore); s != "" {
		os.Exit(crashChild(s))
	}
	os.Exit(m.Run())
}

// crashChild imports the synthetic book into the store s names, printing
// how many rows are done every millisecond, until it is killed.
func crashChild(s string) int {
	n, _ := strconv.Atoi(os.Getenv(envRows))
	st, err := openCrashStore(s)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	keys, err := pii.OpenKeys(os.Getenv(envKeys), bytes.Repeat([]byte{7}, 32))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	im, err := book.New(book.Config{Store: st, Keys: keys, Tenant: "acme", Actor: "child", Subject: subject, Now: func() time.Time { return now }, Workers: 32})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	go func() {
		for {
			fmt.Println(im.Progress().Done())
			time.Sleep(time.Millisecond)
		}
	}()
	if _, err := im.Run(context.Background(), book.Synthetic(n, 0, "renewal", now), book.CSV); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("finished")
	return 0
}

func openCrashStore(s string) (ledger.Store, error) {
	if path, ok := strings.CutPrefix(s, "bolt:"); ok {
		return bolt.Open(path, bolt.WithTimeout(10*time.Second))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return kurrent.Open(ctx, s, kurrent.Options{Backoff: 5 * time.Millisecond})
}

// TestCrashResume kills an import with SIGKILL three times at growing
// points, then runs it to the end: every row is recorded exactly once,
// and the last run counts what the killed ones did as already recorded.
// On the embedded store and on KurrentDB (its fake, which outlives the
// killed children).
func TestCrashResume(t *testing.T) {
	const rows = 1000
	targets := map[string]func(t *testing.T) string{
		"bolt": func(t *testing.T) string { return "bolt:" + filepath.Join(t.TempDir(), "ledger.db") },
		"kurrent": func(t *testing.T) string {
			srv, err := fake.Start()
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(srv.Close)
			return srv.URL()
		},
	}
	for name, target := range targets {
		t.Run(name, func(t *testing.T) {
			s := target(t)
			keys := filepath.Join(t.TempDir(), "keys.db")
			st, err := openCrashStore(s)
			if err != nil {
				t.Fatal(err)
			}
			definePlan(t, st, "acme", "renewal")
			st.Close()
			for _, at := range []int64{rows / 10, rows / 3, rows / 2} {
				killAt(t, s, keys, rows, at)
			}
			if st, err = openCrashStore(s); err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			k, err := pii.OpenKeys(keys, bytes.Repeat([]byte{7}, 32))
			if err != nil {
				t.Fatal(err)
			}
			defer k.Close()
			before := len(relationships(t, st, "acme"))
			if before < rows/2 || before >= rows {
				t.Fatalf("%d rows recorded by the killed runs, want at least %d and fewer than %d", before, rows/2, rows)
			}
			im, err := book.New(book.Config{Store: st, Keys: k, Tenant: "acme", Actor: "parent", Subject: subject, Now: func() time.Time { return now }})
			if err != nil {
				t.Fatal(err)
			}
			c, err := im.Run(context.Background(), book.Synthetic(rows, 0, "renewal", now), book.CSV)
			if err != nil || c.Rows != rows || c.Refused != 0 || c.Already != int64(before) || c.Recorded != int64(rows-before) {
				t.Fatalf("the last run: %+v, %v (%d recorded before)", c, err, before)
			}
			if got := relationships(t, st, "acme"); len(got) != rows {
				t.Fatalf("%d relationships, want %d", len(got), rows)
			}
		})
	}
}

// killAt runs the child on store s and kills it once it has done at rows.
func killAt(t *testing.T, s, keys string, rows int, at int64) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envStore+"="+s, envKeys+"="+keys, envRows+"="+strconv.Itoa(rows))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	killed := false
	for sc.Scan() {
		if sc.Text() == "finished" {
			break
		}
		if done, _ := strconv.ParseInt(sc.Text(), 10, 64); done >= at {
			if err := cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			killed = true
			break
		}
	}
	go func() {
		for sc.Scan() {
		}
	}()
	_ = cmd.Wait()
	if !killed {
		t.Fatalf("the child finished before it was killed at %d rows", at)
	}
}

package bolt_test

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/heed/heed/ledger"
	"github.com/heed/heed/ledger/bolt"
	"github.com/heed/heed/ledger/storetest"
)

// crashEnv names the data file a crash child appends to.
const crashEnv = "HEED_BOLT_CRASH_CHILD"

func TestMain(m *testing.M) {
	if path := os.Getenv(crashEnv); path != "" {
		crashChild(path)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// crashChild appends under load until it is killed, printing one line per
// acknowledged event, only after Append has returned:
// "position id leafhash".
func crashChild(path string) {
	// Fold often, so kills land before, during and after folds.
	s, err := bolt.Open(path, bolt.WithTimeout(5*time.Second), bolt.FoldEvery(50))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for k := 0; ; k++ {
				evs := make([]ledger.Event, 1+k%3)
				for i := range evs {
					evs[i] = storetest.Consent("crash", fmt.Sprintf("g%d", g), 300)
					if g%2 == 1 {
						// Ids out of order, as ids derived from content are,
						// take the stream index's path (see ids.go).
						evs[i].ID = uuid.NewString()
					}
				}
				out, err := s.Append(context.Background(), fmt.Sprintf("crash-%d-%d", g, k%5), ledger.Any(), evs)
				if err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(1)
				}
				var b strings.Builder
				for _, e := range out {
					leaf, _ := e.Leaf()
					h := tlog.RecordHash(leaf)
					fmt.Fprintf(&b, "%d %s %s\n", e.Position, e.ID, hex.EncodeToString(h[:]))
				}
				mu.Lock()
				io.WriteString(os.Stdout, b.String())
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}

type ack struct {
	id   string
	hash string
}

// TestCrash kills an appending child with SIGKILL at random moments and
// checks after each restart that every acknowledged event is stored
// unchanged and found by its id, positions are gap-free and the tree
// matches the leaves.
func TestCrash(t *testing.T) {
	path := filepath.Join(t.TempDir(), "heed.db")
	acked := map[uint64]ack{}
	const rounds = 20
	for round := range rounds {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), crashEnv+"="+path)
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string, 1024)
		go func() {
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		// Kill at a random moment once the child is acknowledging appends.
		var got []string
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("round %d: child exited before acknowledging anything", round)
			}
			got = append(got, l)
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			t.Fatalf("round %d: child acknowledged nothing", round)
		}
		time.Sleep(time.Duration(rand.IntN(150)) * time.Millisecond)
		if err := cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		for l := range lines {
			got = append(got, l)
		}
		cmd.Wait()
		for _, l := range got {
			f := strings.Fields(l)
			if len(f) != 3 {
				t.Fatalf("round %d: bad line %q", round, l)
			}
			pos, err := strconv.ParseUint(f[0], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			acked[pos] = ack{f[1], f[2]}
		}

		s, err := bolt.Open(path)
		if err != nil {
			t.Fatalf("round %d: reopen after kill: %v", round, err)
		}
		leaves, err := checkLog(s)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		for pos, a := range acked {
			if pos > uint64(len(leaves)) {
				t.Fatalf("round %d: acknowledged position %d lost (head %d)", round, pos, len(leaves))
			}
			h := tlog.RecordHash(leaves[pos-1])
			e, _ := ledger.ParseLeaf(leaves[pos-1])
			if hex.EncodeToString(h[:]) != a.hash || e.ID != a.id {
				t.Fatalf("round %d: position %d holds %s, acknowledged %s", round, pos, e.ID, a.id)
			}
			if got, found, err := s.Lookup(context.Background(), a.id); err != nil || !found || got.Position != pos {
				t.Fatalf("round %d: the id index lost acknowledged id %s at %d: %v, %v", round, a.id, pos, found, err)
			}
		}
		if err := checkStreams(s, leaves); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		t.Logf("round %d: %d acknowledged this round, head %d", round, len(got), len(leaves))
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if len(acked) < rounds {
		t.Fatalf("only %d appends acknowledged in %d rounds", len(acked), rounds)
	}
}

// checkStreams checks that every stream reads back as exactly its events
// in the log, revisions 1..n, whether their index entries were folded into
// the file before the kill or are rebuilt from the log at open.
func checkStreams(s *bolt.Store, leaves [][]byte) error {
	want := map[string][]uint64{}
	for i, l := range leaves {
		e, err := ledger.ParseLeaf(l)
		if err != nil {
			return err
		}
		if e.Revision != uint64(len(want[e.Stream])+1) {
			return fmt.Errorf("position %d: stream %s revision %d after %d", i+1, e.Stream, e.Revision, len(want[e.Stream]))
		}
		want[e.Stream] = append(want[e.Stream], uint64(i+1))
	}
	for stream, pos := range want {
		got, err := s.ReadStream(context.Background(), stream, 1, 0)
		if err != nil {
			return err
		}
		if len(got) != len(pos) {
			return fmt.Errorf("stream %s: read %d events, log holds %d", stream, len(got), len(pos))
		}
		for i := range got {
			if got[i].Position != pos[i] || got[i].Revision != uint64(i+1) {
				return fmt.Errorf("stream %s: event %d at position %d revision %d, want %d", stream, i, got[i].Position, got[i].Revision, pos[i])
			}
		}
	}
	return nil
}

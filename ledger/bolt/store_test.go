package bolt_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.etcd.io/bbolt"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/heed/heed/ledger"
	"github.com/heed/heed/ledger/bolt"
	"github.com/heed/heed/ledger/storetest"
)

// checkLog reads the whole log and checks it is gap-free from 1 to the
// head, that every stored leaf is canonical, and that the stored tree is
// the RFC 6962 tree of those leaves. It returns the leaves.
func checkLog(s *bolt.Store) ([][]byte, error) {
	ctx := context.Background()
	head, err := s.Head(ctx)
	if err != nil {
		return nil, err
	}
	leaves, err := s.ReadLeaves(ctx, 1, 0)
	if err != nil {
		return nil, err
	}
	if uint64(len(leaves)) != head {
		return nil, fmt.Errorf("log holds %d leaves, head is %d", len(leaves), head)
	}
	var want []tlog.Hash
	mem := tlog.HashReaderFunc(func(ix []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(ix))
		for i, x := range ix {
			out[i] = want[x]
		}
		return out, nil
	})
	for i, leaf := range leaves {
		e, err := ledger.ParseLeaf(leaf)
		if err != nil {
			return nil, fmt.Errorf("leaf %d: %v", i+1, err)
		}
		if e.Position != uint64(i+1) {
			return nil, fmt.Errorf("leaf %d holds position %d", i+1, e.Position)
		}
		hs, err := tlog.StoredHashes(int64(i), leaf, mem)
		if err != nil {
			return nil, err
		}
		want = append(want, hs...)
	}
	if s.TreeSize() != int64(head) {
		return nil, fmt.Errorf("tree size %d, head %d", s.TreeSize(), head)
	}
	ix := make([]int64, len(want))
	for i := range ix {
		ix[i] = int64(i)
	}
	got, err := s.ReadHashes(ix)
	if err != nil {
		return nil, err
	}
	for i := range want {
		if got[i] != want[i] {
			return nil, fmt.Errorf("stored hash %d differs from the one recomputed from the leaves", i)
		}
	}
	if head > 0 {
		th, err := tlog.TreeHash(int64(head), s)
		if err != nil {
			return nil, err
		}
		if wh, _ := tlog.TreeHash(int64(head), mem); th != wh {
			return nil, fmt.Errorf("tree hash differs")
		}
	}
	if _, err := s.ReadHashes([]int64{int64(len(want))}); !errors.Is(err, ledger.ErrNotFound) {
		return nil, fmt.Errorf("hash past the tree: %v, want ErrNotFound", err)
	}
	return leaves, nil
}

func appendN(t *testing.T, s ledger.Store, stream string, n int) []ledger.Event {
	t.Helper()
	evs := make([]ledger.Event, n)
	for i := range evs {
		evs[i] = storetest.Consent("acme", fmt.Sprintf("s%d", i), 300)
	}
	out, err := s.Append(context.Background(), stream, ledger.Any(), evs)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestTreeAndLeaves(t *testing.T) {
	s, _ := openTemp(t)
	defer s.Close()
	var out []ledger.Event
	for i := range 37 {
		out = append(out, appendN(t, s, fmt.Sprintf("st%d", i%3), 1+i%4)...)
	}
	leaves, err := checkLog(s)
	if err != nil {
		t.Fatal(err)
	}
	// The stored bytes are exactly the canonical leaves of what Append
	// returned.
	for i := range out {
		want, _ := out[i].Leaf()
		if !bytes.Equal(leaves[i], want) {
			t.Fatalf("leaf %d\n got %s\nwant %s", i+1, leaves[i], want)
		}
	}
	page, err := s.ReadLeaves(context.Background(), 10, 5)
	if err != nil || len(page) != 5 || !bytes.Equal(page[0], leaves[9]) {
		t.Fatalf("ReadLeaves(10, 5): %d leaves, %v", len(page), err)
	}
}

func TestReopenKeepsLog(t *testing.T) {
	s, path := openTemp(t)
	ctx := context.Background()
	first := appendN(t, s, "st", 5)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := bolt.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.ReadStream(ctx, "st", 1, 0)
	if err != nil || len(got) != 5 || got[4].ID != first[4].ID {
		t.Fatalf("after reopen: %d events, %v", len(got), err)
	}
	// The id index survives too: a retry after restart is still a no-op.
	again, err := s.Append(ctx, "st", ledger.NoStream(), first[:5])
	if err != nil || again[0].Position != 1 {
		t.Fatalf("retry after reopen: %v", err)
	}
	next := appendN(t, s, "st", 1)
	if next[0].Position != 6 || next[0].Revision != 6 {
		t.Fatalf("append after reopen at position %d revision %d, want 6, 6", next[0].Position, next[0].Revision)
	}
	if _, err := checkLog(s); err != nil {
		t.Fatal(err)
	}
}

func fileSum(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

func TestCorruptFileRefused(t *testing.T) {
	// A real store to damage.
	s, good := openTemp(t)
	appendN(t, s, "st", 50)
	s.Close()
	orig, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	// edit writes from (when given) to path, then changes it through bbolt.
	edit := func(path string, from []byte, change func(*bbolt.Tx) error) {
		if from != nil {
			os.WriteFile(path, from, 0o600)
		}
		db, err := bbolt.Open(path, 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if err := db.Update(change); err != nil {
			t.Fatal(err)
		}
	}
	garbage := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i*7919 + i>>3)
		}
		return b
	}
	tests := []struct {
		name   string
		damage func(path string)
	}{
		{"not a bolt file", func(path string) { os.WriteFile(path, []byte("name,number\nalice,+8613800000000\n"), 0o600) }},
		{"random bytes", func(path string) { os.WriteFile(path, garbage(64<<10), 0o600) }},
		{"both meta pages overwritten", func(path string) {
			b := append([]byte(nil), orig...)
			copy(b[:2*4096], garbage(2*4096))
			os.WriteFile(path, b, 0o600)
		}},
		{"truncated", func(path string) { os.WriteFile(path, orig[:32<<10], 0o600) }},
		{"other bolt database", func(path string) {
			edit(path, nil, func(tx *bbolt.Tx) error { _, err := tx.CreateBucket([]byte("widgets")); return err })
		}},
		{"last event altered", func(path string) {
			edit(path, orig, func(tx *bbolt.Tx) error {
				b := tx.Bucket([]byte("events"))
				k, v := b.Cursor().Last()
				return b.Put(k, bytes.Replace(v, []byte("service"), []byte("marketi"), 1))
			})
		}},
		{"event dropped", func(path string) {
			edit(path, orig, func(tx *bbolt.Tx) error {
				b := tx.Bucket([]byte("events"))
				k, _ := b.Cursor().Last()
				return b.Delete(k)
			})
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "heed.db")
			tc.damage(path)
			before := fileSum(t, path)
			for _, opts := range [][]bolt.Option{nil, {bolt.ReadOnly()}} {
				s, err := bolt.Open(path, opts...)
				if err == nil {
					s.Close()
					t.Fatal("Open accepted a damaged file")
				}
				if !errors.Is(err, bolt.ErrCorrupt) {
					t.Fatalf("err = %v, want ErrCorrupt", err)
				}
				if bytes.Contains([]byte(err.Error()), []byte("+86")) {
					t.Fatalf("error quotes file content: %v", err)
				}
			}
			if fileSum(t, path) != before {
				t.Fatal("Open modified the damaged file")
			}
		})
	}
}

func TestReadOnly(t *testing.T) {
	s, path := openTemp(t)
	appendN(t, s, "st", 3)
	s.Close()
	before := fileSum(t, path)
	ro, err := bolt.Open(path, bolt.ReadOnly())
	if err != nil {
		t.Fatal(err)
	}
	// A second reader may share the file.
	ro2, err := bolt.Open(path, bolt.ReadOnly())
	if err != nil {
		t.Fatal(err)
	}
	ro2.Close()
	if _, err := ro.Append(context.Background(), "st", ledger.Any(), []ledger.Event{storetest.Consent("a", "b", 0)}); !errors.Is(err, bolt.ErrReadOnly) {
		t.Fatalf("append to read-only store: %v", err)
	}
	if _, err := checkLog(ro); err != nil {
		t.Fatal(err)
	}
	ro.Close()
	if fileSum(t, path) != before {
		t.Fatal("read-only open changed the file")
	}
	missing := filepath.Join(t.TempDir(), "nothing.db")
	if _, err := bolt.Open(missing, bolt.ReadOnly()); err == nil {
		t.Fatal("read-only open of a missing file succeeded")
	}
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("read-only open created a file")
	}
}

func TestSecondOpenerInUse(t *testing.T) {
	s, path := openTemp(t)
	defer s.Close()
	start := time.Now()
	_, err := bolt.Open(path, bolt.WithTimeout(100*time.Millisecond))
	if !errors.Is(err, bolt.ErrInUse) {
		t.Fatalf("second opener: %v, want ErrInUse", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatal("second opener waited far past its timeout")
	}
}

// TestFailedCommit fails the commit of a batch shared by many appenders:
// every one of them gets the error, none of their events is visible, and
// the store keeps working.
func TestFailedCommit(t *testing.T) {
	s, _ := openTemp(t)
	defer s.Close()
	ctx := context.Background()
	appendN(t, s, "before", 2)

	release := make(chan struct{})
	var calls, sizes []int
	var mu sync.Mutex
	boom := errors.New("injected write failure")
	bolt.SetBeforeCommit(s, func(n int) error {
		mu.Lock()
		calls = append(calls, n)
		first := len(calls) == 1
		mu.Unlock()
		if first {
			<-release // hold the first batch so the others queue up behind it
			return nil
		}
		mu.Lock()
		sizes = append(sizes, n)
		mu.Unlock()
		return boom
	})
	const n = 20
	errs := make([]error, n+1)
	var wg sync.WaitGroup
	wg.Go(func() {
		_, errs[n] = s.Append(ctx, "first", ledger.Any(), []ledger.Event{storetest.Consent("a", "x", 300)})
	})
	for !func() bool { mu.Lock(); defer mu.Unlock(); return len(calls) == 1 }() {
		time.Sleep(time.Millisecond)
	}
	for i := range n {
		wg.Go(func() {
			_, errs[i] = s.Append(ctx, fmt.Sprintf("batch-%d", i%3), ledger.Any(),
				[]ledger.Event{storetest.Consent("a", "y", 300), storetest.Consent("a", "z", 300)})
		})
	}
	time.Sleep(100 * time.Millisecond) // let them queue
	close(release)
	wg.Wait()
	bolt.SetBeforeCommit(s, nil)
	if errs[n] != nil {
		t.Fatalf("the held batch failed: %v", errs[n])
	}
	for i := range n {
		if !errors.Is(errs[i], boom) {
			t.Fatalf("append %d: %v, want the commit failure", i, errs[i])
		}
	}
	if len(sizes) == 0 || sizes[0] < 4 {
		t.Fatalf("failed batches wrote %v events; the test needs appenders sharing a batch", sizes)
	}
	if h, _ := s.Head(ctx); h != 3 {
		t.Fatalf("head %d after a failed commit, want 3", h)
	}
	for i := range 3 {
		if rev, _ := s.StreamRevision(ctx, fmt.Sprintf("batch-%d", i)); rev != 0 {
			t.Fatalf("failed stream at revision %d", rev)
		}
	}
	out := appendN(t, s, "batch-0", 2)
	if out[0].Position != 4 || out[0].Revision != 1 {
		t.Fatalf("append after failure at position %d revision %d, want 4, 1", out[0].Position, out[0].Revision)
	}
	if _, err := checkLog(s); err != nil {
		t.Fatal(err)
	}
}

// TestDiskFull hits a real write failure: the file may not grow past its
// size cap, so a commit that needs more pages fails inside bbolt.
func TestDiskFull(t *testing.T) {
	const limit = 256 << 10
	s, path := openTemp(t, bolt.WithMaxSize(limit))
	ctx := context.Background()
	var failed error
	var ok int
	for i := 0; i < 1000 && failed == nil; i++ {
		evs := make([]ledger.Event, 20)
		for j := range evs {
			evs[j] = storetest.Consent("a", "b", 300)
		}
		_, failed = s.Append(ctx, fmt.Sprintf("st%d", i), ledger.Any(), evs)
		if failed == nil {
			ok++
		}
	}
	if failed == nil {
		t.Fatal("the size cap never stopped an append")
	}
	if errors.Is(failed, ledger.ErrInvalid) || errors.Is(failed, bolt.ErrFailed) {
		t.Fatalf("disk-full append failed with %v", failed)
	}
	if h, _ := s.Head(ctx); h != uint64(ok*20) {
		t.Fatalf("head %d after %d good appends of 20", h, ok)
	}
	if _, err := checkLog(s); err != nil {
		t.Fatal(err)
	}
	s.Close()
	// With room again the same file takes appends.
	s, err := bolt.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	out := appendN(t, s, "after", 1)
	if out[0].Position != uint64(ok*20+1) {
		t.Fatalf("append after reopen at %d", out[0].Position)
	}
	if _, err := checkLog(s); err != nil {
		t.Fatal(err)
	}
}

// TestNoAckBeforeCommit holds a batch just before its commit and checks
// its appender is still waiting: acknowledgement follows the commit (and
// its fsync), never precedes it.
func TestNoAckBeforeCommit(t *testing.T) {
	s, _ := openTemp(t)
	defer s.Close()
	held, release := make(chan struct{}), make(chan struct{})
	bolt.SetBeforeCommit(s, func(int) error {
		close(held)
		<-release
		return nil
	})
	done := make(chan error, 1)
	go func() {
		_, err := s.Append(context.Background(), "st", ledger.Any(), []ledger.Event{storetest.Consent("a", "b", 0)})
		done <- err
	}()
	<-held
	select {
	case err := <-done:
		t.Fatalf("append returned (%v) before its transaction committed", err)
	case <-time.After(50 * time.Millisecond):
	}
	if h, _ := s.Head(context.Background()); h != 0 {
		t.Fatalf("head %d before the commit", h)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if h, _ := s.Head(context.Background()); h != 1 {
		t.Fatalf("head %d after the commit", h)
	}
}

// TestRetriesInOneBatch queues identical appends behind a held commit so
// they share the next batch: the first writes, the others must be seen as
// retries of it before anything is committed.
func TestRetriesInOneBatch(t *testing.T) {
	s, _ := openTemp(t)
	defer s.Close()
	ctx := context.Background()
	held, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	var sizes []int
	var mu sync.Mutex
	bolt.SetBeforeCommit(s, func(n int) error {
		mu.Lock()
		sizes = append(sizes, n)
		mu.Unlock()
		once.Do(func() { close(held); <-release })
		return nil
	})
	var wg sync.WaitGroup
	wg.Go(func() { appendN(t, s, "first", 1) })
	<-held
	in := []ledger.Event{storetest.Consent("a", "x", 0), storetest.Consent("a", "y", 0)}
	const n = 8
	outs := make([][]ledger.Event, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { outs[i], errs[i] = s.Append(ctx, "retried", ledger.NoStream(), in) })
	}
	time.Sleep(100 * time.Millisecond)
	close(release)
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("caller %d: %v", i, errs[i])
		}
		if outs[i][0].Position != 2 || outs[i][1].Position != 3 {
			t.Fatalf("caller %d got positions %d, %d; want 2, 3", i, outs[i][0].Position, outs[i][1].Position)
		}
	}
	if len(sizes) != 2 || sizes[1] != 2 {
		t.Fatalf("batches wrote %v events; want the retries to share one batch writing 2", sizes)
	}
	if h, _ := s.Head(ctx); h != 3 {
		t.Fatalf("head %d, want 3", h)
	}
}

// TestBatchAfterFailedCommit fails a commit while the next batch has been
// prepared on top of it: that batch must be prepared again as if the failed
// one never happened, at the same positions and revisions.
func TestBatchAfterFailedCommit(t *testing.T) {
	s, _ := openTemp(t)
	defer s.Close()
	ctx := context.Background()
	started := []chan struct{}{make(chan struct{}), make(chan struct{})}
	release := []chan struct{}{make(chan struct{}), make(chan struct{})}
	boom := errors.New("injected write failure")
	calls := 0
	bolt.SetBeforeCommit(s, func(int) error {
		calls++ // commits are serial
		if calls > 2 {
			return nil
		}
		close(started[calls-1])
		<-release[calls-1]
		if calls == 2 {
			return boom
		}
		return nil
	})
	two := func() []ledger.Event {
		return []ledger.Event{storetest.Consent("a", "x", 0), storetest.Consent("a", "y", 0)}
	}
	var wg sync.WaitGroup
	var errA, errB, errC error
	var outC []ledger.Event
	wg.Go(func() { _, errA = s.Append(ctx, "a", ledger.NoStream(), two()) })
	<-started[0]
	wg.Go(func() { _, errB = s.Append(ctx, "shared", ledger.NoStream(), two()) })
	time.Sleep(50 * time.Millisecond) // B is prepared on top of A
	close(release[0])
	<-started[1]
	wg.Go(func() { outC, errC = s.Append(ctx, "shared", ledger.NoStream(), two()) })
	time.Sleep(50 * time.Millisecond) // C is prepared on top of B, which then fails
	close(release[1])
	wg.Wait()
	if errA != nil || !errors.Is(errB, boom) {
		t.Fatalf("A: %v, B: %v; want A committed and B failed", errA, errB)
	}
	if errC != nil {
		t.Fatalf("C, after B failed: %v", errC)
	}
	if outC[0].Position != 3 || outC[0].Revision != 1 {
		t.Fatalf("C stored at position %d revision %d, want 3 and 1", outC[0].Position, outC[0].Revision)
	}
	if _, err := checkLog(s); err != nil {
		t.Fatal(err)
	}
}

// TestFileFromBeforeFolding opens a file whose stream index was written
// entry by entry, as before folding existed (no folded position in meta),
// appends without folding, reopens, and finds every stream.
func TestFileFromBeforeFolding(t *testing.T) {
	ctx := context.Background()
	// Folding after every commit puts the entries of all but the last
	// few commits in the bucket (a fold of a commit's two entries, its
	// stream's and its id's, takes two commits): the fillers push the
	// old streams' entries in.
	s, path := openTemp(t, bolt.FoldEvery(1))
	for i := range 8 {
		stream := fmt.Sprintf("old-%d", i)
		if i >= 4 {
			stream = fmt.Sprintf("fill-%d", i)
		}
		if _, err := s.Append(ctx, stream, ledger.NoStream(), []ledger.Event{storetest.Consent("t", "s", 0)}); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bbolt.Tx) error { return tx.Bucket([]byte("meta")).Delete([]byte("folded")) }); err != nil {
		t.Fatal(err)
	}
	db.Close()
	for round, stream := range []string{"new-0", "new-1"} {
		s, err := bolt.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Append(ctx, stream, ledger.NoStream(), []ledger.Event{storetest.Consent("t", "s", 0)}); err != nil {
			t.Fatal(err)
		}
		s.Close()
		s, err = bolt.Open(path, bolt.ReadOnly())
		if err != nil {
			t.Fatal(err)
		}
		for _, st := range []string{"old-0", "old-2", "new-0", stream} {
			got, err := s.ReadStream(ctx, st, 1, 0)
			if err != nil || len(got) != 1 || got[0].Revision != 1 {
				t.Fatalf("round %d: stream %s: %d events, %v", round, st, len(got), err)
			}
		}
		s.Close()
	}
}

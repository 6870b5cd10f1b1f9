//go:build linux

package bolt_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/heed/heed/ledger"
	"github.com/heed/heed/ledger/bolt"
	"github.com/heed/heed/ledger/storetest"
)

const seekHole = 4 // SEEK_HOLE on Linux

// TestZeroedAhead checks that the space just past the last page is written
// (not a hole that the next commit's fsync would have to allocate) and
// holds zeros, and that the zeros, written while commits run, never land on
// the store's pages: the log and tree check out before and after a reopen.
func TestZeroedAhead(t *testing.T) {
	s, path := openTemp(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Go(func() {
			for i := range 600 {
				e := storetest.Consent("acme", fmt.Sprintf("s%d-%d", w, i), 1500)
				if _, err := s.Append(ctx, fmt.Sprintf("contact-%d-%d", w, i), ledger.NoStream(), []ledger.Event{e}); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	hw := bolt.HighWater(s)
	if hw < 4<<20 {
		t.Fatalf("file holds %d bytes of pages; the test wants several refills", hw)
	}
	// The top-up after the last commit runs in the background.
	var hole int64
	for deadline := time.Now().Add(10 * time.Second); ; {
		hole = holeAfter(t, path, hw)
		if hole >= hw+bolt.AheadTarget(hw)/2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if hole < hw+bolt.AheadTarget(hw)/2 {
		t.Fatalf("%d bytes written past the last page, want at least %d", hole-hw, bolt.AheadTarget(hw)/2)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	past, err := io.ReadAll(io.NewSectionReader(f, hw, hole-hw))
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if i := bytes.IndexFunc(past, func(r rune) bool { return r != 0 }); i >= 0 {
		t.Fatalf("byte %d past the last page is not zero", i)
	}
	if _, err := checkLog(s); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = bolt.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	leaves, err := checkLog(s)
	if err != nil {
		t.Fatal(err)
	}
	if len(leaves) != 8*600 {
		t.Fatalf("%d events after reopening, want %d", len(leaves), 8*600)
	}
}

// holeAfter is the offset of the first hole at or after off (the file's
// size if there is none).
func holeAfter(t *testing.T, path string, off int64) int64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n, err := syscall.Seek(int(f.Fd()), off, seekHole)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

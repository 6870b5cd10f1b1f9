package bolt_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/heed/heed/ledger"
	"github.com/heed/heed/ledger/storetest"
)

// TestObserveAccountsForEveryDurableAppend checks what an operator reads
// off the commit and queue histograms: one commit duration per group
// commit and one wait per append it made durable, none for an append
// the store refused.
func TestObserveAccountsForEveryDurableAppend(t *testing.T) {
	s, _ := openTemp(t)
	defer s.Close()
	var (
		mu      sync.Mutex
		commits int
		waits   []time.Duration
		bad     []string
	)
	s.Observe(func(commit time.Duration, waited []time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		commits++
		if commit <= 0 {
			bad = append(bad, fmt.Sprintf("commit took %v", commit))
		}
		waits = append(waits, waited...)
	})
	ctx := context.Background()
	const appenders, each = 16, 20
	var wg sync.WaitGroup
	for w := range appenders {
		wg.Go(func() {
			for i := range each {
				if _, err := s.Append(ctx, fmt.Sprintf("contact-%d-%d", w, i), ledger.NoStream(), []ledger.Event{storetest.Consent("acme", "s", 300)}); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	// Refused: the stream exists. It waited, but nothing became durable.
	if _, err := s.Append(ctx, "contact-0-0", ledger.NoStream(), []ledger.Event{storetest.Consent("acme", "s", 300)}); !errors.Is(err, ledger.ErrWrongRevision) {
		t.Fatalf("append to an existing stream as new: %v", err)
	}
	s.Observe(nil)
	if _, err := s.Append(ctx, "contact-after", ledger.NoStream(), []ledger.Event{storetest.Consent("acme", "s", 300)}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, b := range bad {
		t.Error(b)
	}
	if len(waits) != appenders*each {
		t.Errorf("%d waits observed, want one for each of the %d durable appends", len(waits), appenders*each)
	}
	if commits == 0 || commits > appenders*each {
		t.Errorf("%d commits observed for %d appends", commits, appenders*each)
	}
	for _, w := range waits {
		if w < 0 {
			t.Fatalf("negative wait %v", w)
		}
	}
}

package smpp_test

import (
	"sync"
	"testing"
	"time"

	"github.com/heed/heed/smpp"
	"github.com/heed/heed/smpp/sim"
)

// TestTimeoutKeepsWindowSlot: a request that timed out keeps its window
// slot until its late answer comes, since the SMSC still holds it; the
// late answer frees it and goes to nobody, and the link stays up.
func TestTimeoutKeepsWindowSlot(t *testing.T) {
	s, _ := startSim(t, sim.Config{ResponseDelay: 400 * time.Millisecond})
	c := dial(t, smpp.Config{Addr: s.Addr(), Window: 2, ResponseTimeout: 100 * time.Millisecond})
	for i := range 2 {
		if _, err := c.Submit(ctx(t), smpp.Message{To: testNumber, Text: "slow"}); smpp.KindOf(err) != smpp.Unknown {
			t.Fatalf("submit %d: %v, want outcome unknown", i, err)
		}
		// Its late answer frees the slot, so the next timeout does not
		// find the whole window held.
		waitFor(t, func() bool { return c.Stats().Late == int64(i+1) })
	}
	s.SetResponseDelay(0)
	if _, err := c.Submit(ctx(t), smpp.Message{To: testNumber, Text: "fast"}); err != nil {
		t.Fatal(err)
	}
	if st := c.Stats(); st.Binds != 1 || st.Rebinds != 0 || st.Drops != 0 || st.Unknown != 2 || st.Accepted != 1 {
		t.Errorf("client stats %+v", st)
	}
}

// TestTimeoutsFillWindow: when every window slot is held by a request
// that timed out, the SMSC is answering nothing; the client drops the
// link and binds again instead of letting submits wait for slots that
// may never come back.
func TestTimeoutsFillWindow(t *testing.T) {
	s, _ := startSim(t, sim.Config{ResponseDelay: 2 * time.Second})
	c := dial(t, smpp.Config{Addr: s.Addr(), Window: 3, ResponseTimeout: 100 * time.Millisecond})
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.Submit(ctx(t), smpp.Message{To: testNumber, Text: "slow"}); smpp.KindOf(err) != smpp.Unknown {
				t.Errorf("%v, want outcome unknown", err)
			}
		}()
	}
	wg.Wait()
	waitFor(t, func() bool { return s.Stats().Binds == 2 })
	s.SetResponseDelay(0)
	if _, err := c.Submit(ctx(t), smpp.Message{To: testNumber, Text: "after"}); err != nil {
		t.Fatal(err)
	}
	if st := c.Stats(); st.Drops != 1 || st.Rebinds != 1 || st.Late != 0 || st.Unknown != 3 {
		t.Errorf("client stats %+v", st)
	}
}

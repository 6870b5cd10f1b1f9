package smpp_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heed/heed/smpp"
	"github.com/heed/heed/smpp/pdu"
	"github.com/heed/heed/smpp/sim"
)

// warnings keeps the client's log records at Warn and above.
type warnings struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warnings) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }

func (w *warnings) Handle(_ context.Context, r slog.Record) error {
	s := r.Message
	r.Attrs(func(a slog.Attr) bool { s += " " + a.String(); return true })
	w.mu.Lock()
	w.msgs = append(w.msgs, s)
	w.mu.Unlock()
	return nil
}

func (w *warnings) WithAttrs([]slog.Attr) slog.Handler { return w }
func (w *warnings) WithGroup(string) slog.Handler      { return w }

func (w *warnings) all() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.msgs...)
}

// TestCloseAfterUnbindIsClean: the simulator closes the socket right after
// its unbind_resp, which the client's reader may see before Close's own
// close runs. That is the end Close asked for: no warning, no drop, no
// second bind, and the submits answered before it stay accepted. Many
// rounds, since the two closes race.
func TestCloseAfterUnbindIsClean(t *testing.T) {
	s, _ := startSim(t, sim.Config{})
	rounds := 150
	if testing.Short() {
		rounds = 30
	}
	for i := range rounds {
		mode := smpp.Transceiver
		if i%3 == 2 {
			mode = smpp.TransmitterReceiver // two links unbound one after the other
		}
		w := &warnings{}
		c := dial(t, smpp.Config{Addr: s.Addr(), Mode: mode, Window: 4, MinBackoff: time.Millisecond, Logger: slog.New(w)})
		if mode == smpp.TransmitterReceiver {
			// Dial waits for the transmitter only; a Close during the
			// receiver's bind is another matter.
			waitFor(t, func() bool { return c.Stats().Binds == 2 })
		}
		var wg sync.WaitGroup
		for j := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := c.Submit(ctx(t), smpp.Message{To: testNumber, Text: fmt.Sprint("m", j)}); err != nil {
					t.Errorf("round %d submit: %v", i, err)
				}
			}()
		}
		wg.Wait()
		if err := c.Close(ctx(t)); err != nil {
			t.Fatalf("round %d close: %v", i, err)
		}
		// A reconnect would show as a bind after Close returned.
		time.Sleep(2 * time.Millisecond)
		st := c.Stats()
		want := int64(1)
		if mode == smpp.TransmitterReceiver {
			want = 2
		}
		if st.Drops != 0 || st.Binds != want || st.Accepted != 4 || st.Unknown != 0 {
			t.Fatalf("round %d (%v): stats %+v", i, mode, st)
		}
		if ws := w.all(); len(ws) != 0 {
			t.Fatalf("round %d: warnings after our own unbind: %q", i, ws)
		}
	}
	st := s.Stats()
	if want := int64(rounds + rounds/3); st.Binds != want || st.Unbinds != want {
		t.Errorf("simulator saw %d binds and %d unbinds, want %d of each", st.Binds, st.Unbinds, want)
	}
}

// TestDropBeforeCloseIsADrop: the SMSC going away on its own is still a
// dropped link (warned, counted, bound again), even with Close to follow.
func TestDropBeforeCloseIsADrop(t *testing.T) {
	s, _ := startSim(t, sim.Config{})
	w := &warnings{}
	c := dial(t, smpp.Config{Addr: s.Addr(), Logger: slog.New(w)})
	s.DropAll()
	waitFor(t, func() bool { return c.Stats().Binds == 2 })
	if _, err := c.Submit(ctx(t), smpp.Message{To: testNumber, Text: "after"}); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if st := c.Stats(); st.Drops != 1 {
		t.Errorf("drops = %d, want 1", st.Drops)
	}
	ws := w.all()
	if len(ws) != 1 || !strings.Contains(ws[0], "smpp link closed") || !strings.Contains(ws[0], "link dropped") {
		t.Errorf("warnings %q, want one dropped link", ws)
	}
}

// fakeSMSC answers the bind and then, on unbind, closes the connection
// without unbind_resp.
func fakeSMSC(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		br := bufio.NewReader(conn)
		var buf, out []byte
		for {
			var p *pdu.PDU
			p, buf, err = pdu.Read(br, buf)
			if err != nil || p.Command == pdu.Unbind {
				return
			}
			if p.Command == pdu.BindTransceiver {
				out, _ = p.Response(pdu.OK).Encode(out[:0])
				if _, err := conn.Write(out); err != nil {
					return
				}
			}
		}
	}()
	return ln.Addr().String()
}

// TestPeerClosesOnUnbind: an SMSC that closes on unbind without answering
// it. Close reports the missing unbind_resp, as ErrUnbound and not as a
// dropped link, and nothing is warned of, counted as a drop or bound again.
func TestPeerClosesOnUnbind(t *testing.T) {
	w := &warnings{}
	c := dial(t, smpp.Config{Addr: fakeSMSC(t), EnquireLink: -1, Logger: slog.New(w)})
	err := c.Close(ctx(t))
	if !errors.Is(err, smpp.ErrUnbound) || errors.Is(err, smpp.ErrLinkDropped) {
		t.Errorf("close: %v, want unbound and not dropped", err)
	}
	if st := c.Stats(); st.Drops != 0 || st.Binds != 1 {
		t.Errorf("stats %+v", st)
	}
	if ws := w.all(); len(ws) != 0 {
		t.Errorf("warnings %q", ws)
	}
}

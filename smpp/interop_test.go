package smpp_test

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heed/heed/smpp"
	"github.com/heed/heed/smpp/sim"
	"github.com/heed/heed/smpp/text"
)

// These tests run heed against node-smpp (npm smpp 0.5.1), an SMPP
// implementation written independently of heed, installed by `make deps`.

// peersDir finds testdata/peers and fails, never skips, when node-smpp is
// not installed.
func peersDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("HEED_PEERS")
	if dir == "" {
		dir = filepath.Join("..", "testdata", "peers")
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "smpp", "package.json")); err != nil {
		t.Fatalf("node-smpp is not installed in %s (%v): run `make deps`", dir, err)
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatalf("node not found (%v): run `make deps`", err)
	}
	return dir
}

// peer is a running node script whose JSON lines are read as events.
type peer struct {
	cmd     *exec.Cmd
	events  chan map[string]any
	backlog []map[string]any
	mu      sync.Mutex
	log     []string
}

func startPeer(t *testing.T, script string, args ...string) *peer {
	t.Helper()
	dir := peersDir(t)
	cmd := exec.Command("node", append([]string{filepath.Join(dir, script)}, args...)...)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &peer{cmd: cmd, events: make(chan map[string]any, 100)}
	go p.read(stdout)
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			p.mu.Lock()
			t.Logf("%s said:\n%s", script, strings.Join(p.log, "\n"))
			p.mu.Unlock()
		}
	})
	return p
}

func (p *peer) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		p.mu.Lock()
		p.log = append(p.log, sc.Text())
		p.mu.Unlock()
		var ev map[string]any
		if json.Unmarshal(sc.Bytes(), &ev) == nil {
			p.events <- ev
		}
	}
	close(p.events)
}

// next returns the first event not yet taken that is named one of names;
// others wait in the backlog for a later call.
func (p *peer) next(t *testing.T, names ...string) map[string]any {
	t.Helper()
	match := func(ev map[string]any) bool {
		for _, n := range names {
			if ev["event"] == n {
				return true
			}
		}
		return false
	}
	for i, ev := range p.backlog {
		if match(ev) {
			p.backlog = append(p.backlog[:i], p.backlog[i+1:]...)
			return ev
		}
	}
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev, ok := <-p.events:
			if !ok {
				t.Fatalf("peer exited while waiting for %v", names)
			}
			if match(ev) {
				return ev
			}
			p.backlog = append(p.backlog, ev)
		case <-timeout:
			t.Fatalf("no %v from the peer in 10s", names)
		}
	}
}

// TestInteropNodeSMSC: heed's client against node-smpp as the SMSC.
func TestInteropNodeSMSC(t *testing.T) {
	p := startPeer(t, "smsc.js", "--password", "secret")
	addr := "127.0.0.1:" + jsonNumber(p.next(t, "listening")["port"])

	// Wrong credentials first: a clear error naming the status.
	cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := smpp.Dial(cctx, smpp.Config{Addr: addr, SystemID: "heed", Password: "wrong"})
	if !errors.Is(err, smpp.ErrBindRefused) || !strings.Contains(err.Error(), "ESME_RINVPASWD") {
		t.Fatalf("wrong password: %v", err)
	}
	p.next(t, "bind_transceiver")

	inbound := make(chan smpp.Inbound, 10)
	c, err := smpp.Dial(cctx, smpp.Config{Addr: addr, SystemID: "heed", Password: "secret", Source: "95500",
		EnquireLink: 50 * time.Millisecond, Handler: func(in smpp.Inbound) error { inbound <- in; return nil }})
	if err != nil {
		t.Fatal(err)
	}
	if ev := p.next(t, "bind_transceiver"); ev["ok"] != true || ev["system_id"] != "heed" {
		t.Fatalf("bind seen as %v", ev)
	}

	// A Chinese UCS2 flash message, decoded by node-smpp.
	res, err := c.Submit(cctx, smpp.Message{To: testNumber, Text: chinese, Flash: true, RegisteredDelivery: 1})
	if err != nil {
		t.Fatal(err)
	}
	ev := p.next(t, "submit_sm")
	if ev["text"] != chinese || jsonNumber(ev["data_coding"]) != "24" || ev["destination"] != testNumber || ev["id"] != res.IDs[0] {
		t.Errorf("node-smpp saw %v", ev)
	}

	// query_sm, and its answer, as node-smpp encodes them.
	q, err := c.Query(cctx, res.IDs[0])
	if err != nil {
		t.Fatal(err)
	}
	if q.State != smpp.Delivered || q.ID != res.IDs[0] || q.FinalDate != "261127040000000+" {
		t.Errorf("query answered %+v", q)
	}
	if ev := p.next(t, "query_sm"); ev["id"] != res.IDs[0] || ev["source"] != "95500" {
		t.Errorf("node-smpp saw query %v", ev)
	}
	if _, err := c.Query(cctx, "999999"); smpp.KindOf(err) != smpp.Permanent || !strings.Contains(err.Error(), "ESME_RQUERYFAIL") {
		t.Errorf("query of an unknown id: %v", err)
	}

	// A long message in three parts with the concatenation UDH.
	long := strings.Repeat(chinese, 6)
	res2, err := c.Submit(cctx, smpp.Message{To: testNumber, Text: long, Flash: true})
	if err != nil || res2.Parts != 3 {
		t.Fatalf("long: %+v %v", res2, err)
	}
	var joined strings.Builder
	var ref string
	for i := range 3 {
		ev := p.next(t, "submit_sm")
		udh, _ := ev["udh"].([]any)
		if len(udh) != 1 || jsonNumber(ev["esm_class"]) != "64" {
			t.Fatalf("part %d: %v", i+1, ev)
		}
		b, _ := hex.DecodeString(udh[0].(string))
		if len(b) != 5 || b[0] != 0 || b[3] != 3 || int(b[4]) != i+1 {
			t.Errorf("part %d UDH % x", i+1, b)
		}
		if i == 0 {
			ref = udh[0].(string)[:6]
		} else if udh[0].(string)[:6] != ref {
			t.Errorf("parts carry different references")
		}
		joined.WriteString(ev["text"].(string))
	}
	if joined.String() != long {
		t.Errorf("node-smpp reassembled %q", joined.String())
	}

	// The receipt for the first message, and the MO node-smpp sent on bind.
	var gotReceipt, gotMO bool
	for !gotReceipt || !gotMO {
		select {
		case in := <-inbound:
			if in.Receipt != nil {
				if in.Receipt.SubmitID != res.IDs[0] || in.Receipt.State != smpp.Delivered {
					t.Errorf("receipt %+v", in.Receipt)
				}
				gotReceipt = true
			} else {
				if in.Text != "退订" || in.From != testNumber {
					t.Errorf("MO %+v", in)
				}
				gotMO = true
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("receipt %v, MO %v", gotReceipt, gotMO)
		}
	}
	if ev := p.next(t, "receipt_resp"); jsonNumber(ev["status"]) != "0" {
		t.Errorf("deliver_sm_resp %v", ev)
	}
	p.next(t, "enquire_link")
	if err := c.Close(cctx); err != nil {
		t.Fatalf("close: %v (no unbind_resp?)", err)
	}
	p.next(t, "unbind")
}

// TestInteropNodeESME: node-smpp as the ESME against heed's simulator.
func TestInteropNodeESME(t *testing.T) {
	rec := &recorder{}
	s, err := sim.Start("127.0.0.1:0", sim.Config{SystemID: "nodeesme", Password: "pw", ReceiptDelay: 5 * time.Millisecond, OnSubmit: rec.add})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, port, _ := strings.Cut(s.Addr(), ":")
	p := startPeer(t, "esme.js", "--port", port, "--system-id", "nodeesme", "--password", "pw")
	p.next(t, "bound")
	if err := s.Inject("nodeesme", sim.MO{From: testNumber, To: "95500", Text: "退订 TD"}); err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	var receipts, mo int
	for receipts < 3 || mo < 1 {
		ev := p.next(t, "submit_sm_resp", "receipt", "mo", "fail")
		switch ev["event"] {
		case "fail":
			t.Fatalf("node-smpp: %v", ev)
		case "submit_sm_resp":
			ids[ev["id"].(string)] = true
		case "receipt":
			if !ids[ev["id"].(string)] || jsonNumber(ev["state"]) != "2" || !strings.Contains(ev["text"].(string), "stat:DELIVRD") {
				t.Errorf("receipt %v for ids %v", ev, ids)
			}
			receipts++
		case "mo":
			if ev["text"] != "退订 TD" || ev["from"] != testNumber {
				t.Errorf("MO decoded by node-smpp as %v", ev)
			}
			mo++
		}
	}
	// node-smpp's query_sm, answered once the message is final.
	if ev := p.next(t, "query_sm_resp"); jsonNumber(ev["status"]) != "0" || !ids[ev["id"].(string)] || jsonNumber(ev["state"]) != "2" || ev["final_date"] == "" {
		t.Errorf("query_sm_resp %v", ev)
	}
	if ev := p.next(t, "enquire_link_resp"); jsonNumber(ev["status"]) != "0" {
		t.Errorf("enquire_link_resp %v", ev)
	}
	if ev := p.next(t, "unbind_resp"); jsonNumber(ev["status"]) != "0" {
		t.Errorf("unbind_resp %v", ev)
	}

	subs := rec.all()
	if len(subs) != 3 {
		t.Fatalf("simulator accepted %d submits", len(subs))
	}
	flash := subs[0].PDU
	if flash.DataCoding != 0x18 || text.Decode(flash.DataCoding, flash.ShortMessage) != chinese {
		t.Errorf("flash message decoded as %q (data_coding 0x%02X)", text.Decode(flash.DataCoding, flash.ShortMessage), flash.DataCoding)
	}
	var joined strings.Builder
	for i, sub := range subs[1:] {
		c, ok, rest, err := text.ParseUDH(sub.PDU.ShortMessage)
		if err != nil || !ok || c.Total != 2 || int(c.Seq) != i+1 || c.Ref != 0x2a || sub.PDU.ESMClass&0x40 == 0 {
			t.Fatalf("part %d: %+v %v %v", i+1, c, ok, err)
		}
		joined.WriteString(text.Decode(sub.PDU.DataCoding, rest))
	}
	if !strings.HasPrefix(joined.String(), "尊敬的客户") || !strings.HasSuffix(joined.String(), "祝您生活愉快！") {
		t.Errorf("parts reassembled as %q", joined.String())
	}
	if st := s.Stats(); st.Unbinds != 1 || st.EnquireLinks < 1 || st.Receipts != 3 || st.ReceiptsAcked < 4 {
		t.Errorf("simulator stats %+v", st)
	}
}

func jsonNumber(v any) string {
	if f, ok := v.(float64); ok {
		return strconv.FormatFloat(f, 'f', -1, 64)
	}
	return ""
}

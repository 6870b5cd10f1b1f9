package smpp_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heed/heed/smpp"
	"github.com/heed/heed/smpp/sim"
)

// BenchmarkSubmit measures UCS2 flash submits per second against the
// in-process simulator, at windows 10 and 100.
func BenchmarkSubmit(b *testing.B) {
	for _, w := range []int{10, 100} {
		b.Run(fmt.Sprintf("window=%d", w), func(b *testing.B) {
			s, err := sim.Start("127.0.0.1:0", sim.Config{})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			b.ReportMetric(submitAll(b, s.Addr(), w, b.N), "submits/s")
		})
	}
}

// BenchmarkVersusNode runs node-smpp's client and heed's against the same
// in-process simulator, one after the other in the same run, at windows 10
// and 100, and reports both rates and their ratio. Each iteration sends
// 50,000 messages per client.
func BenchmarkVersusNode(b *testing.B) {
	dir := peersDir(b)
	for _, w := range []int{10, 100} {
		b.Run(fmt.Sprintf("window=%d", w), func(b *testing.B) {
			s, err := sim.Start("127.0.0.1:0", sim.Config{})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			_, port, _ := strings.Cut(s.Addr(), ":")
			n := 50000 * b.N
			out, err := exec.Command("node", filepath.Join(dir, "throughput.js"),
				"--port", port, "--messages", fmt.Sprint(n), "--window", fmt.Sprint(w)).Output()
			if err != nil {
				b.Fatalf("node-smpp: %v", err)
			}
			var peer struct {
				Seconds float64
				Failed  int
			}
			if err := json.Unmarshal(out, &peer); err != nil || peer.Failed != 0 {
				b.Fatalf("node-smpp said %q (%v)", out, err)
			}
			nodeRate := float64(n) / peer.Seconds

			heedRate := submitAll(b, s.Addr(), w, n)
			b.ReportMetric(heedRate, "heed_submits/s")
			b.ReportMetric(nodeRate, "node_submits/s")
			b.ReportMetric(heedRate/nodeRate, "ratio")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// submitAll sends n flash messages through a client with the given window,
// from as many goroutines, and returns the rate. The clock starts once the
// client is bound.
func submitAll(b *testing.B, addr string, window, n int) float64 {
	b.Helper()
	c, err := smpp.Dial(context.Background(), smpp.Config{Addr: addr, SystemID: "heed", Source: "95500", Window: window})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close(context.Background())
	m := smpp.Message{To: testNumber, Text: chinese, Flash: true}
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for range window {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				if _, err := c.Submit(context.Background(), m); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	return float64(n) / time.Since(start).Seconds()
}

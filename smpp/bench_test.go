package smpp_test

import (
	"context"
	"fmt"
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
			c, err := smpp.Dial(context.Background(), smpp.Config{Addr: s.Addr(), SystemID: "heed", Source: "95500", Window: w})
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close(context.Background())
			m := smpp.Message{To: testNumber, Text: chinese, Flash: true}
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for range w {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for next.Add(1) <= int64(b.N) {
						if _, err := c.Submit(context.Background(), m); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "submits/s")
		})
	}
}

package report

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/heed/heed/ledger"
	"github.com/heed/heed/ledger/bolt"
	"github.com/heed/heed/ledger/mem"
)

// benchLog fills st with n events: contacts on 20 lines, with a complaint,
// an opt-out and a reminder's events among every hundred.
func benchLog(b *testing.B, st ledger.Store, n int) {
	b.Helper()
	ctx := context.Background()
	at := time.Now()
	for i := 0; i < n; {
		subject := fmt.Sprintf("s%d", i/100)
		var evs []ledger.Event
		for j := 0; j < 100 && i < n; j, i = j+1, i+1 {
			var p any = &ledger.ContactMade{Line: fmt.Sprintf("L%d", i%20), Channel: ledger.Channels[i%3], Purpose: ledger.Purposes[i%2]}
			switch j {
			case 10:
				p = &ledger.ComplaintReceived{Line: "L1", Source: "customer"}
			case 20:
				p = &ledger.ConsentWithdrawn{Channels: []string{"sms"}, Via: "sms_keyword"}
			case 30:
				p = &ledger.ReminderRequested{ReminderID: subject, ContractRef: "P", ContentHash: "h", Line: "L2"}
			case 31:
				p = &ledger.ReminderDispatched{ReminderID: subject, ContractRef: "P", ContentHash: "h", Line: "L2", RulesVersion: "t"}
			case 32:
				p = &ledger.ReminderSubmitted{ReminderID: subject, MessageIDs: []string{"m"}, Parts: 1}
			}
			e, err := ledger.NewEvent(fmt.Sprintf("t%d", i%4), subject, at, p)
			if err != nil {
				b.Fatal(err)
			}
			evs = append(evs, e)
		}
		if _, err := st.Append(ctx, ledger.ContactStream("t", subject), ledger.Any(), evs); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCompute reports the events a report reads per second, over a
// log of 100,000 events, on the in-memory and the bbolt store.
func BenchmarkCompute(b *testing.B) {
	const n = 100_000
	for name, open := range map[string]func(b *testing.B) ledger.Store{
		"mem": func(*testing.B) ledger.Store { return mem.New() },
		"bolt": func(b *testing.B) ledger.Store {
			st, err := bolt.Open(filepath.Join(b.TempDir(), "ledger.db"))
			if err != nil {
				b.Fatal(err)
			}
			return st
		},
	} {
		b.Run(name, func(b *testing.B) {
			st := open(b)
			defer st.Close()
			benchLog(b, st, n)
			from, to := time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
			b.ResetTimer()
			for b.Loop() {
				r, err := Compute(context.Background(), st, from, to, rules)
				if err != nil || r.Events != n {
					b.Fatalf("%d events, %v", r.Events, err)
				}
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

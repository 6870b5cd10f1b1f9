package main

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heed/heed/smpp"
	"github.com/heed/heed/smpp/sim"
)

func init() {
	register("bench smpp", "measure flash submits per second against an SMSC", benchSMPP)
}

// benchNumber is a fictional number from a range never assigned to a
// subscriber, so a benchmark against a real SMSC reaches nobody.
const benchNumber = "8613800000000"

// benchText is a renewal reminder in Chinese: UCS2, one part.
const benchText = "您的保单将于2026年12月31日到期，请及时续保。"

func benchSMPP(ctx context.Context, args []string) error {
	fs := newFlags("bench smpp")
	addr := fs.String("smsc", "", "HOST:PORT of the SMSC (default: an in-process simulator)")
	messages := fs.Int("messages", 100000, "messages to submit")
	window := fs.Int("window", 10, "outstanding requests")
	systemID := fs.String("system-id", "heed", "system_id to bind with")
	password := fs.String("password", "", "password to bind with")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *messages <= 0 || *window <= 0 {
		return fmt.Errorf("%w: --messages and --window must be positive", errUsage)
	}
	if *addr == "" {
		s, err := sim.Start("127.0.0.1:0", sim.Config{})
		if err != nil {
			return err
		}
		defer s.Close()
		*addr = s.Addr()
	}
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c, err := smpp.Dial(dctx, smpp.Config{Addr: *addr, SystemID: *systemID, Password: *password, Source: "95500", Window: *window})
	if err != nil {
		return err
	}
	var next, failed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	msg := smpp.Message{To: benchNumber, Text: benchText, Flash: true}
	for range *window {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(*messages) && ctx.Err() == nil {
				if _, err := c.Submit(ctx, msg); err != nil {
					if failed.Add(1) == 1 {
						fmt.Fprintln(os.Stderr, "first failure:", err)
					}
				}
			}
		}()
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer ccancel()
	if err := c.Close(cctx); err != nil {
		fmt.Fprintln(os.Stderr, "close:", err)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	ok := int64(*messages) - failed.Load()
	fmt.Printf("failed=%d seconds=%.3f\n", failed.Load(), secs)
	fmt.Printf("submits_per_s=%.0f window=%d messages=%d\n", float64(ok)/secs, *window, *messages)
	if failed.Load() > 0 {
		return fmt.Errorf("%d submits failed", failed.Load())
	}
	return nil
}

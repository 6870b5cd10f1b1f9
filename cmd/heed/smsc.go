package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/heed/heed/smpp/sim"
)

func init() {
	register("smsc", "run the SMSC simulator (receipts, throttling, drops on demand)", smsc)
}

func smsc(ctx context.Context, args []string) error {
	fs := newFlags("smsc")
	listen := fs.String("listen", "127.0.0.1:2775", "TCP listen address")
	systemID := fs.String("system-id", "", "system_id every bind must give (empty: any)")
	password := fs.String("password", "", "password every bind must give (empty: any)")
	receiptDelay := fs.Duration("receipt-delay", 0, "delay before a delivery receipt is sent")
	failure := fs.Float64("failure-ratio", 0, "share (0..1) of receipts that report UNDELIV")
	throttle := fs.Int("throttle-every", 0, "answer every Nth submit_sm, data_sm or query_sm with ESME_RTHROTTLED (0x58)")
	drop := fs.Int("drop-every", 0, "drop the connection instead of answering every Nth submit")
	respDelay := fs.Duration("response-delay", 0, "delay every submit_sm_resp (a slow SMSC)")
	hexIDs := fs.Bool("hex-ids", false, "message ids in hex in responses, decimal in receipts")
	textReceipts := fs.Bool("text-receipts", false, "receipts in text form only, without TLVs")
	receiptQueue := fs.Int("receipt-queue", 10000, "receipts kept per system_id while it has no receiving bind (0: drop them)")
	moEvery := fs.Duration("mo-every", 0, "inject an MO message into a receiving bind this often (0: never)")
	moText := fs.String("mo-text", "TD", "text of injected MO messages")
	moFrom := fs.String("mo-from", "8613800000000", "sender of injected MO messages (a fictional number)")
	moTo := fs.String("mo-to", "95500", "destination of injected MO messages")
	moTON := fs.Uint("mo-ton", 1, "source_addr_ton of injected MO messages (1 international, 2 national, 0 unknown, 6 abbreviated)")
	moNPI := fs.Uint("mo-npi", 1, "source_addr_npi of injected MO messages (1 ISDN/E.164, 0 unknown)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *failure < 0 || *failure > 1 {
		return fmt.Errorf("%w: --failure-ratio must be within 0..1", errUsage)
	}
	if *receiptQueue < 0 {
		return fmt.Errorf("%w: --receipt-queue must not be negative", errUsage)
	}
	if *receiptQueue == 0 {
		*receiptQueue = -1 // sim.Config's "none"
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	if *moTON > 255 || *moNPI > 255 {
		return fmt.Errorf("%w: --mo-ton and --mo-npi are bytes", errUsage)
	}
	s, err := sim.Start(*listen, sim.Config{
		SystemID: *systemID, Password: *password, ReceiptDelay: *receiptDelay, FailureRatio: *failure,
		ThrottleEvery: *throttle, DropEvery: *drop, ResponseDelay: *respDelay, HexIDs: *hexIDs,
		TextReceipts: *textReceipts, ReceiptQueue: *receiptQueue, Logger: log,
	})
	if err != nil {
		return err
	}
	log.Info("smsc listening", "addr", s.Addr())
	if *moEvery > 0 {
		go injectMO(ctx, s, *moEvery, sim.MO{From: *moFrom, To: *moTo, Text: *moText,
			Source: &sim.Numbering{TON: byte(*moTON), NPI: byte(*moNPI)}})
	}
	<-ctx.Done()
	err = s.Close()
	st := s.Stats()
	log.Info("smsc stopped", "binds", st.Binds, "binds_refused", st.BindsRefused, "submits", st.Submits,
		"throttled", st.Throttled, "dropped", st.Dropped, "receipts", st.Receipts, "receipts_queued", st.ReceiptsQueued,
		"receipts_retried", st.ReceiptsRetried, "receipts_lost", st.ReceiptsLost,
		"enquire_links", st.EnquireLinks, "unbinds", st.Unbinds, "mo", st.MO)
	return err
}

func injectMO(ctx context.Context, s *sim.Server, every time.Duration, mo sim.MO) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			// No receiving bind yet is normal: try again next tick.
			_ = s.Inject("", mo)
		}
	}
}

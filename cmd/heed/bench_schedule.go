package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heed/heed/api"
	"github.com/heed/heed/ledger"
	"github.com/heed/heed/ledger/book"
	"github.com/heed/heed/ledger/pii"
	"github.com/heed/heed/notify"
	"github.com/heed/heed/notify/schedule"
	"github.com/heed/heed/projections"
	"github.com/heed/heed/smpp"
	"github.com/heed/heed/smpp/sim"
)

func init() {
	register("bench schedule", "measure planned reminders: a book's import, memory per pending timer, ready after a restart, firing rate and lag", benchSchedule)
}

// benchClock is the bench's clock: held still while the book is imported
// and its timers derived, so nothing falls due meanwhile, then running
// with the real one from a chosen moment. It is never behind the real
// clock, as the decisions' "now" never is behind the log's.
type benchClock struct {
	mu      sync.Mutex
	still   time.Time
	running bool
	shift   time.Duration
}

func (c *benchClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.running {
		return c.still
	}
	return time.Now().Add(c.shift)
}

// runFrom makes the clock read at and run on from there.
func (c *benchClock) runFrom(at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.running, c.shift = true, time.Until(at)
}

func benchSchedule(ctx context.Context, args []string) error {
	fs := newFlags("bench schedule")
	dir := fs.String("data", "", "a new data directory for the bench's embedded store (required)")
	n := fs.Int("relationships", 100_000, "relationships in the synthetic book, each under a plan of 3 offsets (30d, 7d, 1d)")
	fire := fs.Int("fire", 20_000, "planned reminders fired in the firing phase, falling due at --rate a second")
	rate := fs.Float64("rate", 5000, "planned reminders falling due per second in the firing phase")
	workers := fs.Int("workers", 256, "the scheduler's firing workers and its derivers")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the firing phase to this file")
	importProfile := fs.String("import-cpuprofile", "", "write a CPU profile of the book's import to this file")
	importOnly := fs.Bool("import-only", false, "stop after the book's import and its line")
	importWorkers := fs.Int("import-workers", 0, "rows the import records at once (0: heed import's default)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *dir == "" || *n < 1 || *fire < 1 || *rate <= 0 || *workers < 1 {
		return fmt.Errorf("%w: --data is required; --relationships, --fire, --rate and --workers must be positive", errUsage)
	}
	if exists(filepath.Join(*dir, storeFile)) {
		return fmt.Errorf("%w: %s holds a ledger already; the bench writes its own book into a new directory", errUsage, *dir)
	}
	tuneGC()
	d, err := openData(*dir, "", "", false)
	if err != nil {
		return err
	}
	defer d.Close()
	const tenant = "bench"
	shanghai, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		return err
	}
	t0 := time.Now().Truncate(time.Second)
	clock := &benchClock{still: t0}
	// The firing phase: its reminders fall due from f0, an hour before
	// the book's own first due time (its plan's window opens two hours
	// after t0, local time), so the two never mix.
	h := t0.In(shanghai).Hour()
	window := ledger.SendWindow{Start: fmt.Sprintf("%02d:00", (h+2)%24), End: fmt.Sprintf("%02d:00", (h+3)%24)}
	if (h+3)%24 == 0 {
		window.End = "24:00"
	}
	f0 := t0.Add(40 * time.Minute)
	spread := time.Duration(float64(*fire) / *rate * float64(time.Second))
	if spread > 15*time.Minute {
		return fmt.Errorf("%w: --fire/--rate spreads the firing over more than 15 minutes", errUsage)
	}
	// The bench's burst goes to one region from one line and ignores the
	// hour: quiet hours and region bursts would defer it (as they should).
	rules := projections.Default()
	rules.Disabled = []string{projections.RuleQuietHours, projections.RuleRegionBurst}
	if err := rules.Validate(); err != nil {
		return err
	}
	store := pii.Seal(d.Store, d.Keys)
	pseudo := pii.PseudonymKey(d.Secrets.PseudonymKey)
	put := func(stream, subject string, payload any) error {
		e, err := ledger.NewEvent(tenant, subject, t0, payload)
		if err != nil {
			return err
		}
		_, err = store.Append(ctx, stream, ledger.Any(), []ledger.Event{e})
		return err
	}
	ts := ledger.TemplateStream(tenant, "renewal")
	params := map[string]string{"product": ledger.SourceProduct, "policy": ledger.SourceContractRef, "expires_on": ledger.SourceExpiresAt}
	for _, p := range []any{
		&ledger.TemplateProposed{TemplateID: "renewal", Version: 1, Purpose: ledger.PurposeService, Signature: "平安保险",
			Text: "您的{product}保单{policy:ref}将于{expires_on:date}到期，请及时续保。"},
		&ledger.TemplateApproved{TemplateID: "renewal", Version: 1},
	} {
		if err := put(ts, "", p); err != nil {
			return err
		}
	}
	if err := put(ledger.PlanStream(tenant, "book"), "", &ledger.ReminderPlanDefined{PlanID: "book", Version: 1,
		Offsets: []string{"30d", "7d", "1d"}, Window: window, TemplateID: "renewal", TemplateVersion: 1, Params: params}); err != nil {
		return err
	}
	if err := put(ledger.PlanStream(tenant, "spread"), "", &ledger.ReminderPlanDefined{PlanID: "spread", Version: 1,
		Offsets: []string{"1h"}, Window: ledger.SendWindow{Start: "00:00", End: "24:00"}, TemplateID: "renewal", TemplateVersion: 1, Params: params}); err != nil {
		return err
	}

	// The firing book: one reminder each, due an hour before its expiry,
	// the expiries spread so that --rate fall due a second from f0.
	fireRow := func(i int) (string, ledger.RelationshipStarted) {
		number := fmt.Sprintf("+86139%08d", i%100_000_000)
		exp := f0.Add(time.Hour + time.Duration(float64(i) / *rate * float64(time.Second)))
		return number, ledger.RelationshipStarted{ContractRef: fmt.Sprintf("FIRE-%d", i), Product: "车险",
			StartsAt: exp.AddDate(-1, 0, 0), ExpiresAt: &exp, Plan: "spread", Number: number}
	}
	write := func(desc string, count int, mk func(int) (string, ledger.RelationshipStarted)) (time.Duration, error) {
		start := time.Now()
		var next atomic.Int64
		var wg sync.WaitGroup
		var first atomic.Value
		bar := newProgress(desc, int64(count))
		for range 64 {
			wg.Go(func() {
				for {
					i := int(next.Add(1)) - 1
					if i >= count || ctx.Err() != nil {
						return
					}
					bar.set(int64(i))
					number, rel := mk(i)
					subject := pseudo.Pseudonym(number)
					if err := put(ledger.ContactStream(tenant, subject), subject, &rel); err != nil {
						first.CompareAndSwap(nil, err)
						return
					}
				}
			})
		}
		wg.Wait()
		bar.finish()
		if err, _ := first.Load().(error); err != nil {
			return 0, err
		}
		return time.Since(start), ctx.Err()
	}
	stopImportProfile, err := startCPUProfile(*importProfile)
	if err != nil {
		return err
	}
	cpuImport := processCPU()
	// The book: a synthetic renewal book (ledger/book's: expiries over
	// the coming year, in Shanghai's dates) imported as heed import does.
	res, err := book.Bench(ctx, book.Config{Store: d.Store, Keys: d.Keys, Tenant: tenant, Actor: "heed bench", Zone: projections.Zone, Location: shanghai, Workers: *importWorkers,
		Now: clock.now, Subject: func(number string) (string, string, error) {
			e164, err := api.Normalize(number, "CN")
			if err != nil {
				return "", "", err
			}
			return e164, pseudo.Pseudonym(e164), nil
		}}, *n, 0, "book")
	if err != nil {
		return err
	}
	if res.Recorded != int64(*n) {
		return fmt.Errorf("the book's import recorded %d of %d rows", res.Recorded, *n)
	}
	imported := res.PerSecond
	cpuImport = processCPU() - cpuImport
	stopImportProfile()
	fmt.Printf("imported=%d elapsed_s=%.1f imported_per_s=%.0f cpu_us_per_row=%.0f\n", res.Recorded, res.Elapsed.Seconds(), imported,
		float64(cpuImport.Microseconds())/float64(res.Recorded))
	if *importOnly {
		return nil
	}
	if _, err := write("writing the firing book", *fire, fireRow); err != nil {
		return err
	}

	// The firing path as serve wires it: projections, the simulator with
	// receipts, the notifier.
	runner, err := projections.NewRunner(d.Store, rules, projections.Options{Now: clock.now})
	if err != nil {
		return err
	}
	rctx, stopRunner := context.WithCancel(ctx)
	runnerDone := make(chan struct{})
	go func() { defer close(runnerDone); _ = runner.Run(rctx) }()
	defer func() { stopRunner(); <-runnerDone }()
	simSrv, err := sim.Start("127.0.0.1:0", sim.Config{ReceiptDelay: 20 * time.Millisecond})
	if err != nil {
		return err
	}
	defer simSrv.Close()
	sender := notify.NewSMSCs([]notify.SMSCRoute{{Name: "simulator"}}, "10690001")
	sender.Bind(map[string]smpp.Config{"simulator": {Addr: simSrv.Addr(), SystemID: "heed", Source: "10690001", Window: 256,
		Handler: sender.Handler("simulator")}})
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		sender.Close(cctx, slog.New(slog.DiscardHandler))
	}()
	var delivered atomic.Int64
	n1 := notify.New(notify.Config{Store: store, Decider: notify.Projections(runner), Sender: sender, Sealer: d.Keys,
		Lines: map[string]string{"10690001": tenant}, DefaultLine: "10690001", SMSCOf: sender.Route, Pseudonym: pseudo.Pseudonym,
		Now: clock.now, OnState: func(s string) {
			if s == notify.StateDelivered {
				delivered.Add(1)
			}
		}})
	if _, err := n1.Recover(ctx); err != nil {
		return err
	}
	sender.Attach(n1)
	var mu sync.Mutex
	var lags []time.Duration
	var lastFire time.Time
	cfg := schedule.Config{Store: store, Notifier: n1, Decider: notify.Projections(runner), Keys: d.Keys, Rules: rules,
		SMSCOf: sender.Route, Ready: func(string) bool { return sender.Links()[0].Stats.Bound },
		Workers: *workers, Reconcilers: *workers, Dir: filepath.Join(*dir, "schedule"), SnapshotEvery: time.Hour,
		Now: clock.now, Poll: 50 * time.Millisecond,
		Hooks: schedule.Hooks{Fired: func(_ string, lag time.Duration) {
			mu.Lock()
			lags = append(lags, lag)
			lastFire = time.Now()
			mu.Unlock()
		}}}
	// start starts a scheduler and waits until it is ready; loaded, if
	// set, runs between reading the index and following the log, and is
	// not timed.
	start := func(loaded func()) (*schedule.Scheduler, func() error, time.Duration, error) {
		begin := time.Now()
		s, err := schedule.New(ctx, cfg)
		if err != nil {
			return nil, nil, 0, err
		}
		took := time.Since(begin)
		if loaded != nil {
			loaded()
		}
		begin = time.Now()
		sctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- s.Run(sctx) }()
		select {
		case <-s.Ready():
		case err := <-done:
			cancel()
			return nil, nil, 0, err
		}
		return s, func() error { cancel(); return <-done }, took + time.Since(begin), nil
	}

	// Derive every timer of the book.
	begin := time.Now()
	s, stop, _, err := start(nil)
	if err != nil {
		return err
	}
	head, err := d.Store.Head(ctx)
	if err != nil {
		return err
	}
	want := int64(*n + *fire)
	bar := newProgress("deriving timers", want)
	for {
		st := s.Stats()
		bar.set(int64(st.Pending))
		if st.Position >= head && st.Dirty == 0 {
			if h, err := d.Store.Head(ctx); err != nil {
				return err
			} else if st.Position >= h {
				break
			} else {
				head = h
			}
		}
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
	bar.finish()
	derived := s.Stats().Pending
	fmt.Printf("derived: pending=%d relationships=%d elapsed_s=%.1f relationships_per_s=%.0f\n", derived, want,
		time.Since(begin).Seconds(), float64(want)/time.Since(begin).Seconds())

	// Restart: the index is saved on the way out and read back.
	if err := stop(); err != nil {
		return err
	}
	s = nil
	// The index's memory is what reading it back adds to the heap.
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	s, stop, ready, err := start(func() {
		runtime.GC()
		runtime.ReadMemStats(&after)
	})
	if err != nil {
		return err
	}
	st := s.Stats()
	// What the heap gained, or what the index's arrays hold if more: other
	// parts of the process run meanwhile and may free memory of theirs.
	heap := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	perTimer := float64(max(heap, int64(st.IndexBytes))) / float64(st.Pending)
	fmt.Printf("restart: pending=%d ready_s=%.3f heap_per_timer_b=%.1f index_per_timer_b=%.1f\n", st.Pending, ready.Seconds(),
		float64(heap)/float64(st.Pending), float64(st.IndexBytes)/float64(st.Pending))

	// Fire: the clock runs from just before f0, and --fire reminders fall
	// due at --rate a second through the gate, the SMSC and its receipts.
	if time.Now().After(f0.Add(-time.Second)) {
		return fmt.Errorf("the book took more than 40 minutes to import and derive; try fewer --relationships")
	}
	stopProfile, err := startCPUProfile(*cpuprofile)
	if err != nil {
		return err
	}
	cpuFire := processCPU()
	clock.runFrom(f0.Add(-time.Second))
	firstDue := time.Now().Add(time.Second)
	deadline := time.Now().Add(spread + 10*time.Minute)
	for s.Stats().Fired < *fire {
		if time.Now().After(deadline) {
			return fmt.Errorf("only %d of %d reminders fired", s.Stats().Fired, *fire)
		}
		if err := sleepCtx(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
	stopProfile()
	cpuFire = processCPU() - cpuFire
	mu.Lock()
	firing := lastFire.Sub(firstDue)
	got := slices.Clone(lags)
	mu.Unlock()
	fired := float64(len(got)) / firing.Seconds()
	for delivered.Load() < int64(*fire) && time.Now().Before(deadline) {
		if err := sleepCtx(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
	slices.Sort(got)
	p99 := got[len(got)*99/100]
	fmt.Printf("fired=%d elapsed_s=%.2f delivered=%d lag_p50_ms=%.0f lag_max_ms=%.0f cpu_us_per_fired=%.0f\n", len(got), firing.Seconds(),
		delivered.Load(), ms(got[len(got)/2]), ms(got[len(got)-1]), float64(cpuFire.Microseconds())/float64(len(got)))
	if err := stop(); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	fmt.Printf("imported_per_s=%.0f pending=%d bytes_per_timer=%.0f ready_s=%.2f fired_per_s=%.0f lag_p99_ms=%.0f\n",
		imported, st.Pending, perTimer, ready.Seconds(), fired, ms(p99))
	return nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

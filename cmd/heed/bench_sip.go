package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heed/heed/api"
	"github.com/heed/heed/ledger"
	"github.com/heed/heed/ledger/pii"
	"github.com/heed/heed/notify"
	"github.com/heed/heed/projections"
	"github.com/heed/heed/sip"
)

func init() {
	register("bench sip", "measure the call gate: INVITEs answered per second and their latency", benchSIP)
}

func benchSIP(ctx context.Context, args []string) error {
	fs := newFlags("bench sip")
	target := fs.String("target", "", "udp:HOST:PORT of a running gate (or a proxy in front of one); empty starts one in-process over a fresh embedded store")
	calls := fs.Int("calls", 50_000, "INVITEs to send")
	rate := fs.Float64("rate", 0, "INVITEs a second (open loop); 0 sends as fast as the gate answers")
	conns := fs.Int("conns", 64, "INVITEs outstanding at once (UDP sockets)")
	book := fs.Int("book", 100_000, "numbers in the synthetic book of the in-process gate")
	var err error
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the load to this file")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *calls < 1 || *conns < 1 || *book < 10 || *rate < 0 {
		return fmt.Errorf("%w: --calls and --conns must be positive, --book at least 10", errUsage)
	}
	tuneGC()
	numbers := func(i int) string { return fmt.Sprintf("139%08d", i) }
	addr := ""
	if *target != "" {
		ls, err := sip.ParseListen(*target)
		if err != nil || ls[0].Network != "udp" || len(ls) != 1 {
			return fmt.Errorf("%w: --target wants udp:HOST:PORT", errUsage)
		}
		addr = ls[0].Addr
	} else {
		gate, stop, err := benchGate(ctx, *book, numbers)
		if err != nil {
			return err
		}
		defer stop()
		addr = gate
	}
	// Each allowed call waits for its record to be durable, so the disk's
	// own flush latency, measured here beside the store, is the floor
	// under the gate's.
	var flush []time.Duration
	if *target == "" {
		if flush, err = fsyncLatency(os.TempDir(), 300); err != nil {
			return err
		}
	}
	// Calls go to the book in a random order, from a pool of lines (a call
	// centre's seats), so that caps and region bursts see what a real
	// campaign would.
	perm := rand.Perm(*book)
	stopProfile, err := startCPUProfile(*cpuprofile)
	if err != nil {
		return err
	}
	defer stopProfile()
	res, err := sip.Load(ctx, sip.LoadConfig{Target: addr, Calls: *calls, Rate: *rate, Conns: *conns,
		Call: func(i int) (string, string) {
			return numbers(perm[i%len(perm)]), fmt.Sprintf("0215%07d", i%2000)
		}})
	if err != nil {
		return err
	}
	var mix []string
	for _, s := range slices.Sorted(func(yield func(int) bool) {
		for s := range res.Statuses {
			if !yield(s) {
				return
			}
		}
	}) {
		mix = append(mix, fmt.Sprintf("%d:%d", s, res.Statuses[s]))
	}
	fmt.Printf("answered=%d lost=%d elapsed_s=%.2f answers=%s p50_ms=%.3f\n", res.Answered, res.Lost,
		res.Elapsed.Seconds(), strings.Join(mix, ","), float64(res.P50.Microseconds())/1000)
	if flush != nil {
		fmt.Printf("disk_flush_p50_ms=%.3f disk_flush_p99_ms=%.3f\n", ms(flush[len(flush)/2]), ms(flush[len(flush)*99/100]))
	}
	fmt.Printf("invites_per_s=%.0f p99_ms=%.3f\n", res.PerSecond, float64(res.P99.Microseconds())/1000)
	return nil
}

// benchGate starts the call gate over a fresh embedded store holding a
// synthetic book: 60% of the numbers are customers (a contract: service
// calls allowed), a sixth of those have opted out, the rest are strangers
// (no basis for a service call). It returns the gate's UDP address.
func benchGate(ctx context.Context, book int, numbers func(int) string) (string, func(), error) {
	dir, err := os.MkdirTemp("", "heed-bench-sip-")
	if err != nil {
		return "", nil, err
	}
	d, err := openData(filepath.Join(dir, "data"), "", "", false)
	if err != nil {
		_ = os.RemoveAll(dir)
		return "", nil, err
	}
	cleanup := []func(){func() { _ = os.RemoveAll(dir) }, func() { _ = d.Close() }}
	stop := func() {
		for i := len(cleanup) - 1; i >= 0; i-- {
			cleanup[i]()
		}
	}
	fail := func(err error) (string, func(), error) { stop(); return "", nil, err }
	const tenant = "bench"
	pseudo := pii.PseudonymKey(d.Secrets.PseudonymKey)
	at := time.Now().Add(-24 * time.Hour)
	var next atomic.Int64
	var wg sync.WaitGroup
	var firstErr atomic.Value
	bar := newProgress("writing the book", int64(book))
	for range 32 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= book || ctx.Err() != nil {
					return
				}
				bar.set(int64(i))
				var evs []ledger.Event
				if i%10 < 6 {
					e, err := ledger.NewEvent(tenant, "", at, ledger.RelationshipStarted{ContractRef: fmt.Sprintf("B-%d", i), StartsAt: at})
					if err != nil {
						firstErr.CompareAndSwap(nil, err)
						return
					}
					evs = append(evs, e)
					if i%10 == 0 {
						w, _ := ledger.NewEvent(tenant, "", at, ledger.ConsentWithdrawn{All: true, Via: "call"})
						evs = append(evs, w)
					}
				} else {
					continue
				}
				e164, err := api.Normalize(numbers(i), "CN")
				if err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				subject := pseudo.Pseudonym(e164)
				for k := range evs {
					evs[k].Subject = subject
				}
				if _, err := d.Store.Append(ctx, ledger.ContactStream(tenant, subject), ledger.Any(), evs); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
			}
		})
	}
	wg.Wait()
	bar.set(int64(book))
	if err, _ := firstErr.Load().(error); err != nil {
		return fail(err)
	}
	// The calls are decided at the real time: quiet hours, still
	// evaluated, move to the other side of the clock, so that the book's
	// customers are redirected at any hour the bench runs.
	rules := projections.Default()
	away := time.Now().In(time.FixedZone("CST", 8*3600)).Add(12 * time.Hour)
	rules.QuietHours.Start, rules.QuietHours.End = away.Format("15:04"), away.Add(time.Hour).Format("15:04")
	if err := rules.Validate(); err != nil {
		return fail(err)
	}
	runner, err := projections.NewRunner(d.Store, rules, projections.Options{})
	if err != nil {
		return fail(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = runner.Run(rctx) }()
	cleanup = append(cleanup, func() { cancel(); <-done })
	head, err := d.Store.Head(ctx)
	if err != nil {
		return fail(err)
	}
	for runner.Position() < head {
		if ctx.Err() != nil {
			return fail(ctx.Err())
		}
		time.Sleep(10 * time.Millisecond)
	}
	n := notify.New(notify.Config{Store: d.Store, Decider: notify.Projections(runner), Pseudonym: pseudo.Pseudonym})
	srv, err := sip.New(sip.Config{
		Trunks: []sip.Trunk{{Name: "bench", Tenant: tenant, Sources: []string{"127.0.0.0/8", "::1"},
			Carrier: "127.0.0.1:5999", Purpose: "service"}},
		Gate: n, Normalize: sipNumber, Pseudonym: pseudo.Pseudonym,
		Region: func(e164 string) string { r, _ := projections.Region(e164); return r }})
	if err != nil {
		return fail(err)
	}
	bound, err := srv.Serve([]sip.Listen{{Network: "udp", Addr: "127.0.0.1:0"}})
	if err != nil {
		return fail(err)
	}
	cleanup = append(cleanup, func() { _ = srv.Close() })
	return bound[0].Addr, stop, nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// fsyncLatency times n rewrites of a 4 KiB page in a scratch file in dir,
// each made durable (fsync) as a store's commit is; sorted.
func fsyncLatency(dir string, n int) ([]time.Duration, error) {
	f, err := os.CreateTemp(dir, "heed-flush-")
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close(); _ = os.Remove(f.Name()) }()
	page := make([]byte, 4096)
	out := make([]time.Duration, 0, n)
	for i := range n {
		if _, err := f.WriteAt(page, int64(i%16)*4096); err != nil {
			return nil, err
		}
		t := time.Now()
		if err := f.Sync(); err != nil {
			return nil, err
		}
		out = append(out, time.Since(t))
	}
	slices.Sort(out)
	return out, nil
}

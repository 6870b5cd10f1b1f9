package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heed/heed/ledger"
)

func init() {
	register("bench append", "measure durable appends per second into a data directory", benchAppend)
}

func benchAppend(ctx context.Context, args []string) error {
	fs := newFlags("bench append")
	dir := fs.String("data", "heed-data", "data directory; the events are left in it")
	appenders := fs.Int("appenders", 16, "concurrent appenders")
	events := fs.Int("events", 100000, "events to append")
	size := fs.Int("size", 300, "approximate size of each event's canonical encoding, in bytes")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the run to this file")
	every := fs.Int("report-every", 0, "print one line per slice of this many appended events (slice_end is the log's size at the slice's end), so a long run shows how the rate changes as the log grows; 0 prints only the totals")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *appenders <= 0 || *events <= 0 || *size <= 0 || *every < 0 {
		return fmt.Errorf("%w: --appenders, --events and --size must be positive, --report-every not negative", errUsage)
	}
	tuneGC()
	d, err := openData(*dir, "", "", false)
	if err != nil {
		return err
	}
	defer d.Close()
	proto, err := benchEvent(*size)
	if err != nil {
		return err
	}
	base, err := d.Store.Head(ctx)
	if err != nil {
		return err
	}
	// A random start keeps the subjects of two runs on one directory apart.
	run := rand.Uint64()

	var next, done atomic.Int64
	var h hist
	sl := slicer{every: int64(*every), base: base, h: &h, written: func() int64 { return d.Store.Stats().Written }}
	var failed atomic.Value
	lat := make([][]time.Duration, *appenders)
	bar := newProgress("appending", int64(*events))
	sl.bar = bar
	stopBar := make(chan struct{})
	go func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stopBar:
				return
			case <-t.C:
				bar.set(done.Load())
			}
		}
	}()
	stop, err := startCPUProfile(*cpuprofile)
	if err != nil {
		return err
	}
	defer stop()
	var wg sync.WaitGroup
	cpu0 := processCPU()
	start := time.Now()
	sl.start(start)
	for w := range *appenders {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := next.Add(1)
				if i > int64(*events) {
					return
				}
				e := proto
				e.ID = ledger.NewID()
				// A synthetic pseudonym per event: every append starts a
				// new contact stream, like a bulk consent import. It
				// looks random like a real one (an HMAC), so new streams
				// land all over the stream index, not at one edge.
				e.Subject = ledger.SyntheticSubject(run + uint64(i))
				t := time.Now()
				if _, err := d.Store.Append(ctx, ledger.ContactStream(e.Tenant, e.Subject), ledger.NoStream(), []ledger.Event{e}); err != nil {
					failed.CompareAndSwap(nil, err)
					return
				}
				took := time.Since(t)
				lat[w] = append(lat[w], took)
				h.add(took)
				sl.done(done.Add(1))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu := processCPU() - cpu0
	close(stopBar)
	bar.set(done.Load())
	bar.finish()
	if err, _ := failed.Load().(error); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	// Sign a checkpoint over what was appended, as a running server would
	// within seconds, so the directory verifies with heed verify --data.
	if _, err := d.Sealer().Seal(ctx); err != nil {
		return fmt.Errorf("seal: %w", err)
	}
	all := slices.Concat(lat...)
	slices.Sort(all)
	st := d.Store.Stats()
	if st.Commits > 0 {
		fmt.Printf("commits=%d events_per_commit=%.1f written_bytes_per_event=%.0f prepare_ms_per_commit=%.2f commit_ms_per_commit=%.2f cpu_us_per_event=%.2f cpu_busy=%.2f\n",
			st.Commits, float64(st.Events)/float64(st.Commits), float64(st.Written)/float64(st.Events),
			float64(st.Prepare.Microseconds())/1000/float64(st.Commits), float64(st.Commit.Microseconds())/1000/float64(st.Commits),
			float64(cpu.Nanoseconds())/1000/float64(len(all)), cpu.Seconds()/elapsed.Seconds()/float64(runtime.NumCPU()))
	}
	fmt.Printf("appends_per_s=%.0f appenders=%d events=%d p99_ms=%.2f\n",
		float64(len(all))/elapsed.Seconds(), *appenders, len(all), float64(all[len(all)*99/100].Microseconds())/1000)
	return nil
}

// benchEvent returns a ConsentGranted proposal whose canonical encoding is
// about size bytes, the evidence text padded to get there.
func benchEvent(size int) (ledger.Event, error) {
	mk := func(text string) (ledger.Event, error) {
		data, err := json.Marshal(&ledger.ConsentGranted{
			Purposes: []string{ledger.PurposeService},
			Channels: []string{ledger.ChannelSMS},
			Source:   "web_form",
			Evidence: ledger.Evidence{Text: text},
		})
		if err != nil {
			return ledger.Event{}, err
		}
		return ledger.Event{
			Type: ledger.TypeConsentGranted, Tenant: "bench", Subject: "0000000000000000",
			OccurredAt: time.Now().UTC(), Schema: 1, Data: data,
		}, nil
	}
	e, err := mk("")
	if err != nil {
		return e, err
	}
	// Measure with the fields the store fills at a realistic size.
	m := e
	m.ID, m.Stream, m.Revision, m.Position, m.RecordedAt = ledger.NewID(), ledger.ContactStream(e.Tenant, e.Subject), 1, 1000000, time.Now()
	leaf, err := m.Leaf()
	if err != nil {
		return e, err
	}
	if pad := size - len(leaf); pad > 0 {
		return mk("I agree" + strings.Repeat(".", max(pad-7, 0)))
	}
	return e, nil
}

// slicer prints a line per --report-every appended events: the log's size
// at the slice's end, the slice's rate and its p99.
type slicer struct {
	every int64
	base  uint64
	h     *hist
	bar   *progress

	// written is the bytes the store has written for commits so far.
	written func() int64

	mu      sync.Mutex
	printed int64 // appends counted by the lines printed so far
	at      time.Time
	before  []uint64
	wrote   int64 // written when the last line was printed
}

func (s *slicer) start(t time.Time) {
	s.at, s.before = t, s.h.snapshot()
	if s.written != nil {
		s.wrote = s.written()
	}
}

// done is told the count of appends finished so far, once per append.
func (s *slicer) done(n int64) {
	if s.every <= 0 || n%s.every != 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if n <= s.printed {
		return // a later slice's line got here first and covers this one
	}
	now, snap := time.Now(), s.h.snapshot()
	var wrote int64
	if s.written != nil {
		wrote = s.written()
	}
	s.bar.clear()
	// Bytes written per event shows the cost of an append as the log
	// grows without the noise of a shared machine's disk.
	fmt.Printf("slice_end=%d appends_per_s=%.0f p99_ms=%.2f written_bytes_per_event=%.0f\n", s.base+uint64(n),
		float64(n-s.printed)/now.Sub(s.at).Seconds(), float64(quantile(snap, s.before, 0.99).Microseconds())/1000,
		float64(wrote-s.wrote)/float64(n-s.printed))
	s.printed, s.at, s.before, s.wrote = n, now, snap, wrote
}

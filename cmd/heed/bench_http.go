package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func init() {
	register("bench http", "load a running heed serve over HTTP: appends, decisions or reminders", benchHTTP)
}

// benchHTTP drives one operation from many connections and prints the rate
// and latency percentiles. It needs an admin key to create its business key.
//
// The load generator shares the machine with the server, so it is kept
// cheap: every request body is built before the clock starts, each
// connection reuses one request, one reader and one response buffer, and
// outcomes are tallied without formatting.
func benchHTTP(ctx context.Context, args []string) error {
	fs := newFlags("bench http")
	base := fs.String("url", "http://127.0.0.1:8080", "heed serve base URL")
	admin := fs.String("admin-key", os.Getenv("HEED_ADMIN_KEY"), "admin API key (or HEED_ADMIN_KEY)")
	op := fs.String("op", "appends", "appends, decisions or reminders")
	conns := fs.Int("conns", 64, "concurrent connections")
	dur := fs.Duration("duration", 10*time.Second, "how long to load")
	numbers := fs.Int("numbers", 100_000, "distinct numbers to spread the load over (reminders: one per reminder)")
	tenant := fs.String("tenant", fmt.Sprintf("bench%d", time.Now().Unix()), "tenant of the business key")
	cpuprofile := fs.String("cpuprofile", "", "write the load generator's own CPU profile to this file")
	rate := fs.Float64("rate", 0, "offered load in requests/s, spread evenly over time (open loop); 0 sends each connection's next request as soon as its last one is answered (closed loop)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *admin == "" {
		return fmt.Errorf("%w: --admin-key is required", errUsage)
	}
	if *numbers < 1 || *conns < 1 {
		return fmt.Errorf("%w: --numbers and --conns must be positive", errUsage)
	}
	if *rate < 0 {
		return fmt.Errorf("%w: --rate must not be negative", errUsage)
	}
	tr := &http.Transport{MaxIdleConns: *conns, MaxIdleConnsPerHost: *conns, MaxConnsPerHost: *conns, IdleConnTimeout: time.Minute}
	cl := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	post := func(ctx context.Context, key, path, ctype string, body []byte) (int, []byte, error) {
		req, err := http.NewRequestWithContext(ctx, "POST", *base+path, bytes.NewReader(body))
		if err != nil {
			return 0, nil, err
		}
		req.Header.Set("Content-Type", ctype)
		req.Header.Set("Authorization", "Bearer "+key)
		res, err := cl.Do(req)
		if err != nil {
			return 0, nil, err
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		return res.StatusCode, b, err
	}
	st, b, err := post(ctx, *admin, "/v1/keys", "application/json", fmt.Appendf(nil, `{"role":"business","tenant":%q}`, *tenant))
	if err != nil || st != http.StatusCreated {
		return fmt.Errorf("create business key: %d %s %v", st, b, err)
	}
	var kr struct{ Token string }
	if err := json.Unmarshal(b, &kr); err != nil {
		return err
	}
	key := kr.Token
	number := func(i int) string { return fmt.Sprintf("+86139%08d", i%100_000_000) }
	// load imports ndjson lines, 2000 per request.
	load := func(what string, line func(i int, w *bytes.Buffer)) error {
		fmt.Fprintf(os.Stderr, "importing %s for %d numbers…\n", what, *numbers)
		for from := 0; from < *numbers; from += 2000 {
			var nd bytes.Buffer
			for i := from; i < min(from+2000, *numbers); i++ {
				line(i, &nd)
			}
			if st, b, err := post(ctx, key, "/v1/events:import", "application/x-ndjson", nd.Bytes()); err != nil || st != http.StatusCreated {
				return fmt.Errorf("import: %d %.200s %v", st, b, err)
			}
		}
		return nil
	}

	var path string
	bodies := make([][]byte, *numbers)
	cycle := true // reminders go to each number once
	// The imported history is a week old: recent enough that the API takes
	// it without a backfill key (writes may be dated at most 30 days back).
	day1 := time.Now().UTC().Add(-7 * 24 * time.Hour).Truncate(time.Second).Format(time.RFC3339)
	day2 := time.Now().UTC().Add(-6 * 24 * time.Hour).Truncate(time.Second).Format(time.RFC3339)
	switch *op {
	case "appends":
		path = "/v1/contacts"
		for i := range bodies {
			bodies[i] = fmt.Appendf(nil, `{"number":%q,"line":"L1","channel":"call","purpose":"service","outcome":"answered"}`, number(i))
		}
	case "decisions":
		// A realistic mix: a quarter of the numbers are customers (a
		// relationship allows service calls, not marketing), a quarter
		// consented to both, a quarter consented and then opted out, a
		// quarter are unknown. Questions alternate service and marketing,
		// so allowed and denied answers both occur.
		t0 := `"occurred_at":"` + day1 + `"`
		err := load("relationships, consents and opt-outs", func(i int, w *bytes.Buffer) {
			n := number(i)
			switch i % 4 {
			case 0:
				fmt.Fprintf(w, `{"type":"RelationshipStarted","number":%q,%s,"data":{"contract_ref":"P-%d","starts_at":%q}}`+"\n", n, t0, i, day1)
			case 1, 2:
				fmt.Fprintf(w, `{"type":"ConsentGranted","number":%q,%s,"data":{"purposes":["service","marketing"],"channels":["call","sms"],"source":"web_form"}}`+"\n", n, t0)
			}
			if i%4 == 2 {
				fmt.Fprintf(w, `{"type":"ConsentWithdrawn","number":%q,"occurred_at":%q,"data":{"all":true,"via":"web"}}`+"\n", n, day2)
			}
		})
		if err != nil {
			return err
		}
		path = "/v1/decisions"
		for i := range bodies {
			purpose := "service"
			if (i/4)%2 == 1 {
				purpose = "marketing"
			}
			bodies[i] = fmt.Appendf(nil, `{"number":%q,"channel":"call","purpose":%q}`, number(i), purpose)
		}
	case "reminders":
		// One relationship per number, imported in bulk first; each
		// reminder goes to a fresh number so frequency caps do not deny.
		err := load("relationships", func(i int, w *bytes.Buffer) {
			fmt.Fprintf(w, `{"type":"RelationshipStarted","number":%q,"occurred_at":%q,"data":{"contract_ref":"P-%d","starts_at":%q}}`+"\n", number(i), day1, i, day1)
		})
		if err != nil {
			return err
		}
		// Flash carries only an approved template: the business proposes
		// one and the admin key approves it.
		if st, b, err := post(ctx, key, "/v1/templates", "application/json",
			[]byte(`{"id":"bench","signature":"heed","text":"您的保单{policy:ref}即将到期。"}`)); err != nil || st/100 != 2 {
			return fmt.Errorf("propose template: %d %.200s %v", st, b, err)
		}
		review := fmt.Sprintf("/v1/review/templates/%s/bench/versions/1/approve", *tenant)
		if st, b, err := post(ctx, *admin, review, "application/json", []byte(`{}`)); err != nil || (st != http.StatusCreated && st != http.StatusConflict) {
			return fmt.Errorf("approve template: %d %.200s %v", st, b, err)
		}
		path, cycle = "/v1/reminders", false
		for i := range bodies {
			bodies[i] = fmt.Appendf(nil, `{"number":%q,"relationship_ref":"P-%d","template_id":"bench","template_version":1,"params":{"policy":"P-%d"}}`, number(i), i, i)
		}
	default:
		return fmt.Errorf("%w: --op must be appends, decisions or reminders", errUsage)
	}
	stop, err := startCPUProfile(*cpuprofile)
	if err != nil {
		return err
	}
	defer stop()

	ctx, cancel := context.WithTimeout(ctx, *dur)
	defer cancel()
	var (
		next  atomic.Int64
		mu    sync.Mutex
		lat   []time.Duration
		total tally
		wg    sync.WaitGroup
	)
	start := time.Now()
	for range *conns {
		wg.Go(func() {
			mine := make([]time.Duration, 0, 1<<14)
			var seen tally
			var resp bytes.Buffer
			lc, err := newLoadConn(*base, path, map[string]string{"Content-Type": "application/json", "Authorization": "Bearer " + key})
			if err != nil {
				seen.add("error")
				return
			}
			defer lc.close()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if !cycle && i >= len(bodies) {
					break
				}
				body := bodies[i%len(bodies)]
				t0 := time.Now()
				if *rate > 0 {
					// Request i is due at start + i/rate. Latency counts
					// from then, not from when a free connection got to
					// it, so a server that falls behind is charged for
					// the queue it causes (no coordinated omission).
					due := start.Add(time.Duration(float64(i) * float64(time.Second) / *rate))
					if wait := time.Until(due); wait > 0 {
						time.Sleep(wait)
					}
					t0 = due
				}
				code, err := lc.post(body, &resp)
				if ctx.Err() != nil {
					break
				}
				mine = append(mine, time.Since(t0))
				switch {
				case err != nil:
					seen.add("error")
				case *op == "reminders" && code == http.StatusCreated:
					var r struct{ State string }
					_ = json.Unmarshal(resp.Bytes(), &r)
					seen.add(r.State)
				case *op == "decisions" && code == http.StatusOK:
					if bytes.Contains(resp.Bytes(), []byte(`"allowed":true`)) {
						seen.add("allowed")
					} else {
						seen.add("denied")
					}
				default:
					seen.status(code)
				}
			}
			mu.Lock()
			lat = append(lat, mine...)
			total.merge(&seen)
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	slices.Sort(lat)
	pct := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(float64(len(lat))*p))]
	}
	offered := "closed"
	if *rate > 0 {
		offered = strconv.FormatFloat(*rate, 'f', 0, 64) + "/s"
	}
	fmt.Printf("op=%s conns=%d offered=%s requests=%d seconds=%.1f rate=%.0f/s p50=%s p99=%s max=%s outcomes: %s\n",
		*op, *conns, offered, len(lat), elapsed.Seconds(), float64(len(lat))/elapsed.Seconds(),
		pct(0.50).Round(10*time.Microsecond), pct(0.99).Round(10*time.Microsecond), pct(1).Round(10*time.Microsecond), total.String())
	return nil
}

// tally counts outcomes by name; statuses are kept as numbers until the end.
type tally struct {
	named map[string]int
	codes [600]int
}

func (t *tally) add(name string) {
	if t.named == nil {
		t.named = map[string]int{}
	}
	t.named[name]++
}

func (t *tally) status(code int) {
	if code >= 0 && code < len(t.codes) {
		t.codes[code]++
		return
	}
	t.add("status" + strconv.Itoa(code))
}

func (t *tally) merge(o *tally) {
	if t.named == nil {
		t.named = map[string]int{}
	}
	for k, v := range o.named {
		t.named[k] += v
	}
	for c, v := range o.codes {
		t.codes[c] += v
	}
}

func (t *tally) String() string {
	var parts []string
	for k, v := range t.named {
		parts = append(parts, k+"="+strconv.Itoa(v))
	}
	for c, v := range t.codes {
		if v > 0 {
			parts = append(parts, strconv.Itoa(c)+"="+strconv.Itoa(v))
		}
	}
	slices.Sort(parts)
	return strings.Join(parts, " ")
}

// startCPUProfile starts a CPU profile into path, or does nothing when path
// is empty; the returned stop ends it and closes the file.
func startCPUProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

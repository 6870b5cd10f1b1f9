package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
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
func benchHTTP(ctx context.Context, args []string) error {
	fs := newFlags("bench http")
	base := fs.String("url", "http://127.0.0.1:8080", "heed serve base URL")
	admin := fs.String("admin-key", os.Getenv("HEED_ADMIN_KEY"), "admin API key (or HEED_ADMIN_KEY)")
	op := fs.String("op", "appends", "appends, decisions or reminders")
	conns := fs.Int("conns", 64, "concurrent connections")
	dur := fs.Duration("duration", 10*time.Second, "how long to load")
	numbers := fs.Int("numbers", 100_000, "distinct numbers to spread the load over (reminders: one per reminder)")
	tenant := fs.String("tenant", fmt.Sprintf("bench%d", time.Now().Unix()), "tenant of the business key")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *admin == "" {
		return fmt.Errorf("%w: --admin-key is required", errUsage)
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

	var next atomic.Int64
	var body func(i int) (path string, payload []byte)
	switch *op {
	case "appends":
		body = func(i int) (string, []byte) {
			return "/v1/contacts", fmt.Appendf(nil, `{"number":%q,"line":"L1","channel":"call","purpose":"service","outcome":"answered"}`, number(i%*numbers))
		}
	case "decisions":
		body = func(i int) (string, []byte) {
			return "/v1/decisions", fmt.Appendf(nil, `{"number":%q,"channel":"call","purpose":"service"}`, number(i%*numbers))
		}
	case "reminders":
		// One relationship per number, imported in bulk first; each
		// reminder goes to a fresh number so frequency caps do not deny.
		fmt.Fprintf(os.Stderr, "importing %d relationships…\n", *numbers)
		for from := 0; from < *numbers; from += 2000 {
			var nd bytes.Buffer
			for i := from; i < min(from+2000, *numbers); i++ {
				fmt.Fprintf(&nd, `{"type":"RelationshipStarted","number":%q,"occurred_at":"2026-01-01T00:00:00Z","data":{"contract_ref":"P-%d","starts_at":"2026-01-01T00:00:00Z"}}`+"\n", number(i), i)
			}
			if st, b, err := post(ctx, key, "/v1/events:import", "application/x-ndjson", nd.Bytes()); err != nil || st != http.StatusCreated {
				return fmt.Errorf("import: %d %.200s %v", st, b, err)
			}
		}
		body = func(i int) (string, []byte) {
			if i >= *numbers {
				return "", nil
			}
			return "/v1/reminders", fmt.Appendf(nil, `{"number":%q,"relationship_ref":"P-%d","text":"您的保单P-%d即将到期"}`, number(i), i, i)
		}
	default:
		return fmt.Errorf("%w: --op must be appends, decisions or reminders", errUsage)
	}

	ctx, cancel := context.WithTimeout(ctx, *dur)
	defer cancel()
	var (
		mu       sync.Mutex
		lat      []time.Duration
		statuses = map[string]int{}
		wg       sync.WaitGroup
	)
	start := time.Now()
	for range *conns {
		wg.Go(func() {
			var mine []time.Duration
			seen := map[string]int{}
			for ctx.Err() == nil {
				path, payload := body(int(next.Add(1) - 1))
				if path == "" {
					break
				}
				t0 := time.Now()
				st, b, err := post(ctx, key, path, "application/json", payload)
				if ctx.Err() != nil {
					break
				}
				mine = append(mine, time.Since(t0))
				k := fmt.Sprint(st)
				switch {
				case err != nil:
					k = "error"
				case *op == "reminders" && st == http.StatusCreated:
					var r struct{ State string }
					_ = json.Unmarshal(b, &r)
					k = r.State
				case *op == "decisions" && st == http.StatusOK:
					k = "allowed"
					if !bytes.Contains(b, []byte(`"allowed":true`)) {
						k = "denied"
					}
				}
				seen[k]++
			}
			mu.Lock()
			lat = append(lat, mine...)
			for k, v := range seen {
				statuses[k] += v
			}
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
	var parts []string
	for k, v := range statuses {
		parts = append(parts, fmt.Sprintf("%s=%d", k, v))
	}
	slices.Sort(parts)
	fmt.Printf("op=%s conns=%d requests=%d seconds=%.1f rate=%.0f/s p50=%s p99=%s max=%s outcomes: %s\n",
		*op, *conns, len(lat), elapsed.Seconds(), float64(len(lat))/elapsed.Seconds(),
		pct(0.50).Round(10*time.Microsecond), pct(0.99).Round(10*time.Microsecond), pct(1).Round(10*time.Microsecond), strings.Join(parts, " "))
	return nil
}

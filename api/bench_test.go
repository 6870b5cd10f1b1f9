package api

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heed/heed/ledger"
	"github.com/heed/heed/notify"
)

func notifyQuery(n string) notify.Query {
	return notify.Query{Tenant: "tenanta", Subject: (hmacPseudonyms{}).Pseudonym(n), Number: n, Channel: "call", Purpose: "service"}
}

// benchHTTP runs b.N requests from 64 concurrent clients and reports the
// rate and the 99th percentile; peer runs the same work without HTTP, so
// the ratio is the cost of the API layer (on the in-memory store).
func benchHTTP(b *testing.B, h *harness, path string, body func(i int) []byte, peer func(i int) error) {
	const conns = 64
	cl := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns}}
	var next atomic.Int64
	lat := make([]time.Duration, b.N)
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for range conns {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= b.N {
					return
				}
				req, _ := http.NewRequest("POST", h.srv.URL+path, bytes.NewReader(body(i)))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer "+h.a)
				t0 := time.Now()
				res, err := cl.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode >= 300 {
					b.Errorf("%s: %d", path, res.StatusCode)
					return
				}
				lat[i] = time.Since(t0)
			}
		})
	}
	wg.Wait()
	httpRate := float64(b.N) / time.Since(start).Seconds()
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(httpRate, "req/s")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")

	next.Store(0)
	start = time.Now()
	for range conns {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= b.N {
					return
				}
				if err := peer(i); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	peerRate := float64(b.N) / time.Since(start).Seconds()
	b.ReportMetric(peerRate, "peer-direct/s")
	b.ReportMetric(httpRate/peerRate, "http/direct")
}

func number(i int) string { return fmt.Sprintf("+86139%08d", i%50_000) }

func BenchmarkHTTPAppend(b *testing.B) {
	h := newHarness(b)
	benchHTTP(b, h, "/v1/contacts", func(i int) []byte {
		return fmt.Appendf(nil, `{"number":%q,"line":"L1","channel":"call","purpose":"service"}`, number(i))
	}, func(i int) error {
		e, err := ledger.NewEvent("tenanta", (hmacPseudonyms{}).Pseudonym(number(i)), time.Now(), &ledger.ContactMade{Line: "L1", Channel: "call", Purpose: "service"})
		if err != nil {
			return err
		}
		_, err = h.store.Append(context.Background(), ledger.ContactStream("tenanta", e.Subject), ledger.Any(), []ledger.Event{e})
		return err
	})
}

func BenchmarkHTTPDecide(b *testing.B) {
	h := newHarness(b)
	dec := streamDecider{h.store}
	benchHTTP(b, h, "/v1/decisions", func(i int) []byte {
		return fmt.Appendf(nil, `{"number":%q,"channel":"call","purpose":"service"}`, number(i))
	}, func(i int) error {
		_, err := dec.Decide(context.Background(), notifyQuery(number(i)))
		return err
	})
}

// BenchmarkPerson compares resolving a number the first time (parse,
// validate, pseudonym) with resolving it again from the cache.
func BenchmarkPerson(b *testing.B) {
	h := newHarness(b)
	b.Run("first", func(b *testing.B) {
		for i := range b.N {
			if _, err := Normalize(number(i), "CN"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("cached", func(b *testing.B) {
		raw := number(7)
		if _, _, err := h.api.person("body.number", raw); err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		for range b.N {
			if _, _, err := h.api.person("body.number", raw); err != nil {
				b.Fatal(err)
			}
		}
	})
}

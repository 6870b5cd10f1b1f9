package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// readiness answers /readyz: 200 "ready" while serving and every check
// passes, else 503 with one line per failing check, "name: reason".
type readiness struct {
	serving atomic.Bool
	mu      sync.Mutex
	checks  []readyCheck
}

type readyCheck struct {
	name string
	fn   func(context.Context) error
}

// add registers a check; fn returns why serve is not ready, or nil.
func (r *readiness) add(name string, fn func(context.Context) error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.checks = append(r.checks, readyCheck{name, fn})
}

// failing runs the checks and returns the failures, "name: reason".
func (r *readiness) failing(ctx context.Context) []string {
	r.mu.Lock()
	checks := append([]readyCheck(nil), r.checks...)
	r.mu.Unlock()
	var out []string
	if !r.serving.Load() {
		out = append(out, "serving: not serving (starting or stopping)")
	}
	for _, c := range checks {
		if err := c.fn(ctx); err != nil {
			out = append(out, c.name+": "+err.Error())
		}
	}
	return out
}

func (r *readiness) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	ctx, cancel := context.WithTimeout(req.Context(), 2*time.Second)
	defer cancel()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if f := r.failing(ctx); len(f) > 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = fmt.Fprintf(w, "not ready\n%s\n", strings.Join(f, "\n"))
		return
	}
	_, _ = w.Write([]byte("ready\n"))
}

// sealWatch notices checkpoints falling behind the head: an event
// acknowledged more than grace ago that no checkpoint covers means the
// sealer is stuck (or, on KurrentDB, no instance holds the lease).
type sealWatch struct {
	grace time.Duration
	mu    sync.Mutex
	head  uint64    // a head seen unsealed
	since time.Time // when it was first seen
}

func (s *sealWatch) check(head uint64, sealed int64, now time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sealed >= 0 && uint64(sealed) >= head {
		s.head, s.since = 0, time.Time{}
		return nil
	}
	if s.since.IsZero() || uint64(max(sealed, 0)) >= s.head {
		// The head seen before is sealed now: watch the new one.
		s.head, s.since = head, now
	}
	if d := now.Sub(s.since); d > s.grace {
		return fmt.Errorf("head %d, newest checkpoint %d: events up to %d unsealed for %s", head, max(sealed, 0), s.head, d.Round(time.Second))
	}
	return nil
}

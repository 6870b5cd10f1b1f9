package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// background runs the tasks serve cannot do without: the sealer, the
// projections, the contact index, the notifier's sweep. They run until
// stop, which serve calls after the HTTP drain, so that the final seal
// covers the last acknowledged writes and decisions still work while
// requests finish. A task that ends before stop was called, with an error
// or without, has died: serve turns unready and shuts down, exiting
// non-zero with the task's error.
//
// errgroup.WithContext was not used: it cancels every task at the first
// failure, before the drain, which is the half-stopped state this avoids.
type background struct {
	wg      sync.WaitGroup
	mu      sync.Mutex
	running map[string]bool
	dead    map[string]error
	err     error // the first death
	died    chan struct{}
	stopped atomic.Bool
}

func (b *background) init() {
	if b.died == nil {
		b.died = make(chan struct{})
		b.running = map[string]bool{}
		b.dead = map[string]error{}
	}
}

// run starts fn as the essential task name. fn must return when the
// context it uses ends, which serve ends only after calling stop.
func (b *background) run(log *slog.Logger, name string, fn func() error) {
	b.mu.Lock()
	b.init()
	b.running[name] = true
	b.mu.Unlock()
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		err := fn()
		stopping := b.stopped.Load()
		if !stopping && err == nil {
			err = errors.New("returned early")
		}
		b.mu.Lock()
		delete(b.running, name)
		if !stopping {
			b.dead[name] = err
			if b.err == nil {
				b.err = fmt.Errorf("%s stopped: %w", name, err)
				close(b.died)
			}
		}
		b.mu.Unlock()
		switch {
		case !stopping:
			log.Error("essential task died; shutting down", "task", name, "err", err)
		case err != nil && !errors.Is(err, context.Canceled):
			log.Error("background task stopped", "task", name, "err", err)
		}
	}()
}

// diedC is closed when the first essential task dies.
func (b *background) diedC() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.init()
	return b.died
}

// Err returns the first task's death, or nil.
func (b *background) Err() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

// stop marks the tasks' end as expected; the caller then ends their
// context and calls wait.
func (b *background) stop() { b.stopped.Store(true) }

func (b *background) wait() {
	b.stop()
	b.wg.Wait()
}

// check reports the dead tasks, for readiness.
func (b *background) check(context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	var errs []string
	for name, err := range b.dead {
		errs = append(errs, fmt.Sprintf("%s stopped: %v", name, err))
	}
	if len(errs) == 0 {
		return nil
	}
	return errors.New(strings.Join(errs, "; "))
}

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

package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sync/errgroup"
)

// tasks runs the essential tasks of serve (the sealer, the projections,
// the contact index, the notifier's sweep, …) under one errgroup. They
// share a context that serve ends only in stop, after the HTTP drain, so
// that the final seal covers the last acknowledged writes and decisions
// still work while requests finish.
//
// A task that returns before stop, with an error or without, has died: it
// is recorded for readiness first, then its error ends the group's
// context, which serve watches (died) to drain and exit with that error.
// The group's context is not the tasks' context: a death must not cancel
// the other tasks before the drain.
type tasks struct {
	log     *slog.Logger
	ctx     context.Context // the tasks' context
	cancel  context.CancelFunc
	g       *errgroup.Group
	dead    context.Context // ends at the first death
	stopped atomic.Bool

	mu     sync.Mutex
	deaths []string
}

func newTasks(log *slog.Logger) *tasks {
	ctx, cancel := context.WithCancel(context.Background())
	g, dead := errgroup.WithContext(context.Background())
	return &tasks{log: log, ctx: ctx, cancel: cancel, g: g, dead: dead}
}

// run starts fn as the essential task name. fn must return when its
// context ends.
func (t *tasks) run(name string, fn func(ctx context.Context) error) {
	t.g.Go(func() error {
		err := fn(t.ctx)
		if t.stopped.Load() {
			if err != nil && !errors.Is(err, context.Canceled) {
				t.log.Error("background task stopped", "task", name, "err", err)
			}
			return nil
		}
		if err == nil {
			err = errors.New("returned early")
		}
		err = fmt.Errorf("%s stopped: %w", name, err)
		t.mu.Lock()
		t.deaths = append(t.deaths, err.Error())
		t.mu.Unlock()
		t.log.Error("essential task died; shutting down", "task", name, "err", err)
		return err
	})
}

// died is closed when the first task dies (and after stop).
func (t *tasks) died() <-chan struct{} { return t.dead.Done() }

// stop ends the tasks' context, waits for every task and returns the first
// death, or nil.
func (t *tasks) stop() error {
	t.stopped.Store(true)
	t.cancel()
	return t.g.Wait()
}

// check reports the dead tasks, for readiness.
func (t *tasks) check(context.Context) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.deaths) == 0 {
		return nil
	}
	return errors.New(strings.Join(t.deaths, "; "))
}

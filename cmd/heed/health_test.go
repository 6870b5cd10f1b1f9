package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// TestTaskDeath: a task that ends before stop, with an error or without,
// is a death that fails readiness (before serve hears of it) and names
// the task; the other tasks keep running until stop; stop returns the
// first death only.
func TestTaskDeath(t *testing.T) {
	for _, c := range []struct {
		name string
		ret  error
		want string
	}{
		{"error", errors.New("merkle: root at size 300 differs"), "sealer stopped: merkle: root at size 300 differs"},
		{"nil", nil, "sealer stopped: returned early"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ts := newTasks(quiet())
			var ready readiness
			ready.add("task", ts.check)
			ready.serving.Store(true)
			die := make(chan struct{})
			ts.run("sealer", func(context.Context) error { <-die; return c.ret })
			other := make(chan struct{})
			ts.run("projections", func(ctx context.Context) error { <-ctx.Done(); close(other); return ctx.Err() })
			ctx := context.Background()
			if f := ready.failing(ctx); len(f) != 0 {
				t.Fatalf("before the death: failing %q", f)
			}
			close(die)
			select {
			case <-ts.died():
			case <-time.After(5 * time.Second):
				t.Fatal("death not signalled")
			}
			if f := ready.failing(ctx); len(f) != 1 || f[0] != "task: "+c.want {
				t.Errorf("failing %q", f)
			}
			select {
			case <-other:
				t.Fatal("the other task was stopped before stop")
			default:
			}
			if err := ts.stop(); err == nil || err.Error() != c.want {
				t.Errorf("stop: %v, want %q", err, c.want)
			}
			<-other
		})
	}
}

// TestTaskStop: tasks ending because serve stops them are no death.
func TestTaskStop(t *testing.T) {
	ts := newTasks(quiet())
	for _, name := range []string{"sealer", "projections", "contact index"} {
		ts.run(name, func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() })
	}
	select {
	case <-ts.died():
		t.Fatal("death signalled while every task runs")
	default:
	}
	if err := ts.stop(); err != nil {
		t.Errorf("stop: %v", err)
	}
	if err := ts.check(context.Background()); err != nil {
		t.Errorf("check %v", err)
	}
}

// TestReadyz: 200 "ready" when every check passes; 503 listing each
// failing check otherwise, and while not serving.
func TestReadyz(t *testing.T) {
	get := func(r *readiness) (int, string) {
		w := httptest.NewRecorder()
		r.ServeHTTP(w, httptest.NewRequest("GET", "/readyz", nil))
		return w.Code, w.Body.String()
	}
	var r readiness
	if code, body := get(&r); code != http.StatusServiceUnavailable || !strings.Contains(body, "serving: not serving") {
		t.Errorf("before serving: %d %q", code, body)
	}
	r.serving.Store(true)
	smsc := error(nil)
	r.add("projections", func(context.Context) error { return nil })
	r.add("smsc", func(context.Context) error { return smsc })
	if code, body := get(&r); code != http.StatusOK || body != "ready\n" {
		t.Errorf("all passing: %d %q", code, body)
	}
	smsc = errors.New("smsc1 unbound for 31s")
	r.add("checkpoints", func(context.Context) error { return errors.New("head 9, newest checkpoint 3") })
	code, body := get(&r)
	want := "not ready\nsmsc: smsc1 unbound for 31s\ncheckpoints: head 9, newest checkpoint 3\n"
	if code != http.StatusServiceUnavailable || body != want {
		t.Errorf("two failing: %d %q, want 503 %q", code, body, want)
	}
}

// TestSealWatch: readiness fails once an event has stayed unsealed longer
// than the grace, and recovers when a checkpoint covers it.
func TestSealWatch(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	w := sealWatch{grace: time.Minute}
	for i, s := range []struct {
		head   uint64
		sealed int64
		at     time.Duration
		fail   bool
	}{
		{0, 0, 0, false},
		{10, 10, time.Second, false},
		{20, 10, 2 * time.Second, false},   // 20 first seen unsealed
		{30, 10, 50 * time.Second, false},  // still within the grace of 20
		{40, 10, 63 * time.Second, true},   // 20 unsealed for 61 s
		{40, 30, 64 * time.Second, false},  // 20 sealed: now watching 40
		{50, 30, 123 * time.Second, false}, // 40 seen at 64 s
		{50, 30, 125 * time.Second, true},
		{50, 50, 126 * time.Second, false},
		{60, 50, 200 * time.Second, false}, // a new head after a quiet spell starts afresh
	} {
		err := w.check(s.head, s.sealed, t0.Add(s.at))
		if (err != nil) != s.fail {
			t.Errorf("step %d (head %d, sealed %d, at %v): %v, want failing %v", i, s.head, s.sealed, s.at, err, s.fail)
		}
	}
}

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/heed/heed/ledger"
	"github.com/heed/heed/projections"
)

// TestUndecodableEventStopsServe: an event in a real bbolt data dir that
// the projections cannot read (here a line event whose tenant is not the
// line stream's, which the store accepts from any writer) is never
// skipped: readiness fails naming its position, the
// heed_projection_undecodable gauge reads 1, and serve exits with the
// projections' death and the same position.
func TestUndecodableEventStopsServe(t *testing.T) {
	dir := copyDir(t, realDir(t, 0))
	d, err := openData(dir, "", "", false)
	if err != nil {
		t.Fatal(err)
	}
	e, err := ledger.NewEvent("zeta", "", time.Now(), ledger.LineReinstated{Line: "L1", Reason: "appeal"})
	if err != nil {
		t.Fatal(err)
	}
	stored, err := d.Store.Append(context.Background(), ledger.LineStream("acme", "L1"), ledger.Any(), []ledger.Event{e})
	d.Close()
	if err != nil {
		t.Fatal(err)
	}
	at := fmt.Sprintf("position %d (%s %s)", stored[0].Position, ledger.TypeLineReinstated, stored[0].ID)

	t.Run("readiness and metric", func(t *testing.T) {
		log := slog.New(slog.NewTextHandler(io.Discard, nil))
		o, err := parseServe([]string{"--data", dir, "--listen", freeAddr(t)}, log)
		if err != nil {
			t.Fatal(err)
		}
		s := &server{o: o, log: log, tasks: newTasks(log)}
		defer s.stop()
		s.ready.add("task", s.tasks.check)
		if err := s.openLedger(s.tasks.ctx); err != nil {
			t.Fatal(err)
		}
		if err := s.startProjections(s.tasks.ctx); err != nil {
			t.Fatal(err)
		}
		select {
		case <-s.tasks.died():
		case <-time.After(30 * time.Second):
			t.Fatal("the projections did not stop in 30 s")
		}
		s.ready.serving.Store(true)
		w := httptest.NewRecorder()
		s.ready.ServeHTTP(w, httptest.NewRequest("GET", "/readyz", nil))
		body := w.Body.String()
		if w.Code != http.StatusServiceUnavailable || !strings.Contains(body, "projections: "+projections.ErrUndecodable.Error()+": "+at) {
			t.Errorf("/readyz: %d %q, want 503 naming %s", w.Code, body, at)
		}
		mfs, err := s.reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		gauge := -1.0
		for _, mf := range mfs {
			if mf.GetName() == "heed_projection_undecodable" {
				gauge = mf.GetMetric()[0].GetGauge().GetValue()
			}
		}
		if gauge != 1 {
			t.Errorf("heed_projection_undecodable = %v, want 1", gauge)
		}
	})

	t.Run("serve exits", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		err := serve(ctx, []string{"--data", dir, "--listen", freeAddr(t)})
		if !errors.Is(err, projections.ErrUndecodable) || !strings.Contains(err.Error(), "projections stopped") || !strings.Contains(err.Error(), at) {
			t.Fatalf("serve returned %v, want the projections' death at %s", err, at)
		}
	})
}

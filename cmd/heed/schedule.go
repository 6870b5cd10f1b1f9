package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/heed/heed/notify"
	"github.com/heed/heed/notify/schedule"
)

// scheduleFlags configure the planned reminders' scheduler.
type scheduleFlags struct {
	on                 bool
	lineRate, smscRate float64
}

// lagBuckets span a timer's lag from its due time to its submit: a
// second when the line is free, hours when a morning's reminders queue
// for a slow line.
var lagBuckets = []float64{0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600}

// startScheduler runs the scheduler of planned reminders as an essential
// task. It stops firing before the SMSCs are unbound (see stop), so no
// timer fires into a closed link.
func (s *server) startScheduler() error {
	o := s.o
	if !o.schedule.on {
		s.log.Warn("--schedule=false: planned reminders are not derived nor fired")
		return nil
	}
	fired := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "heed_schedule_fired_total",
		Help: "Planned reminders fired, by the state their reminder reached."}, []string{"state"})
	deferred := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "heed_schedule_deferred_total",
		Help: "Planned reminders deferred, by the rule that deferred them."}, []string{"rule"})
	cancelled := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "heed_schedule_cancelled_total",
		Help: "Planned reminders cancelled, by reason."}, []string{"reason"})
	lag := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "heed_schedule_lag_seconds",
		Help: "Time from a planned reminder's due time to its submit.", Buckets: lagBuckets})
	s.reg.MustRegister(fired, deferred, cancelled, lag)
	leaves, _ := s.ledger.(notify.LeafReader)
	sched, err := schedule.New(s.tasks.ctx, schedule.Config{Store: s.store, Leaves: leaves, Notifier: s.n, Decider: s.decider, Keys: s.d.Keys,
		Rules: o.rules, SMSCOf: s.smpp.Route, Ready: s.bound, LineRate: o.schedule.lineRate, SMSCRate: o.schedule.smscRate,
		LineRates: o.cfg.ScheduleLineRates, SMSCRates: smscRates(o.cfg), Dir: filepath.Join(s.d.Dir, "schedule"), Log: s.log,
		Hooks: schedule.Hooks{
			Fired: func(state string, d time.Duration) {
				fired.WithLabelValues(state).Inc()
				lag.Observe(d.Seconds())
			},
			Deferred:  func(rule string) { deferred.WithLabelValues(rule).Inc() },
			Cancelled: func(reason string) { cancelled.WithLabelValues(reason).Inc() },
		}})
	if err != nil {
		return err
	}
	s.planned = sched
	s.metrics.Gauge("heed_schedule_timers_pending", "Planned reminders neither fired nor cancelled.",
		func() float64 { return float64(sched.Stats().Pending) })
	s.metrics.Gauge("heed_schedule_timers_due", "Planned reminders due and not yet fired, deferred or cancelled.",
		func() float64 { return float64(sched.Stats().Due) })
	s.metrics.Gauge("heed_schedule_streams_to_derive", "Contact streams whose timers are still to be derived.",
		func() float64 { return float64(sched.Stats().Dirty) })
	s.ready.add("schedule", func(context.Context) error {
		select {
		case <-sched.Ready():
			return nil
		default:
			return errors.New("the timer index is catching up with the log")
		}
	})
	// The scheduler stops on its own signal, ahead of the other tasks;
	// its task then waits for theirs so that it is not taken for dead.
	stop := make(chan struct{})
	stopped := make(chan struct{})
	var once sync.Once
	s.stopSchedule = func() {
		once.Do(func() { close(stop) })
		<-stopped
	}
	s.tasks.run("scheduler", func(ctx context.Context) error {
		run, cancel := context.WithCancel(ctx)
		defer cancel()
		go func() {
			select {
			case <-stop:
				cancel()
			case <-run.Done():
			}
		}()
		err := sched.Run(run)
		close(stopped)
		select {
		case <-stop:
			<-ctx.Done()
			return err
		default:
		}
		return err
	})
	go func() {
		select {
		case <-sched.Ready():
			st := sched.Stats()
			s.log.Info("planned reminders ready", "pending", st.Pending, "ready_s", sched.ReadyIn().Seconds())
		case <-s.tasks.ctx.Done():
		}
	}()
	return nil
}

// bound reports whether the SMSC that carries line is bound.
func (s *server) bound(line string) bool {
	name := s.smpp.Route(line)
	for _, l := range s.smpp.Links() {
		if l.Name == name {
			return l.Stats.Bound
		}
	}
	return false
}

// smscRates paces planned reminders per SMSC at each SMSC's configured
// submit rate, where it has one.
func smscRates(cfg serveConfig) map[string]float64 {
	out := map[string]float64{}
	for i, c := range cfg.SMSCs {
		name := c.Name
		if name == "" {
			name = fmt.Sprintf("smsc%d", i+1)
		}
		if c.TPS > 0 {
			out[name] = c.TPS
		}
	}
	return out
}

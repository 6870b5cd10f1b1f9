package main

import (
	"context"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/heed/heed/api"
	"github.com/heed/heed/api/auth"
	"github.com/heed/heed/ledger"
	"github.com/heed/heed/ledger/kurrent"
	"github.com/heed/heed/ledger/merkle"
	"github.com/heed/heed/ledger/pii"
	"github.com/heed/heed/notify"
	"github.com/heed/heed/projections"
	"github.com/heed/heed/sip"
	"github.com/heed/heed/smpp"
	"github.com/heed/heed/smpp/sim"
)

func init() {
	register("serve", "run the ledger, the API and the flash notifier", serve)
}

// apiKeysFile holds the hashed API keys (ledger/pii owns keys.db).
const apiKeysFile = "apikeys.db"

// smscConfig is one SMPP connection of the config file.
type smscConfig struct {
	// Name labels the connection in events and metrics.
	Name     string  `json:"name,omitempty"`
	Addr     string  `json:"addr"`
	SystemID string  `json:"system_id"`
	Password string  `json:"password"`
	Window   int     `json:"window"`
	TPS      float64 `json:"tps"`
	// Flash marking, per operator: data_coding for UCS2 and GSM7 flash
	// messages (defaults 0x18 and 0xF0), or dest_addr_subunit instead.
	FlashUCS2    byte `json:"flash_ucs2_coding,omitempty"`
	FlashGSM7    byte `json:"flash_gsm7_coding,omitempty"`
	FlashSubunit bool `json:"flash_subunit,omitempty"`
	// Lines are the sender lines this connection carries; the first
	// connection also carries every line no connection names.
	Lines []string `json:"lines,omitempty"`
}

// serveConfig is the optional JSON file given with --config. Flags given on
// the command line win over it.
type serveConfig struct {
	// SMSC is one SMPP connection, SMSCs several; with none the built-in
	// simulator runs.
	SMSC  *smscConfig  `json:"smsc,omitempty"`
	SMSCs []smscConfig `json:"smscs,omitempty"`
	// Lines maps each sender line to the tenant that owns it.
	Lines map[string]string `json:"lines,omitempty"`
	// Senders names the line a tenant's SMS go from (tenant → line);
	// required for a tenant that owns several lines.
	Senders map[string]string `json:"senders,omitempty"`
	// Keywords replace the default opt-out keywords.
	Keywords []string `json:"keywords,omitempty"`
	// SIPTrunks are the PBXs and SBCs the call gate (--sip) answers.
	SIPTrunks []sip.Trunk `json:"sip_trunks,omitempty"`
	// SIPRealm and SIPDigest shape the digest challenges of trunks with
	// credentials: the realm (default heed) and MD5 or SHA-256.
	SIPRealm  string `json:"sip_realm,omitempty"`
	SIPDigest string `json:"sip_digest,omitempty"`
	// ScheduleLineRates paces planned reminders per line (submits per
	// second), over --schedule-line-rate.
	ScheduleLineRates map[string]float64 `json:"schedule_line_rates,omitempty"`
}

// serveGOGC is serve's garbage-collection target (see debug.SetGCPercent).
const serveGOGC = 400

// tuneGC sets serve's garbage-collection target unless GOGC is in the
// environment. Requests allocate a lot of short-lived garbage over a small
// live heap, which the default target collects too often. The bench
// commands call it too, so that they measure the store as serve runs it.
func tuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(serveGOGC)
	}
}

// serveFlags are serve's command line, read.
type serveFlags struct {
	data                                       dataFlags
	listen, region, line, verifyLine           string
	smscUser                                   string
	window                                     int
	receiptTimeout                             time.Duration
	codesWindow, codesDay, codesRestricted     int
	trusted                                    []netip.Prefix
	pprof, storeURL, sipListen                 string
	smscGrace, sealGrace, maxSkew, maxBackdate time.Duration
	freeText, simDev                           bool
	rules                                      *projections.Config
	cfg                                        serveConfig
	schedule                                   scheduleFlags
}

// parseServe reads serve's flags and --config into one serveFlags.
func parseServe(args []string, log *slog.Logger) (*serveFlags, error) {
	fs := newFlags("serve")
	o := &serveFlags{data: addDataFlags(fs)}
	fs.StringVar(&o.listen, "listen", "127.0.0.1:8080", "HTTP listen address")
	configFile := fs.String("config", "", "JSON config file: smsc or smscs (each with the lines it carries), lines (line → tenant), keywords")
	rulesFile := fs.String("rules", "", "JSON rules file (projections config); default rules when empty")
	fs.StringVar(&o.region, "region", "CN", "default region for numbers written without a country code")
	smscAddr := fs.String("smsc", "", "SMSC host:port (default: start the built-in simulator in-process)")
	fs.StringVar(&o.smscUser, "smsc-system-id", "heed", "SMPP system_id")
	smscPass := fs.String("smsc-password", "", "SMPP password")
	fs.IntVar(&o.window, "smsc-window", 0, "SMPP window (outstanding submits); 0 = client default")
	fs.DurationVar(&o.receiptTimeout, "receipt-timeout", 24*time.Hour, "how long a submitted reminder is held in memory for its receipt; a later receipt is matched from the log")
	fs.StringVar(&o.line, "line", "10690001", "default sender line of reminders and codes")
	lines := fs.String("lines", "", "line=tenant pairs, comma-separated: which tenant owns replies to which line")
	fs.StringVar(&o.verifyLine, "verify-line", "", "sender line of sign-in codes (default --line); never a tenant's line")
	fs.IntVar(&o.codesWindow, "codes-per-10min", 3, "sign-in codes a number may be sent per 10 minutes")
	fs.IntVar(&o.codesDay, "codes-per-day", 5, "sign-in codes a number may be sent per 24 hours")
	fs.IntVar(&o.codesRestricted, "codes-per-day-restricted", 1, "sign-in codes per 24 hours to a number that opted out of everything or is on a national list")
	keywords := fs.String("keywords", "", "opt-out keywords, comma-separated (default: TD, 退订, STOP, UNSUBSCRIBE, …)")
	proxies := fs.String("trusted-proxies", "", "reverse proxies whose X-Forwarded-For the customer rate limits believe: addresses and CIDR prefixes, comma-separated (default none)")
	fs.StringVar(&o.pprof, "pprof", "", "serve net/http/pprof on this address (e.g. 127.0.0.1:6060); off when empty")
	fs.StringVar(&o.storeURL, "store", "", "event store: empty for the embedded store in --data, or a KurrentDB connection string (kurrentdb://host:2113?tls=false)")
	fs.DurationVar(&o.smscGrace, "smsc-grace", 30*time.Second, "how long an SMSC may stay unbound before /readyz fails; 0 leaves the SMSC out of readiness")
	fs.DurationVar(&o.sealGrace, "seal-grace", time.Minute, "how long an acknowledged event may stay uncovered by a checkpoint before /readyz fails")
	fs.DurationVar(&o.maxSkew, "max-skew", 5*time.Minute, "how far ahead of the clock a write's occurred_at may be")
	fs.DurationVar(&o.maxBackdate, "max-backdate", 30*24*time.Hour, "how far back a write's occurred_at may be, unless a key allowed to backfill asks to backfill")
	fs.StringVar(&o.sipListen, "sip", "", "run the call gate, a SIP redirect server, on these listeners (e.g. udp:127.0.0.1:5070,tcp:127.0.0.1:5070); trunks come from --config's sip_trunks; off when empty")
	fs.BoolVar(&o.freeText, "dev-free-text", false, "let reminders carry free text instead of an approved template (local trials only: anything reaches any current customer as flash)")
	fs.BoolVar(&o.simDev, "sim-dev", false, "with the built-in simulator: serve /dev/sim/outbox and /dev/sim/mo to admin keys (development and tests only)")
	fs.BoolVar(&o.schedule.on, "schedule", true, "derive and fire planned reminders (reminder plans); --schedule=false turns the scheduler off")
	fs.Float64Var(&o.schedule.lineRate, "schedule-line-rate", 100, "planned reminders submitted per second per line at most (0: unlimited); the config's schedule_line_rates name lines")
	fs.Float64Var(&o.schedule.smscRate, "schedule-smsc-rate", 0, "planned reminders submitted per second per SMSC at most (0: unlimited); an SMSC's tps in the config paces it too")
	if err := parseFlags(fs, args); err != nil {
		return nil, err
	}
	var err error
	if o.trusted, err = api.ParseProxies(*proxies); err != nil {
		return nil, fmt.Errorf("%w: --trusted-proxies: %v", errUsage, err)
	}

	cfg := &o.cfg
	if *configFile != "" {
		b, err := os.ReadFile(*configFile)
		if err != nil {
			return nil, err
		}
		dec := json.NewDecoder(strings.NewReader(string(b)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(cfg); err != nil {
			return nil, fmt.Errorf("%w: %s: %v", errUsage, *configFile, err)
		}
	}
	if cfg.Lines == nil {
		cfg.Lines = map[string]string{}
	}
	for _, kv := range strings.Split(*lines, ",") {
		if kv == "" {
			continue
		}
		l, t, ok := strings.Cut(kv, "=")
		if !ok || !auth.ValidTenant(t) {
			return nil, fmt.Errorf("%w: --lines wants line=tenant pairs", errUsage)
		}
		cfg.Lines[l] = t
	}
	if *keywords != "" {
		cfg.Keywords = strings.Split(*keywords, ",")
	}
	switch {
	case *smscAddr != "":
		cfg.SMSCs = []smscConfig{{Name: "smsc", Addr: *smscAddr, SystemID: o.smscUser, Password: *smscPass}}
	case cfg.SMSC != nil:
		cfg.SMSCs = []smscConfig{*cfg.SMSC}
	}
	// Sign-in codes go from a line heed owns: a reply to them must not
	// withdraw consent at a business.
	if owner, ok := cfg.Lines[o.verifyLine]; ok && o.verifyLine != "" {
		return nil, fmt.Errorf("%w: --verify-line %s is tenant %q's line; codes go from a line heed owns", errUsage, o.verifyLine, owner)
	}
	if o.verifyLine == "" {
		o.verifyLine = o.line
		if owner, ok := cfg.Lines[o.line]; ok {
			// Allowed (the default line is heed's to choose), but a reply
			// to a code then withdraws at that tenant.
			log.Info("sign-in codes go from the default line, which a tenant owns; --verify-line names another", "line", o.line, "tenant", owner)
		}
	}
	if o.codesWindow < 1 || o.codesDay < 1 || o.codesRestricted < 1 {
		return nil, fmt.Errorf("%w: the --codes-per-* limits must be at least 1", errUsage)
	}
	o.rules = projections.Default()
	if *rulesFile != "" {
		if o.rules, err = projections.LoadConfig(*rulesFile); err != nil {
			return nil, err
		}
	}
	if o.storeURL != "" && !kurrent.IsURL(o.storeURL) {
		return nil, fmt.Errorf("%w: --store must be a kurrentdb:// or esdb:// connection string", errUsage)
	}
	return o, nil
}

// server is heed serve while it runs: the parts each start step adds, in
// the order serve starts them.
type server struct {
	o     *serveFlags
	log   *slog.Logger
	tasks *tasks
	ready readiness
	// closers release what the steps opened, last opened first, once the
	// tasks have stopped.
	closers []func() error

	d          *dataDir
	keys       *auth.Keys
	firstAdmin string // the key created at first start, if any
	reg        *prometheus.Registry
	metrics    *api.Metrics

	// ledger is the store the events are in: the embedded one, or
	// KurrentDB.
	ledger  ledger.Store
	auditor api.LedgerAuditor
	store   ledger.Store // ledger, metered
	runner  *projections.Runner
	decider notify.Decider
	smpp    *smscs
	n       *notify.Notifier
	api     *api.Server
	// stopSchedule stops the scheduler firing, before the SMSCs unbind.
	stopSchedule func()
	planned      api.Planned // nil when the scheduler is off
}

// serve starts heed in named steps, each adding its part and the
// essential tasks that part needs, then serves until a signal or a task's
// death, and stops in the reverse order.
func serve(ctx context.Context, args []string) error {
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	o, err := parseServe(args, log)
	if err != nil {
		return err
	}
	tuneGC()
	s := &server{o: o, log: log, tasks: newTasks(log)}
	s.ready.add("task", s.tasks.check)
	// A signal during startup ends the tasks' context at once; after it,
	// only the drain does (see stop).
	startup := context.AfterFunc(ctx, s.tasks.cancel)
	defer startup()
	defer s.stop()
	tctx := s.tasks.ctx

	// Each step's time is logged: a slow start names its step.
	for _, step := range []struct {
		name string
		fn   func() error
	}{
		{"ledger", func() error { return s.openLedger(tctx) }},
		{"keys", func() error { return s.startKeys(tctx) }},
		{"projections", func() error { return s.startProjections(tctx) }},
		{"smpp", s.startSMPP},
		{"notifier", func() error { return s.startNotifier(tctx) }},
		{"scheduler", s.startScheduler},
		// A new essential task that needs the whole server (a store, the
		// projections and the notifier) starts here, in one line:
		//	s.tasks.run("name", part.Run)
		// Its death then stops serve like any other's.
		{"sip", s.startSIP},
	} {
		t0 := time.Now()
		if err := step.fn(); err != nil {
			return err
		}
		s.log.Info("started", "step", step.name, "s", time.Since(t0).Seconds())
	}
	hs, errc, err := s.startHTTP()
	if err != nil {
		return err
	}
	if !startup() {
		return ctx.Err() // a signal came during startup
	}
	s.ready.serving.Store(true)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	case <-s.tasks.died():
	}
	return s.drain(hs)
}

// openLedger opens the data directory and the log: the embedded store, or
// KurrentDB with a local copy of the Merkle tree that its sealer grows by
// following the log. It starts the sealer.
func (s *server) openLedger(ctx context.Context) error {
	d, err := s.o.data.openFor(false, s.o.storeURL != "")
	if err != nil {
		return err
	}
	s.d = d
	s.closers = append(s.closers, d.Close)
	if s.keys, err = auth.Open(filepath.Join(d.Dir, apiKeysFile)); err != nil {
		return err
	}
	s.closers = append(s.closers, s.keys.Close)
	if s.keys.Len() == 0 {
		tok, key, err := s.keys.Create(auth.RoleAdmin, "")
		if err != nil {
			return err
		}
		// Printed once, on stdout rather than in the log: it is a secret.
		fmt.Printf("admin key (shown once): %s\n", tok)
		s.log.Info("first start: created an admin key", "key", key.ID)
		s.firstAdmin = key.ID
	}
	s.reg = prometheus.NewRegistry()
	s.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	s.metrics = api.NewMetrics(s.reg)

	s.ledger, s.auditor = d.Store, api.LedgerAuditor{Store: d.Store, Hashes: d.Store, Checkpoints: d.Checkpoints,
		Seal: d.Sealer().Seal, Origin: d.Origin, VerifierKey: d.Secrets.VerifierKey}
	if s.o.storeURL == "" {
		sealer := d.Sealer()
		sealer.Log = s.log
		s.tasks.run("sealer", sealer.Run)
		s.metrics.Gauge("heed_store_commit_seconds_total", "Time the store spent committing (mostly fsync).", func() float64 {
			return d.Store.Stats().Commit.Seconds()
		})
		s.metrics.Gauge("heed_store_commits_total", "Store transactions (group commits).", func() float64 {
			return float64(d.Store.Stats().Commits)
		})
		d.Store.Observe(s.metrics.StoreCommitted)
	} else {
		ks, err := kurrent.Open(ctx, s.o.storeURL, kurrent.Options{Log: s.log, IndexPath: filepath.Join(d.Dir, "kurrent-index.db")})
		if err != nil {
			return err
		}
		s.closers = append(s.closers, ks.Close)
		if err := d.checkHead(ctx, "the KurrentDB cluster", ks); err != nil {
			return err
		}
		// Subject keys live in the cluster, so every instance opens what
		// another sealed and an erasure on one reaches all.
		clusterKeys, err := pii.New(kurrent.NewKeyStore(ks), d.Secrets.KEK)
		if err != nil {
			return err
		}
		if err := d.Keys.Close(); err != nil {
			return err
		}
		d.Keys = clusterKeys
		tree, err := merkle.OpenLog(filepath.Join(d.Dir, treeFile))
		if err != nil {
			return err
		}
		s.closers = append(s.closers, tree.Close)
		ksealer := &kurrent.Sealer{Store: ks, Tree: tree, Checkpoints: d.Checkpoints, Signer: d.Signer, Origin: d.Origin, Interval: d.SealEvery, Log: s.log}
		s.tasks.run("sealer", ksealer.Run)
		s.ledger, s.auditor.Store, s.auditor.Hashes, s.auditor.Seal = ks, ks, tree, nil
		s.log.Info("event store: KurrentDB")
	}
	s.store = s.metrics.Store(s.ledger)

	seals := &sealWatch{grace: max(s.o.sealGrace, 2*d.SealEvery)}
	s.ready.add("checkpoints", func(ctx context.Context) error {
		head, err := s.ledger.Head(ctx)
		if err != nil {
			return fmt.Errorf("store unavailable: %w", err)
		}
		sealed := int64(0)
		if cp, err := d.Checkpoints.Latest(); err == nil {
			sealed = cp.Size
		} else if !errors.Is(err, merkle.ErrNotFound) {
			return err
		}
		return seals.check(head, sealed, time.Now())
	})
	return nil
}

// startKeys records the first admin key as an event like any other and
// follows the key lifecycle in the log, so that revocations recorded by
// another instance, or by `heed keys revoke --store`, are honoured before
// the first request.
func (s *server) startKeys(ctx context.Context) error {
	if s.firstAdmin != "" {
		k, err := s.keys.Get(s.firstAdmin)
		if err == nil {
			var ev ledger.Event
			if ev, err = auth.CreatedEvent(k, "heed serve", "first start"); err == nil {
				_, err = auth.Record(ctx, s.ledger, ev)
			}
		}
		if err != nil {
			return err
		}
	}
	follower := &auth.Follower{Keys: s.keys, Log: s.ledger}
	if n, err := follower.CatchUp(ctx); err != nil {
		return err
	} else if n > 0 {
		s.log.Info("revocations recorded in the log applied to the key file", "keys", n)
	}
	s.tasks.run("key follower", func(ctx context.Context) error {
		return follower.Run(ctx, time.Second, 30*time.Second, func(err error) { s.log.Warn("api keys", "err", err) })
	})
	return nil
}

// startProjections starts the projections following the log and the line
// suspender acting on them.
func (s *server) startProjections(ctx context.Context) error {
	projections.Warm()
	runner, err := projections.NewRunner(s.ledger, s.o.rules, projections.Options{Dir: filepath.Join(s.d.Dir, "projections"), Log: s.log})
	if err != nil {
		return err
	}
	s.runner = runner
	// Run saves a snapshot on its way out, sparing the next start a replay.
	s.tasks.run("projections", runner.Run)
	s.ready.add("projections", func(ctx context.Context) error {
		if err := runner.Err(); err != nil {
			return err // an event it cannot read stopped it
		}
		if runner.Rebuilding() {
			return projections.ErrRebuilding
		}
		// Decisions wait for the projections to reach the head; far behind
		// (a rebuild, a restart on a big log) they would time out.
		head, err := s.ledger.Head(ctx)
		if err != nil {
			return fmt.Errorf("store unavailable: %w", err)
		}
		if lag := head - min(head, runner.Position()); lag > 10_000 {
			return fmt.Errorf("%d events behind", lag)
		}
		return nil
	})
	suspender := projections.NewSuspender(runner, s.store, "heed:line-suspender")
	s.tasks.run("line suspender", func(ctx context.Context) error { return suspender.Run(ctx, time.Minute) })
	s.decider = s.metrics.Decider(notify.Projections(runner))
	s.metrics.Gauge("heed_projection_undecodable", "1 when an event the projections cannot decode has stopped them (the error names its position).", func() float64 {
		if errors.Is(runner.Err(), projections.ErrUndecodable) {
			return 1
		}
		return 0
	})
	s.metrics.Gauge("heed_projection_lag_events", "Events appended but not yet applied to the projections.", func() float64 {
		head, err := s.ledger.Head(context.Background())
		if err != nil {
			return 0
		}
		return float64(head - min(head, runner.Position()))
	})
	return nil
}

// smscs are the SMPP connections: the configured SMSCs, or the simulator
// in-process.
type smscs struct {
	*notify.SMSCs
	sim    *sim.Server
	outbox *simOutbox
	log    *slog.Logger
	once   sync.Once
}

// close unbinds every client, waiting a while for submits in flight and
// for the SMSC's answers, then stops the simulator, which is still there
// to answer the unbinds.
func (c *smscs) close() {
	c.once.Do(func() {
		shutdown, stop := context.WithTimeout(context.Background(), 5*time.Second)
		defer stop()
		if c.SMSCs != nil {
			c.SMSCs.Close(shutdown, c.log)
		}
		if c.sim != nil {
			err := c.sim.Close()
			st := c.sim.Stats()
			c.log.Info("simulator stopped", "binds", st.Binds, "unbinds", st.Unbinds, "submits", st.Submits, "err", err)
		}
	})
}

// startSMPP binds to the SMSCs, starting the simulator when none is
// configured.
func (s *server) startSMPP() error {
	o := s.o
	c := &smscs{log: s.log}
	s.smpp = c
	conns := o.cfg.SMSCs
	if len(conns) == 0 {
		c.outbox = &simOutbox{}
		srv, err := sim.Start("127.0.0.1:0", sim.Config{ReceiptDelay: 20 * time.Millisecond, OnSubmit: c.outbox.add})
		if err != nil {
			return err
		}
		c.sim = srv
		// The simulator is local: a wide window costs nothing.
		conns = []smscConfig{{Name: "simulator", Addr: srv.Addr(), SystemID: o.smscUser, Window: 100}}
		s.log.Info("no SMSC configured: started the built-in SMSC simulator in-process", "addr", srv.Addr())
	}
	routes := make([]notify.SMSCRoute, len(conns))
	for i := range conns {
		cc := &conns[i]
		if cc.Name == "" {
			cc.Name = fmt.Sprintf("smsc%d", i+1)
		}
		routes[i] = notify.SMSCRoute{Name: cc.Name, Lines: cc.Lines}
	}
	m := s.metrics
	sender := notify.NewSMSCs(routes, o.verifyLine)
	sender.OnSubmit = func(smsc string) { m.SMPPSubmits.WithLabelValues(smsc).Inc() }
	sender.OnResponse = func(smsc, status string) { m.SMPPResponses.WithLabelValues(smsc, status).Inc() }
	sender.OnReceipt = func(smsc, state string) { m.SMPPReceipts.WithLabelValues(smsc, state).Inc() }
	configs := map[string]smpp.Config{}
	for _, cc := range conns {
		if _, dup := configs[cc.Name]; dup || cc.Addr == "" {
			return fmt.Errorf("%w: SMSC %q: names must be unique and addr is required", errUsage, cc.Name)
		}
		if o.window > 0 {
			cc.Window = o.window
		}
		if cc.SystemID == "" {
			cc.SystemID = o.smscUser
		}
		configs[cc.Name] = smpp.Config{Addr: cc.Addr, SystemID: cc.SystemID, Password: cc.Password, Source: o.line,
			Window: cc.Window, TPS: cc.TPS, Logger: s.log,
			Flash:   smpp.Flash{UCS2: cc.FlashUCS2, GSM7: cc.FlashGSM7, Subunit: cc.FlashSubunit},
			Handler: sender.Handler(cc.Name)}
	}
	sender.Bind(configs)
	c.SMSCs = sender
	m.SMPPLinks(func() []api.SMPPLink {
		var out []api.SMPPLink
		for _, l := range sender.Links() {
			out = append(out, api.SMPPLink{SMSC: l.Name, Bound: l.Stats.Bound, InFlight: l.Stats.InFlight,
				BindFailures: l.Stats.BindFailures, Reconnects: l.Stats.Reconnects, Throttles: l.Stats.Retried})
		}
		return out
	})
	grace := o.smscGrace
	s.ready.add("smsc", func(context.Context) error {
		var errs []error
		for _, l := range sender.Links() {
			if l.Stats.Bound || grace <= 0 {
				continue
			}
			if d := time.Since(l.Stats.DownSince); d > grace {
				err := fmt.Errorf("%s unbound for %s", l.Name, d.Round(time.Second))
				if l.Stats.BindError != nil {
					err = fmt.Errorf("%w (last bind attempt: %v)", err, l.Stats.BindError)
				}
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	})
	return nil
}

// startNotifier builds the notifier over the store, the projections and
// the SMSCs, marks what the last stop left unsettled, and starts its
// receipt sweep.
func (s *server) startNotifier(ctx context.Context) error {
	o := s.o
	lookup, _ := s.ledger.(notify.Looker)     // the embedded store has an id index
	leaves, _ := s.ledger.(notify.LeafReader) // and its leaves can be read undecoded
	if o.freeText {
		s.log.Warn("--dev-free-text is on: reminders may carry free text, which skips the template review; never run this in production")
	}
	sender := s.smpp.SMSCs
	// The notifier's writes (keyword opt-outs and unmatched replies carry
	// the message text) are sealed like the API's.
	ncfg := notify.Config{Store: pii.Seal(s.store, s.d.Keys), Lookup: lookup, Leaves: leaves, Decider: s.decider, Sender: sender, Sealer: s.d.Keys, FreeText: o.freeText,
		Keywords: o.cfg.Keywords, Lines: o.cfg.Lines, Senders: o.cfg.Senders, DefaultLine: o.line, SMSCOf: sender.Route, Log: s.log,
		Pseudonym: pii.PseudonymKey(s.d.Secrets.PseudonymKey).Pseudonym, OnState: s.metrics.ReminderState, ReceiptTimeout: o.receiptTimeout,
		Region: o.region, Tenants: s.runner.Tenants, OnUnmatched: s.metrics.InboundUnmatched}
	if err := ncfg.Check(); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	n := notify.New(ncfg)
	marked, err := n.Recover(ctx)
	if err != nil {
		return err
	}
	if marked > 0 {
		s.log.Warn("reminders dispatched before the last stop had no submit outcome; marked outcome unknown, not resubmitted", "count", marked)
	}
	s.n = n
	sender.Attach(n)
	s.metrics.Gauge("heed_reminders_open", "Reminders held in memory until they reach a final state.",
		func() float64 { return float64(n.Stats().Open) })
	s.metrics.Gauge("heed_reminders_recent", "Settled reminders remembered so GET /v1/reminders/{id} need not read the log.",
		func() float64 { return float64(n.Stats().Recent) })
	s.metrics.Gauge("heed_receipts_awaited", "SMSC message ids (in each form) held in memory for their receipt.",
		func() float64 { return float64(n.Stats().Awaiting) })
	s.metrics.Gauge("heed_receipts_unmatched_held", "Receipts held for a submit response that may still come.",
		func() float64 { return float64(n.Stats().Early) })
	// Forgets reminders whose receipt never came, matches late receipts
	// from the log, and checkpoints the notifier's recovery.
	s.tasks.run("receipt sweep", func(ctx context.Context) error {
		t := time.NewTicker(time.Minute)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-t.C:
			}
			if late, err := n.Sweep(ctx); err != nil {
				s.log.Warn("receipt sweep", "err", err)
			} else if late > 0 {
				s.log.Info("late receipts matched from the log", "count", late)
			}
			// Where the next start-up's recovery may resume.
			if err := n.Checkpoint(ctx); err != nil {
				s.log.Warn("notifier checkpoint", "err", err)
			}
		}
	})
	return nil
}

// startSIP runs the call gate on the --sip listeners, if any.
func (s *server) startSIP() error {
	if s.o.sipListen == "" {
		return nil
	}
	gate, err := listenSIP(s.o.sipListen, s.o.cfg, s.n, pii.PseudonymKey(s.d.Secrets.PseudonymKey), s.reg, s.log)
	if err != nil {
		return err
	}
	s.closers = append(s.closers, gate.Close)
	return nil
}

// startHTTP builds the API and starts serving it, with liveness,
// readiness, metrics and, when asked, pprof and the simulator's
// development routes. errc receives what ends the server.
func (s *server) startHTTP() (*http.Server, <-chan error, error) {
	o := s.o
	// The bolt log lets the contact index read leaves without decoding them.
	leaves, _ := s.ledger.(api.LeafReader)
	s.api = api.New(api.Config{Store: s.store, Leaves: leaves, ContactsDir: filepath.Join(s.d.Dir, "contacts"), Keys: s.keys, Pseudonyms: pii.PseudonymKey(s.d.Secrets.PseudonymKey), Decider: s.decider,
		Reminders: s.n, Texter: s.smpp.SMSCs, Auditor: s.auditor, PII: s.d.Keys, Gate: s.n, Metrics: s.metrics,
		Region: o.region, TrustedProxies: o.trusted, Log: s.log,
		Sessions: auth.NewSessions(auth.SessionConfig{PerNumber: o.codesWindow, PerDay: o.codesDay, PerDayRestricted: o.codesRestricted}),
		Lines:    o.cfg.Lines, LineStates: s.runner, MaxSkew: o.maxSkew, MaxBackdate: o.maxBackdate, Backup: liveBackup{d: s.d, apiKeys: s.keys},
		DecisionKey: decisionKey(s.d.Secrets.PseudonymKey), Planned: s.planned})
	s.tasks.run("contact index", s.api.Run)

	mux := http.NewServeMux()
	// Liveness: the process answers. Readiness says whether it should get
	// traffic.
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.Handle("GET /readyz", &s.ready)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{}))
	if o.simDev && s.smpp.outbox != nil {
		s.smpp.outbox.routes(mux, s.keys, s.smpp.sim)
		s.log.Warn("development routes /dev/sim/* are on")
	}
	mux.Handle("/", s.api)

	if o.pprof != "" {
		pl, err := net.Listen("tcp", o.pprof)
		if err != nil {
			return nil, nil, err
		}
		pm := http.NewServeMux()
		pm.HandleFunc("/debug/pprof/", pprof.Index)
		pm.HandleFunc("/debug/pprof/profile", pprof.Profile)
		pm.HandleFunc("/debug/pprof/trace", pprof.Trace)
		ps := &http.Server{Handler: pm, ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = ps.Serve(pl) }()
		s.closers = append(s.closers, ps.Close)
	}
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return nil, nil, err
	}
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 2 * time.Minute}
	s.log.Info("listening", "addr", ln.Addr().String(), "data", s.d.Dir, "smscs", len(s.smpp.Names()))
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	return hs, errc, nil
}

// decisionKey keys the tags of decision ids. It is derived from the
// pseudonym key, which every instance on one log shares, so an id one
// instance issued verifies on another and no new secret is kept.
func decisionKey(pseudonymKey []byte) []byte {
	k, err := hkdf.Key(sha256.New, pseudonymKey, nil, "heed decision tags v1", 32)
	if err != nil {
		panic(err) // only for a length sha256 cannot give
	}
	return k
}

// drain stops taking requests and lets those in flight finish, then
// unbinds from the SMSCs (receipts still arriving are recorded: the store
// is open), then stops the essential tasks. It returns the first task's
// death, or nil.
func (s *server) drain(hs *http.Server) error {
	s.ready.serving.Store(false)
	died := s.tasks.check(context.Background())
	s.log.Info("stopping: draining requests", "err", died)
	shutdown, stop := context.WithTimeout(context.Background(), 15*time.Second)
	defer stop()
	if err := hs.Shutdown(shutdown); err != nil && !errors.Is(err, http.ErrServerClosed) {
		s.log.Error("drain", "err", err)
	}
	if err := s.stop(); err != nil {
		s.log.Error("stopped", "err", err)
		return err
	}
	s.log.Info("stopped")
	return nil
}

// stop unbinds from the SMSCs, stops the essential tasks and releases what
// the steps opened, last opened first. It returns the first task's death.
// Safe to call twice.
func (s *server) stop() error {
	if s.stopSchedule != nil {
		s.stopSchedule()
	}
	if s.smpp != nil {
		s.smpp.close()
	}
	err := s.tasks.stop()
	for i := len(s.closers) - 1; i >= 0; i-- {
		if cerr := s.closers[i](); cerr != nil {
			s.log.Warn("close", "err", cerr)
		}
	}
	s.closers = nil
	return err
}

// listenSIP runs the call gate on the --sip listeners.
func listenSIP(spec string, cfg serveConfig, gate sip.Gate, p pii.PseudonymKey, reg prometheus.Registerer, log *slog.Logger) (*sip.Server, error) {
	ls, err := sip.ParseListen(spec)
	if err != nil {
		return nil, fmt.Errorf("%w: --sip: %v", errUsage, err)
	}
	if len(cfg.SIPTrunks) == 0 {
		log.Warn("call gate: no sip_trunks configured; every INVITE will be answered 403")
	}
	srv, err := sip.New(sip.Config{Trunks: cfg.SIPTrunks, Realm: cfg.SIPRealm, Digest: cfg.SIPDigest,
		Gate: gate, Normalize: sipNumber, Pseudonym: p.Pseudonym,
		Region:     func(e164 string) string { r, _ := projections.Region(e164); return r },
		Registerer: reg, Log: log})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errUsage, err)
	}
	bound, err := srv.Serve(ls)
	if err != nil {
		return nil, err
	}
	for _, l := range bound {
		log.Info("call gate listening", "network", l.Network, "addr", l.Addr, "trunks", len(cfg.SIPTrunks))
	}
	return srv, nil
}

// sipNumber reads a callee as PBXs write it in a Request-URI: E.164,
// the country code without '+', an international prefix (0086…) or the
// national number of the trunk's region.
//
// The API's strict reading goes first: it reads the commonest forms (E.164
// and national mobile numbers) without the phone-number library's full
// parse, and where it reads a number at all it reads the same one.
func sipNumber(raw, region string) (string, error) {
	if e164, err := api.Normalize(raw, region); err == nil {
		return e164, nil
	}
	return notify.SenderNumber(raw, 0, 0, region)
}

package main

import (
	"context"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/heed/heed/api"
	"github.com/heed/heed/api/auth"
	"github.com/heed/heed/ledger"
	"github.com/heed/heed/ledger/bundle"
	"github.com/heed/heed/ledger/kurrent"
	"github.com/heed/heed/ledger/merkle"
	"github.com/heed/heed/ledger/pii"
	"github.com/heed/heed/notify"
	"github.com/heed/heed/projections"
	"github.com/heed/heed/sip"
	"github.com/heed/heed/smpp"
	"github.com/heed/heed/smpp/sim"
	"github.com/heed/heed/smpp/text"
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
}

// serveGOGC is serve's garbage-collection target (see debug.SetGCPercent).
const serveGOGC = 400

// tuneGC sets serve's garbage-collection target unless GOGC is in the
// environment. Requests allocate a lot of short-lived garbage over a small
// live heap; at the default 100 the collector took ~15-20% of the CPU under
// load. The bench commands call it too, so that they measure the store as
// serve runs it.
func tuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(serveGOGC)
	}
}

func serve(ctx context.Context, args []string) error {
	fs := newFlags("serve")
	data := addDataFlags(fs)
	listen := fs.String("listen", "127.0.0.1:8080", "HTTP listen address")
	configFile := fs.String("config", "", "JSON config file: smsc or smscs (each with the lines it carries), lines (line → tenant), keywords")
	rulesFile := fs.String("rules", "", "JSON rules file (projections config); default rules when empty")
	region := fs.String("region", "CN", "default region for numbers written without a country code")
	smscAddr := fs.String("smsc", "", "SMSC host:port (default: start the built-in simulator in-process)")
	smscUser := fs.String("smsc-system-id", "heed", "SMPP system_id")
	smscPass := fs.String("smsc-password", "", "SMPP password")
	window := fs.Int("smsc-window", 0, "SMPP window (outstanding submits); 0 = client default")
	receiptTimeout := fs.Duration("receipt-timeout", 24*time.Hour, "how long a submitted reminder is held in memory for its receipt; a later receipt is matched from the log")
	line := fs.String("line", "10690001", "default sender line of reminders and codes")
	lines := fs.String("lines", "", "line=tenant pairs, comma-separated: which tenant owns replies to which line")
	verifyLine := fs.String("verify-line", "", "sender line of sign-in codes (default --line); never a tenant's line")
	codesWindow := fs.Int("codes-per-10min", 3, "sign-in codes a number may be sent per 10 minutes")
	codesDay := fs.Int("codes-per-day", 5, "sign-in codes a number may be sent per 24 hours")
	codesRestricted := fs.Int("codes-per-day-restricted", 1, "sign-in codes per 24 hours to a number that opted out of everything or is on a national list")
	keywords := fs.String("keywords", "", "opt-out keywords, comma-separated (default: TD, 退订, STOP, UNSUBSCRIBE, …)")
	proxies := fs.String("trusted-proxies", "", "reverse proxies whose X-Forwarded-For the customer rate limits believe: addresses and CIDR prefixes, comma-separated (default none)")
	pprofAddr := fs.String("pprof", "", "serve net/http/pprof on this address (e.g. 127.0.0.1:6060); off when empty")
	storeURL := fs.String("store", "", "event store: empty for the embedded store in --data, or a KurrentDB connection string (kurrentdb://host:2113?tls=false)")
	smscGrace := fs.Duration("smsc-grace", 30*time.Second, "how long an SMSC may stay unbound before /readyz fails; 0 leaves the SMSC out of readiness")
	sealGrace := fs.Duration("seal-grace", time.Minute, "how long an acknowledged event may stay uncovered by a checkpoint before /readyz fails")
	maxSkew := fs.Duration("max-skew", 5*time.Minute, "how far ahead of the clock a write's occurred_at may be")
	maxBackdate := fs.Duration("max-backdate", 30*24*time.Hour, "how far back a write's occurred_at may be, unless a key allowed to backfill asks to backfill")
	sipListen := fs.String("sip", "", "run the call gate, a SIP redirect server, on these listeners (e.g. udp:127.0.0.1:5070,tcp:127.0.0.1:5070); trunks come from --config's sip_trunks; off when empty")
	freeText := fs.Bool("dev-free-text", false, "let reminders carry free text instead of an approved template (local trials only: anything reaches any current customer as flash)")
	simDev := fs.Bool("sim-dev", false, "with the built-in simulator: serve /dev/sim/outbox and /dev/sim/mo to admin keys (development and tests only)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	tuneGC()
	trusted, err := api.ParseProxies(*proxies)
	if err != nil {
		return fmt.Errorf("%w: --trusted-proxies: %v", errUsage, err)
	}

	var cfg serveConfig
	if *configFile != "" {
		b, err := os.ReadFile(*configFile)
		if err != nil {
			return err
		}
		dec := json.NewDecoder(strings.NewReader(string(b)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&cfg); err != nil {
			return fmt.Errorf("%w: %s: %v", errUsage, *configFile, err)
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
			return fmt.Errorf("%w: --lines wants line=tenant pairs", errUsage)
		}
		cfg.Lines[l] = t
	}
	if *keywords != "" {
		cfg.Keywords = strings.Split(*keywords, ",")
	}
	// Sign-in codes go from a line heed owns: a reply to them must not
	// withdraw consent at a business.
	if owner, ok := cfg.Lines[*verifyLine]; ok && *verifyLine != "" {
		return fmt.Errorf("%w: --verify-line %s is tenant %q's line; codes go from a line heed owns", errUsage, *verifyLine, owner)
	}
	if *verifyLine == "" {
		*verifyLine = *line
		if owner, ok := cfg.Lines[*line]; ok {
			// Allowed (the default line is heed's to choose), but a reply
			// to a code then withdraws at that tenant.
			log.Info("sign-in codes go from the default line, which a tenant owns; --verify-line names another", "line", *line, "tenant", owner)
		}
	}
	if *codesWindow < 1 || *codesDay < 1 || *codesRestricted < 1 {
		return fmt.Errorf("%w: the --codes-per-* limits must be at least 1", errUsage)
	}
	rules := projections.Default()
	if *rulesFile != "" {
		var err error
		if rules, err = projections.LoadConfig(*rulesFile); err != nil {
			return err
		}
	}

	d, err := data.openFor(false, *storeURL != "")
	if err != nil {
		return err
	}
	defer d.Close()
	keys, err := auth.Open(filepath.Join(d.Dir, apiKeysFile))
	if err != nil {
		return err
	}
	defer keys.Close()
	firstAdmin := ""
	if keys.Len() == 0 {
		tok, key, err := keys.Create(auth.RoleAdmin, "")
		if err != nil {
			return err
		}
		// Printed once, on stdout rather than in the log: it is a secret.
		fmt.Printf("admin key (shown once): %s\n", tok)
		log.Info("first start: created an admin key", "key", key.ID)
		firstAdmin = key.ID
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics := api.NewMetrics(reg)
	// A signal ends sig. The essential tasks run on ctx, which ends only
	// after the HTTP drain (a signal during startup ends it at once).
	sig := ctx
	ctx, cancel := context.WithCancel(context.WithoutCancel(sig))
	defer cancel()
	startup := context.AfterFunc(sig, cancel)
	defer startup()
	var bg background
	defer bg.wait()
	defer func() { bg.stop(); cancel() }()
	var ready readiness
	ready.add("task", bg.check)

	// The log: the embedded store, or KurrentDB with a local copy of the
	// Merkle tree that its sealer grows by following the log.
	led := ledgerParts{d: d, base: d.Store, hashes: d.Store, seal: d.Sealer().Seal}
	if *storeURL != "" {
		if !kurrent.IsURL(*storeURL) {
			return fmt.Errorf("%w: --store must be a kurrentdb:// or esdb:// connection string", errUsage)
		}
		ks, err := kurrent.Open(ctx, *storeURL, kurrent.Options{Log: log, IndexPath: filepath.Join(d.Dir, "kurrent-index.db")})
		if err != nil {
			return err
		}
		defer ks.Close()
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
		defer tree.Close()
		ksealer := &kurrent.Sealer{Store: ks, Tree: tree, Checkpoints: d.Checkpoints, Signer: d.Signer, Origin: d.Origin, Interval: d.SealEvery, Log: log}
		bg.run(log, "sealer", func() error { return ksealer.Run(ctx) })
		led.base, led.hashes, led.seal = ks, tree, nil
		log.Info("event store: KurrentDB")
	} else {
		sealer := d.Sealer()
		sealer.Log = log
		bg.run(log, "sealer", func() error { return sealer.Run(ctx) })
		metrics.Gauge("heed_store_commit_seconds_total", "Time the store spent committing (mostly fsync).", func() float64 {
			return d.Store.Stats().Commit.Seconds()
		})
		metrics.Gauge("heed_store_commits_total", "Store transactions (group commits).", func() float64 {
			return float64(d.Store.Stats().Commits)
		})
	}
	store := metrics.Store(led.base)

	// Key lifecycle: the first admin key is an event like any other, and
	// revocations recorded in the log (by another instance, or by `heed
	// keys revoke --store`) are honoured before the first request.
	if firstAdmin != "" {
		k, err := keys.Get(firstAdmin)
		if err == nil {
			var ev ledger.Event
			if ev, err = auth.CreatedEvent(k, "heed serve", "first start"); err == nil {
				_, err = auth.Record(ctx, led.base, ev)
			}
		}
		if err != nil {
			return err
		}
	}
	keysFollower := &auth.Follower{Keys: keys, Log: led.base}
	if n, err := keysFollower.CatchUp(ctx); err != nil {
		return err
	} else if n > 0 {
		log.Info("revocations recorded in the log applied to the key file", "keys", n)
	}
	bg.run(log, "key follower", func() error {
		return keysFollower.Run(ctx, time.Second, 30*time.Second, func(err error) { log.Warn("api keys", "err", err) })
	})

	// Projections follow the log.
	projections.Warm()
	runner, err := projections.NewRunner(led.base, rules, projections.Options{Dir: filepath.Join(d.Dir, "projections")})
	if err != nil {
		return err
	}
	bg.run(log, "projections", func() error { return runner.Run(ctx) })
	ready.add("projections", func(ctx context.Context) error {
		// Decisions wait for the projections to reach the head; far behind
		// (a rebuild, a restart on a big log) they would time out.
		head, err := led.base.Head(ctx)
		if err != nil {
			return fmt.Errorf("store unavailable: %w", err)
		}
		if lag := head - min(head, runner.Position()); lag > 10_000 {
			return fmt.Errorf("%d events behind", lag)
		}
		return nil
	})
	seals := &sealWatch{grace: max(*sealGrace, 2*d.SealEvery)}
	ready.add("checkpoints", func(ctx context.Context) error {
		head, err := led.base.Head(ctx)
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
	suspender := projections.NewSuspender(runner, store, "heed:line-suspender")
	bg.run(log, "line suspender", func() error { return suspender.Run(ctx, time.Minute) })
	decider := metrics.Decider(notify.Projections(runner))
	metrics.Gauge("heed_projection_lag_events", "Events appended but not yet applied to the projections.", func() float64 {
		head, err := led.base.Head(context.Background())
		if err != nil {
			return 0
		}
		return float64(head - min(head, runner.Position()))
	})

	// SMPP: the configured SMSCs, or the simulator in-process.
	var simSrv *sim.Server
	var outbox *simOutbox
	var simOnce, smppOnce sync.Once
	stopSim := func() {
		simOnce.Do(func() {
			if simSrv == nil {
				return
			}
			err := simSrv.Close()
			st := simSrv.Stats()
			log.Info("simulator stopped", "binds", st.Binds, "unbinds", st.Unbinds, "submits", st.Submits, "err", err)
		})
	}
	conns := cfg.SMSCs
	switch {
	case *smscAddr != "":
		conns = []smscConfig{{Name: "smsc", Addr: *smscAddr, SystemID: *smscUser, Password: *smscPass}}
	case cfg.SMSC != nil:
		conns = []smscConfig{*cfg.SMSC}
	}
	if len(conns) == 0 {
		outbox = &simOutbox{}
		simSrv, err = sim.Start("127.0.0.1:0", sim.Config{ReceiptDelay: 20 * time.Millisecond, OnSubmit: outbox.add})
		if err != nil {
			return err
		}
		// Stopped after the clients have unbound (see closeSMPP).
		defer stopSim()
		// The simulator is local: a wide window costs nothing.
		conns = []smscConfig{{Name: "simulator", Addr: simSrv.Addr(), SystemID: *smscUser, Window: 100}}
		log.Info("no SMSC configured: started the built-in SMSC simulator in-process", "addr", simSrv.Addr())
	}
	var notifier atomic.Pointer[notify.Notifier]
	sender := &smppSender{byLine: map[string]string{}, m: metrics, verify: *verifyLine}
	metrics.SMPPLinks(func() []api.SMPPLink {
		var out []api.SMPPLink
		for _, l := range sender.links() {
			out = append(out, api.SMPPLink{SMSC: l.name, Bound: l.st.Bound, InFlight: l.st.InFlight,
				BindFailures: l.st.BindFailures, Reconnects: l.st.Reconnects, Throttles: l.st.Retried})
		}
		return out
	})
	smscs := map[string]smpp.Config{}
	for i, c := range conns {
		if c.Name == "" {
			c.Name = fmt.Sprintf("smsc%d", i+1)
		}
		if _, dup := smscs[c.Name]; dup || c.Addr == "" {
			return fmt.Errorf("%w: SMSC %q: names must be unique and addr is required", errUsage, c.Name)
		}
		if *window > 0 {
			c.Window = *window
		}
		if c.SystemID == "" {
			c.SystemID = *smscUser
		}
		name := c.Name
		smscs[name] = smpp.Config{Addr: c.Addr, SystemID: c.SystemID, Password: c.Password, Source: *line,
			Window: c.Window, TPS: c.TPS, Logger: log,
			Flash: smpp.Flash{UCS2: c.FlashUCS2, GSM7: c.FlashGSM7, Subunit: c.FlashSubunit},
			Handler: func(in smpp.Inbound) error {
				n := notifier.Load()
				if n == nil {
					return errors.New("heed: not ready")
				}
				return inbound(context.Background(), n, metrics, name, in)
			}}
		sender.names = append(sender.names, name)
		if i == 0 {
			sender.def = name
		}
		for _, l := range c.Lines {
			sender.byLine[l] = name
		}
	}
	slices.Sort(sender.names)
	sender.pool = smpp.NewPool(smscs)
	// closeSMPP unbinds every client, waiting (up to 5 s) for submits in
	// flight and for the SMSC's answers; on shutdown it runs before the
	// simulator stops, so the simulator is there to answer.
	closeSMPP := func() {
		smppOnce.Do(func() {
			shutdown, stop := context.WithTimeout(context.Background(), 5*time.Second)
			defer stop()
			for _, name := range sender.names {
				c, _ := sender.pool.Client(name)
				if err := c.Close(shutdown); err != nil {
					log.Warn("unbind", "smsc", name, "err", err)
				} else {
					log.Info("smpp unbound", "smsc", name)
				}
			}
		})
	}
	defer closeSMPP()
	ready.add("smsc", func(context.Context) error {
		var errs []error
		for _, l := range sender.links() {
			if l.st.Bound || *smscGrace <= 0 {
				continue
			}
			if d := time.Since(l.st.DownSince); d > *smscGrace {
				err := fmt.Errorf("%s unbound for %s", l.name, d.Round(time.Second))
				if l.st.BindError != nil {
					err = fmt.Errorf("%w (last bind attempt: %v)", err, l.st.BindError)
				}
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	})

	lookup, _ := led.base.(notify.Looker) // the embedded store has an id index
	if *freeText {
		log.Warn("--dev-free-text is on: reminders may carry free text, which skips the template review; never run this in production")
	}
	// The notifier's writes (keyword opt-outs and unmatched replies carry
	// the message text) are sealed like the API's.
	ncfg := notify.Config{Store: pii.Seal(store, d.Keys), Lookup: lookup, Decider: decider, Sender: sender, Sealer: d.Keys, FreeText: *freeText,
		Keywords: cfg.Keywords, Lines: cfg.Lines, Senders: cfg.Senders, DefaultLine: *line, SMSCOf: sender.route, Log: log,
		Pseudonym: pseudonymizer{d}.Pseudonym, OnState: metrics.ReminderState, ReceiptTimeout: *receiptTimeout,
		Region: *region, Tenants: runner.Tenants, OnUnmatched: metrics.InboundUnmatched}
	if err := ncfg.Check(); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	n := notify.New(ncfg)
	marked, err := n.Recover(ctx)
	if err != nil {
		return err
	}
	if marked > 0 {
		log.Warn("reminders dispatched before the last stop had no submit outcome; marked outcome unknown, not resubmitted", "count", marked)
	}
	notifier.Store(n)
	metrics.Gauge("heed_reminders_open", "Reminders held in memory until they reach a final state.",
		func() float64 { return float64(n.Stats().Open) })
	metrics.Gauge("heed_reminders_recent", "Settled reminders remembered so GET /v1/reminders/{id} need not read the log.",
		func() float64 { return float64(n.Stats().Recent) })
	metrics.Gauge("heed_receipts_awaited", "SMSC message ids (in each form) held in memory for their receipt.",
		func() float64 { return float64(n.Stats().Awaiting) })
	metrics.Gauge("heed_receipts_unmatched_held", "Receipts held for a submit response that may still come.",
		func() float64 { return float64(n.Stats().Early) })
	// Forgets reminders whose receipt never came and matches late receipts
	// from the log.
	bg.run(log, "receipt sweep", func() error {
		t := time.NewTicker(time.Minute)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-t.C:
			}
			if late, err := n.Sweep(ctx); err != nil {
				log.Warn("receipt sweep", "err", err)
			} else if late > 0 {
				log.Info("late receipts matched from the log", "count", late)
			}
		}
	})

	if *sipListen != "" {
		gate, err := startSIP(*sipListen, cfg, n, pseudonymizer{d}, reg, log)
		if err != nil {
			return err
		}
		defer gate.Close()
	}

	// The bolt log lets the contact index read leaves without decoding them.
	leaves, _ := led.base.(api.LeafReader)
	srv := api.New(api.Config{Store: store, Leaves: leaves, Keys: keys, Pseudonyms: pseudonymizer{d}, Decider: decider,
		Reminders: n, Texter: sender, Auditor: auditor{led}, PII: d.Keys, Gate: n, Metrics: metrics,
		Region: *region, TrustedProxies: trusted, Log: log,
		Sessions: auth.NewSessions(auth.SessionConfig{PerNumber: *codesWindow, PerDay: *codesDay, PerDayRestricted: *codesRestricted}),
		Lines:    cfg.Lines, LineStates: runner, MaxSkew: *maxSkew, MaxBackdate: *maxBackdate, Backup: liveBackup{d: d, apiKeys: keys},
		DecisionKey: decisionKey(d.Secrets.PseudonymKey)})
	bg.run(log, "contact index", func() error { return srv.Run(ctx) })

	mux := http.NewServeMux()
	// Liveness: the process answers. Readiness says whether it should get
	// traffic.
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.Handle("GET /readyz", &ready)
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	if *simDev && outbox != nil {
		outbox.routes(mux, keys, simSrv)
		log.Warn("development routes /dev/sim/* are on")
	}
	mux.Handle("/", srv)

	if *pprofAddr != "" {
		pl, err := net.Listen("tcp", *pprofAddr)
		if err != nil {
			return err
		}
		pm := http.NewServeMux()
		pm.HandleFunc("/debug/pprof/", pprof.Index)
		pm.HandleFunc("/debug/pprof/profile", pprof.Profile)
		pm.HandleFunc("/debug/pprof/trace", pprof.Trace)
		ps := &http.Server{Handler: pm, ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = ps.Serve(pl) }()
		defer ps.Close()
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 2 * time.Minute}
	log.Info("listening", "addr", ln.Addr().String(), "data", d.Dir, "smscs", len(sender.names))
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	if !startup() {
		return sig.Err() // a signal came during startup
	}
	ready.serving.Store(true)
	var served error
	select {
	case err := <-errc:
		return err
	case <-sig.Done():
	case <-bg.diedC():
		served = bg.Err()
	}
	// Drain: stop taking requests and let those in flight finish, then
	// unbind from the SMSC, then stop the essential tasks.
	ready.serving.Store(false)
	log.Info("stopping: draining requests", "err", served)
	shutdown, stop := context.WithTimeout(context.Background(), 15*time.Second)
	defer stop()
	if err := hs.Shutdown(shutdown); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Error("drain", "err", err)
	}
	// Then unbind (receipts still arriving are recorded: the store is
	// open), then stop the simulator, then the followers.
	closeSMPP()
	stopSim()
	bg.stop()
	cancel()
	bg.wait()
	if err := runner.Snapshot(); err != nil {
		log.Warn("snapshot", "err", err)
	}
	if served != nil {
		log.Error("stopped", "err", served)
		return served
	}
	log.Info("stopped")
	return nil
}

// The adapters below connect the parts to the small interfaces api and
// notify define for what they consume.

// pseudonymizer keys numbers with the ledger's pseudonym key.
type pseudonymizer struct{ d *dataDir }

func (p pseudonymizer) Pseudonym(e164 string) string {
	return pii.Pseudonym(p.d.Secrets.PseudonymKey, e164)
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

// smppSender submits through the SMSC that carries each line, and counts
// what happens.
type smppSender struct {
	pool   *smpp.Pool
	names  []string          // of the pool's connections, sorted
	byLine map[string]string // line → SMSC name
	def    string            // the SMSC of every other line
	verify string            // the line sign-in codes go from
	m      *api.Metrics
}

// smscLink is one SMSC connection's state, for readiness and metrics.
type smscLink struct {
	name string
	st   smpp.Stats
}

func (s *smppSender) links() []smscLink {
	out := make([]smscLink, 0, len(s.names))
	for _, name := range s.names {
		c, _ := s.pool.Client(name)
		out = append(out, smscLink{name, c.Stats()})
	}
	return out
}

// route names the SMSC a line's messages go through.
func (s *smppSender) route(line string) string {
	if name, ok := s.byLine[line]; ok {
		return name
	}
	return s.def
}

func (s *smppSender) submit(ctx context.Context, smsc string, m smpp.Message) (smpp.Result, error) {
	s.m.SMPPSubmits.WithLabelValues(smsc).Inc()
	res, err := s.pool.Submit(ctx, smsc, m)
	status := "0x00000000"
	var se *smpp.Error
	if errors.As(err, &se) {
		status = fmt.Sprintf("0x%08x", uint32(se.Status))
	}
	s.m.SMPPResponses.WithLabelValues(smsc, status).Inc()
	return res, err
}

func (s *smppSender) Submit(ctx context.Context, m notify.Message) ([]string, error) {
	res, err := s.submit(ctx, s.route(m.Line), smpp.Message{To: strings.TrimPrefix(m.Number, "+"), Text: m.Text, Flash: m.Flash,
		RegisteredDelivery: 1, From: m.Line})
	switch smpp.KindOf(err) {
	case 0:
		return res.IDs, err
	case smpp.Permanent:
		return nil, fmt.Errorf("%w: %v", notify.ErrPermanent, err)
	case smpp.NotSent:
		if errors.Is(err, smpp.ErrNotBound) {
			return nil, fmt.Errorf("%w: %v", notify.ErrUnavailable, err)
		}
		return nil, fmt.Errorf("%w: %v", notify.ErrNotSent, err)
	}
	return res.IDs, err
}

func (s *smppSender) SendText(ctx context.Context, e164, text string) error {
	_, err := s.submit(ctx, s.route(s.verify), smpp.Message{To: strings.TrimPrefix(e164, "+"), Text: text, From: s.verify})
	return err
}

// inbound routes what the SMSC delivers: receipts and opt-out replies.
func inbound(ctx context.Context, n *notify.Notifier, m *api.Metrics, smsc string, in smpp.Inbound) error {
	if r := in.Receipt; r != nil {
		if !r.State.Final() {
			return nil
		}
		m.SMPPReceipts.WithLabelValues(smsc, r.State.String()).Inc()
		id := r.SubmitID
		if id == "" {
			id = r.ID
		}
		return n.OnReceipt(ctx, notify.Receipt{MessageID: id, Delivered: r.State == smpp.Delivered, Status: r.State.String()})
	}
	// The notifier reads the sender by its TON and NPI and records what it
	// cannot act on; an error makes the SMSC deliver again later.
	_, err := n.OnInbound(ctx, notify.Inbound{From: in.From, FromTON: in.FromTON, FromNPI: in.FromNPI,
		To: in.To, Text: in.Text, SMSC: smsc, Concat: in.Concat})
	return err
}

// ledgerParts are the log and its tree, whichever store holds them.
type ledgerParts struct {
	d      *dataDir
	base   ledger.Store
	hashes tlog.HashReader
	// seal cuts a checkpoint now; nil when another process seals (KurrentDB).
	seal func(context.Context) (merkle.Checkpoint, error)
}

// auditor serves checkpoints, proofs and bundles.
type auditor struct{ l ledgerParts }

func (a auditor) latest(ctx context.Context) (merkle.Checkpoint, error) {
	if a.l.seal != nil {
		// Cover every event acknowledged so far.
		if cp, err := a.l.seal(ctx); err == nil || !errors.Is(err, merkle.ErrNotFound) {
			return cp, err
		}
	}
	// Another instance may hold the sealing lease: wait briefly for a
	// checkpoint that covers the head.
	deadline := time.Now().Add(5 * time.Second)
	for {
		cp, err := a.l.d.Checkpoints.Latest()
		head, herr := a.l.base.Head(ctx)
		if herr != nil {
			return merkle.Checkpoint{}, herr
		}
		if (err == nil && uint64(cp.Size) >= head) || time.Now().After(deadline) {
			return cp, err
		}
		if err := ctx.Err(); err != nil {
			return merkle.Checkpoint{}, err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (a auditor) Checkpoint(ctx context.Context) (api.Checkpoint, error) {
	cp, err := a.latest(ctx)
	if err != nil {
		return api.Checkpoint{}, err
	}
	return api.Checkpoint{Size: cp.Size, Root: cp.Root[:], Note: string(cp.Note)}, nil
}

func (a auditor) Inclusion(_ context.Context, position, size int64) ([][]byte, error) {
	p, err := merkle.Inclusion(a.l.hashes, position, size)
	return hashes(p), err
}

func (a auditor) Consistency(_ context.Context, older, newer int64) ([][]byte, error) {
	p, err := merkle.Consistency(a.l.hashes, older, newer)
	return hashes(p), err
}

func hashes(hs []tlog.Hash) [][]byte {
	out := make([][]byte, len(hs))
	for i := range hs {
		out[i] = hs[i][:]
	}
	return out
}

func (a auditor) Bundle(ctx context.Context, w io.Writer) error {
	cp, err := a.latest(ctx)
	if err != nil && !errors.Is(err, merkle.ErrNotFound) {
		return err
	}
	cps, err := a.l.d.checkpoints(cp.Size)
	if err != nil {
		return err
	}
	return bundle.Export(ctx, w, a.l.base, a.l.d.Origin, a.l.d.Secrets.VerifierKey, cps, bundle.ExportOptions{Size: cp.Size})
}

// simOutbox keeps what the in-process simulator accepted, for /dev/sim/outbox.
type simOutbox struct {
	mu   sync.Mutex
	msgs []outboxMessage
}

type outboxMessage struct {
	To    string `json:"to"`
	From  string `json:"from"`
	Text  string `json:"text"`
	Flash bool   `json:"flash"`
	ID    string `json:"id"`
}

func (o *simOutbox) add(s sim.Submit) {
	p := s.PDU
	body := p.ShortMessage
	if p.ESMClass&0x40 != 0 && len(body) > 0 && int(body[0])+1 <= len(body) {
		body = body[int(body[0])+1:] // drop the UDH
	}
	m := outboxMessage{To: p.Dest, From: p.Source, Text: text.Decode(p.DataCoding, body), ID: s.ID,
		Flash: p.DataCoding&0x13 == 0x10 || p.DataCoding&0xf3 == 0xf0}
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.msgs) >= 10_000 {
		o.msgs = o.msgs[1:]
	}
	o.msgs = append(o.msgs, m)
}

// routes serves the simulator's outbox and MO injection to admin keys.
func (o *simOutbox) routes(mux *http.ServeMux, keys *auth.Keys, s *sim.Server) {
	admin := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			k, err := keys.Lookup(strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "))
			if err != nil || k.Role != auth.RoleAdmin {
				http.Error(w, "admin key required", http.StatusUnauthorized)
				return
			}
			h(w, r)
		}
	}
	mux.HandleFunc("GET /dev/sim/outbox", admin(func(w http.ResponseWriter, r *http.Request) {
		to := strings.TrimPrefix(r.URL.Query().Get("to"), "+")
		o.mu.Lock()
		out := []outboxMessage{}
		for _, m := range o.msgs {
			if to == "" || m.To == to {
				out = append(out, m)
			}
		}
		o.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(out)
	}))
	mux.HandleFunc("POST /dev/sim/mo", admin(func(w http.ResponseWriter, r *http.Request) {
		var mo sim.MO
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&mo); err != nil {
			http.Error(w, "want {From, To, Text}", http.StatusBadRequest)
			return
		}
		mo.From = strings.TrimPrefix(mo.From, "+")
		if err := s.Inject("", mo); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	}))
}

// startSIP runs the call gate on the --sip listeners.
func startSIP(spec string, cfg serveConfig, gate sip.Gate, p pseudonymizer, reg prometheus.Registerer, log *slog.Logger) (*sip.Server, error) {
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
func sipNumber(raw, region string) (string, error) { return notify.SenderNumber(raw, 0, 0, region) }

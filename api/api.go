// Package api is heed's HTTP interface: huma v2 operations for businesses,
// customers and auditors, bearer-key auth and tenancy, RFC 9457 problem
// details, and the metrics wiring.
//
// Every business operation works only inside the tenant of the key that
// calls it; no operation takes a tenant from the request.
package api

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"

	"github.com/heed/heed/api/auth"
	"github.com/heed/heed/ledger"
	"github.com/heed/heed/ledger/pii"
	"github.com/heed/heed/notify"
	"github.com/heed/heed/projections/contactindex"
)

// MaxBody is the largest request body accepted, in bytes.
const MaxBody = 1 << 20

// Keys resolves bearer tokens to API keys.
type Keys interface {
	Lookup(token string) (auth.Key, error)
}

// Pseudonymizer turns an E.164 number into the subject events carry.
type Pseudonymizer interface {
	Pseudonym(e164 string) string
}

// Reminders runs service reminders.
type Reminders interface {
	Remind(ctx context.Context, r notify.Request) (notify.Result, error)
	Get(ctx context.Context, tenant, id string) (notify.Result, error)
}

// Texter sends an ordinary (not flash) SMS, used for sign-in codes.
type Texter interface {
	SendText(ctx context.Context, e164, text string) error
}

// Auditor serves the tamper-evidence material of the log.
type Auditor interface {
	// Checkpoint returns the latest signed checkpoint note.
	Checkpoint(ctx context.Context) (Checkpoint, error)
	// Inclusion proves the event at position is in the tree of size.
	Inclusion(ctx context.Context, position, size int64) ([][]byte, error)
	// Consistency proves the tree of size older is a prefix of newer.
	Consistency(ctx context.Context, older, newer int64) ([][]byte, error)
	// Bundle writes the audit bundle (what `heed export` writes).
	Bundle(ctx context.Context, w io.Writer) error
}

// Checkpoint is a signed tree head.
type Checkpoint struct {
	Size int64  `json:"size" doc:"number of events the tree covers"`
	Root []byte `json:"root" doc:"RFC 6962 root hash"`
	Note string `json:"note" doc:"the checkpoint as a signed note (C2SP tlog-checkpoint)"`
	// Rotations lets a client that trusts an older signing key follow the
	// chain to the key that signs Note.
	Rotations []string `json:"rotations,omitempty" doc:"the signed checkpoints that announce a change of signing key, oldest first; each is signed by the old key and the new"`
}

// Gate orders writes that can turn a decision against reminders in flight:
// Exclusive runs fn while no reminder to subject is between its dispatch
// and its submit (notify.Notifier implements it).
type Gate interface {
	Exclusive(subject string, fn func() error) error
}

// Config wires the API. Store, Keys, Pseudonyms, PII and Decider are
// required; a nil Reminders, Texter or Auditor turns its operations into
// 503s.
type Config struct {
	Store      ledger.Store
	Keys       Keys
	Sessions   *auth.Sessions
	Pseudonyms Pseudonymizer
	// PII holds the per-(tenant, subject) data keys: every write goes
	// through a pii.Sealing store on them, erasures destroy them, and staff
	// reads of personal fields open with them. Without it, a write carrying
	// personal fields is refused.
	PII       *pii.Keys
	Decider   notify.Decider
	Reminders Reminders
	// Planned, if set, serves the queue of planned reminders and what
	// they will say.
	Planned Planned
	Texter  Texter
	Auditor Auditor
	Gate    Gate
	// Backup, if set, enables GET /v1/admin/backup.
	Backup Backuper
	// Leaves, if set, reads Store's leaves undecoded (ledger/bolt does):
	// the cross-tenant contact index then costs a little per event instead
	// of a second decode of the whole log.
	Leaves LeafReader
	// ContactsDir, if set, keeps the contact index's snapshots, so a start
	// reads the log from the last one rather than from position 1.
	ContactsDir string
	Metrics     *Metrics
	// TrustedProxies are the reverse proxies whose X-Forwarded-For the
	// customer rate limits believe (see clientIP); none by default.
	TrustedProxies []netip.Prefix
	// Region is the default region for numbers without a country code [CN].
	Region  string
	Log     *slog.Logger
	Version string
	Now     func() time.Time

	// Lines maps each configured line to the tenant that owns it: only
	// that tenant records contacts, complaints and decisions on it.
	Lines map[string]string
	// LineStates, if set, serves GET /v1/lines/{line}.
	LineStates LineStates
	// MaxSkew is how far ahead of the clock a client's occurred_at may be
	// [5 minutes]; MaxBackdate how far back without backfill [30 days].
	MaxSkew     time.Duration
	MaxBackdate time.Duration
	// DecisionKey keys the tags of decision ids (heed serve derives it
	// from the pseudonym key); empty means a random key, so ids verify for
	// this process's life only. DecisionTTL is how long an allowing
	// decision stays good for a contact [15 minutes].
	DecisionKey []byte
	DecisionTTL time.Duration
}

// Server is the HTTP API.
type Server struct {
	cfg      Config
	api      huma.API
	mux      *http.ServeMux
	contacts ContactIndex
	// codeLocks serialise sign-in challenges per number.
	codeLocks stripes
	people    *people
	tags      tagger
	reports   reportCache
	// reminderSource answers /me's in-process GET /v1/me/reminders; nil
	// is the API itself (tests stand in for it).
	reminderSource http.Handler
}

// New builds the API. Call Run to keep its cross-tenant index current.
func New(cfg Config) *Server {
	if cfg.Region == "" {
		cfg.Region = "CN"
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Sessions == nil {
		cfg.Sessions = auth.NewSessions(auth.SessionConfig{})
	}
	if cfg.Version == "" {
		cfg.Version = "1"
	}
	if cfg.MaxSkew <= 0 {
		cfg.MaxSkew = 5 * time.Minute
	}
	if cfg.MaxBackdate <= 0 {
		cfg.MaxBackdate = 30 * 24 * time.Hour
	}
	if cfg.DecisionTTL <= 0 {
		cfg.DecisionTTL = defaultDecisionTTL
	}
	if cfg.Gate == nil {
		cfg.Gate = noGate{}
	}
	// The one place writes pass: personal fields are sealed here, whichever
	// operation wrote them.
	cfg.Store = pii.Seal(cfg.Store, cfg.PII)
	contacts := contactindex.New(cfg.Store, cfg.Leaves)
	if cfg.ContactsDir != "" {
		contacts.Persist(cfg.ContactsDir, cfg.Log)
	}
	s := &Server{cfg: cfg, mux: http.NewServeMux(), contacts: contacts, people: newPeople(200_000), tags: newTagger(cfg.DecisionKey)}
	hc := huma.DefaultConfig("heed", cfg.Version)
	hc.Info.Description = "Compliance ledger for outbound customer contact, and the flash-SMS notifier that obeys it."
	hc.CreateHooks = nil // no $schema links in bodies
	hc.OnAddOperation = append(hc.OnAddOperation, s.strictInput)
	hc.Components.SecuritySchemes = map[string]*huma.SecurityScheme{
		"key":      {Type: "http", Scheme: "bearer", Description: "API key (admin, business or auditor)"},
		"customer": {Type: "http", Scheme: "bearer", Description: "customer session token from POST /v1/me/session"},
	}
	s.api = humago.New(s.mux, hc)
	s.registerBusiness()
	s.registerCustomer()
	s.registerAudit()
	s.registerAdmin()
	s.registerLines()
	s.registerExternal()
	s.registerBackup()
	s.registerFlagged()
	s.registerReview()
	s.registerProfiles()
	s.registerWeb()
	return s
}

// API returns the huma API, e.g. for its OpenAPI document.
func (s *Server) API() huma.API { return s.api }

// Run keeps the cross-tenant contact index current until ctx is done.
func (s *Server) Run(ctx context.Context) error {
	return s.contacts.Run(ctx)
}

// ServeHTTP limits the body, records metrics and serves the request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	limit, what := int64(MaxBody), "1 MiB"
	switch r.URL.Path {
	case cdrPath:
		limit, what = MaxCDRBody, "64 MiB"
	case bookPath:
		limit, what = MaxBookBody, "1 GiB"
	}
	if r.ContentLength > limit {
		writeProblem(w, http.StatusRequestEntityTooLarge, "request body is larger than "+what)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, limit)
	if s.cfg.Metrics == nil {
		s.mux.ServeHTTP(w, r)
		return
	}
	start := time.Now()
	rw := &statusWriter{ResponseWriter: w, status: 200}
	s.mux.ServeHTTP(rw, r)
	// The mux records the matched pattern on the request: a route, never a
	// path, so no number reaches a label.
	s.cfg.Metrics.request(r.Pattern, rw.status, time.Since(start))
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func writeProblem(w http.ResponseWriter, status int, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	b, _ := jsonMarshal(&huma.ErrorModel{Title: http.StatusText(status), Status: status, Detail: detail})
	_, _ = w.Write(b)
}

// principal is who is calling.
type principal struct {
	key    auth.Key
	number string // a customer session's number
}

type principalKey struct{}

func who(ctx context.Context) principal {
	p, _ := ctx.Value(principalKey{}).(principal)
	return p
}

func bearer(ctx huma.Context) string {
	h := ctx.Header("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

// requireKey admits API keys holding one of roles.
func (s *Server) requireKey(roles ...string) func(huma.Context, func(huma.Context)) {
	return func(ctx huma.Context, next func(huma.Context)) {
		tok := bearer(ctx)
		if tok == "" {
			ctx.SetHeader("WWW-Authenticate", `Bearer realm="heed"`)
			_ = huma.WriteErr(s.api, ctx, http.StatusUnauthorized, "missing bearer API key")
			return
		}
		key, err := s.cfg.Keys.Lookup(tok)
		if err != nil {
			detail := "unknown API key"
			switch {
			case errors.Is(err, auth.ErrRevoked):
				detail = "API key revoked"
			case errors.Is(err, auth.ErrExpired):
				detail = "API key expired at " + key.Expires.UTC().Format(time.RFC3339)
			}
			ctx.SetHeader("WWW-Authenticate", `Bearer realm="heed", error="invalid_token"`)
			_ = huma.WriteErr(s.api, ctx, http.StatusUnauthorized, detail)
			return
		}
		ok := false
		for _, r := range roles {
			ok = ok || key.Role == r
		}
		if !ok {
			_ = huma.WriteErr(s.api, ctx, http.StatusForbidden, "this operation needs the role "+strings.Join(roles, " or "))
			return
		}
		next(huma.WithValue(ctx, principalKey{}, principal{key: key}))
	}
}

// requireCustomer admits customer session tokens.
func (s *Server) requireCustomer(ctx huma.Context, next func(huma.Context)) {
	num, err := s.cfg.Sessions.Number(bearer(ctx))
	if err != nil {
		ctx.SetHeader("WWW-Authenticate", `Bearer realm="heed-customer"`)
		_ = huma.WriteErr(s.api, ctx, http.StatusUnauthorized, "sign in with POST /v1/me/challenge and /v1/me/session first")
		return
	}
	next(huma.WithValue(ctx, principalKey{}, principal{number: num}))
}

// storeError maps store errors to problem details without leaking detail
// that could contain personal data.
func (s *Server) storeError(op string, err error) error {
	switch {
	case errors.Is(err, ledger.ErrIDConflict):
		return huma.Error409Conflict("event id already used with different content")
	case errors.Is(err, ledger.ErrWrongRevision):
		return huma.Error409Conflict("the stream changed; retry")
	case errors.Is(err, ledger.ErrInvalid):
		return huma.Error422UnprocessableEntity(strings.TrimPrefix(err.Error(), "ledger: "))
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return huma.NewError(http.StatusServiceUnavailable, "request cancelled")
	}
	s.cfg.Log.Error("store", "op", op, "err", err)
	return huma.Error500InternalServerError("the ledger failed; the request may be retried with the same id")
}

type noGate struct{}

func (noGate) Exclusive(_ string, fn func() error) error { return fn() }

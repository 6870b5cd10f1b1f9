package api

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/heed/heed/api/auth"
	"github.com/heed/heed/ledger"
)

type challengeIn struct {
	Body struct {
		Number string `json:"number" maxLength:"32" example:"+8613800138000"`
	}
}

type challengeOut struct {
	Status int
	Body   struct {
		Sent      bool `json:"sent"`
		ExpiresIn int  `json:"expires_in" doc:"seconds the code stays valid"`
	}
}

type sessionIn struct {
	Body struct {
		Number string `json:"number" maxLength:"32"`
		Code   string `json:"code" minLength:"4" maxLength:"12"`
	}
}

type sessionOut struct {
	Body struct {
		Token     string    `json:"token"`
		ExpiresAt time.Time `json:"expires_at"`
	}
}

type contactsOut struct {
	Body struct {
		Contacts   []Contact `json:"contacts"`
		Businesses []Profile `json:"businesses" doc:"each business named in contacts, as it is shown to customers (display_name empty when it set no profile)"`
		Zone       string    `json:"zone" doc:"the IANA time zone of the number's region, in which /me shows times"`
	}
}

// clientAddr is the caller's IP, for rate limits (see clientIP).
func (s *Server) clientAddr(ctx huma.Context) string {
	var xff []string
	if len(s.cfg.TrustedProxies) > 0 {
		ctx.EachHeader(func(name, value string) {
			if strings.EqualFold(name, "X-Forwarded-For") {
				xff = append(xff, value)
			}
		})
	}
	return clientIP(ctx.RemoteAddr(), xff, s.cfg.TrustedProxies)
}

type addrKey struct{}

func (s *Server) registerCustomer() {
	s.registerCustomerErasure()
	s.registerCustomerActions()
	s.registerMyReminders()
	withAddr := huma.Middlewares{func(ctx huma.Context, next func(huma.Context)) {
		next(huma.WithValue(ctx, addrKey{}, s.clientAddr(ctx)))
	}}
	huma.Register(s.api, huma.Operation{OperationID: "customer-challenge", Method: http.MethodPost, Path: "/v1/me/challenge",
		Summary: "Send a one-time code to a number by SMS", Tags: []string{"customer"}, Middlewares: withAddr,
		DefaultStatus: http.StatusAccepted, Errors: []int{400, 422, 429, 503}},
		func(ctx context.Context, in *challengeIn) (*challengeOut, error) {
			addr, _ := ctx.Value(addrKey{}).(string)
			if err := s.challenge(ctx, in.Body.Number, addr); err != nil {
				return nil, signInProblem(err)
			}
			out := &challengeOut{Status: http.StatusAccepted}
			out.Body.Sent, out.Body.ExpiresIn = true, 300
			return out, nil
		})
	huma.Register(s.api, huma.Operation{OperationID: "customer-session", Method: http.MethodPost, Path: "/v1/me/session",
		Summary: "Exchange a one-time code for a short-lived token", Tags: []string{"customer"}, Middlewares: withAddr,
		Errors: []int{400, 401, 422, 429}},
		func(ctx context.Context, in *sessionIn) (*sessionOut, error) {
			addr, _ := ctx.Value(addrKey{}).(string)
			tok, exp, err := s.session(in.Body.Number, in.Body.Code, addr)
			if err != nil {
				return nil, signInProblem(err)
			}
			out := &sessionOut{}
			out.Body.Token, out.Body.ExpiresAt = tok, exp
			return out, nil
		})
	huma.Register(s.api, huma.Operation{OperationID: "customer-contacts", Method: http.MethodGet, Path: "/v1/me/contacts",
		Summary: "Every contact and reminder to my number, across businesses, with the basis or the rule it broke",
		Tags:    []string{"customer"}, Middlewares: huma.Middlewares{s.requireCustomer},
		Security: []map[string][]string{{"customer": {}}}, Errors: []int{401}},
		func(ctx context.Context, _ *struct{}) (*contactsOut, error) {
			cs, err := s.contactsOf(ctx, who(ctx).number)
			if err != nil {
				return nil, s.storeError("contacts", err)
			}
			out := &contactsOut{}
			out.Body.Contacts = cs
			_, out.Body.Zone = customerZone(who(ctx).number, s.cfg.Region)
			out.Body.Businesses = []Profile{}
			seen := map[string]bool{"": true}
			for _, c := range cs {
				if seen[c.Tenant] {
					continue
				}
				seen[c.Tenant] = true
				p, ok, err := s.profile(ctx, c.Tenant)
				if err != nil {
					return nil, s.storeError("contacts", err)
				}
				if !ok {
					p = Profile{Tenant: c.Tenant, Lines: []string{}}
				}
				out.Body.Businesses = append(out.Body.Businesses, p)
			}
			return out, nil
		})
}

type customerErasureIn struct {
	Body *struct {
		Tenant string `json:"tenant,omitempty" maxLength:"64" doc:"erase at this business only; absent: at every business"`
	} `required:"false"`
}

type customerErasureOut struct {
	Status int
	Body   struct {
		Erased []Written `json:"erased" doc:"the SubjectErased events, one per business (and one for data kept for none)"`
	}
}

func (s *Server) registerCustomerErasure() {
	huma.Register(s.api, huma.Operation{OperationID: "customer-erasure", Method: http.MethodPost, Path: "/v1/me/erasure",
		Summary:     "Erase my personal data at one business, or at every business",
		Description: "Destroys the data keys that seal the personal fields recorded about the signed-in number (one business's, or every business's) and records SubjectErased for each. Opt-outs and suppressions keep working.",
		Tags:        []string{"customer"}, Middlewares: huma.Middlewares{s.requireCustomer},
		Security: []map[string][]string{{"customer": {}}}, DefaultStatus: http.StatusCreated, Errors: []int{401, 422, 503}},
		func(ctx context.Context, in *customerErasureIn) (*customerErasureOut, error) {
			tenant := ""
			if in.Body != nil {
				tenant = in.Body.Tenant
			}
			evs, err := s.customerErase(ctx, who(ctx).number, tenant)
			if err != nil {
				return nil, selfServiceProblem(err)
			}
			out := &customerErasureOut{Status: http.StatusOK}
			for _, e := range evs {
				replayed := e.Replayed
				if !replayed {
					out.Status = http.StatusCreated
				}
				out.Body.Erased = append(out.Body.Erased, written(e, replayed))
			}
			return out, nil
		})
}

// Why a sign-in step failed, besides an unusable number (a problem from
// person), a *auth.LimitError and a *auth.CodeError.
var (
	errNoSMS    = errors.New("api: SMS is not configured")
	errSendCode = errors.New("api: the code could not be sent")
)

// signInProblem turns what challenge or session returned into the
// problem the API answers: each says what happened and what to do next,
// and every 429 says in Retry-After when to try again.
func signInProblem(err error) error {
	var le *auth.LimitError
	var ce *auth.CodeError
	switch {
	case errors.As(err, &le):
		return tooMany("too many requests "+le.What()+"; try again after Retry-After seconds", le.RetryAfter)
	case errors.Is(err, auth.ErrRateLimited):
		return tooMany("too many requests; try again after Retry-After seconds", time.Minute)
	case errors.As(err, &ce):
		at := &huma.ErrorDetail{Location: "body.code"}
		switch ce.Why {
		case auth.CodeWrong:
			at.Message = fmt.Sprintf("%d tries left", ce.Left)
			return huma.Error401Unauthorized("wrong code", at)
		case auth.CodeUsedUp:
			at.Message = "ask for a new code"
			return huma.Error401Unauthorized("this code was used already, or too many wrong codes were tried", at)
		case auth.CodeExpired:
			at.Message = "ask for a new code"
			return huma.Error401Unauthorized("this code expired", at)
		}
		at.Message = "ask for a code first"
		return huma.Error401Unauthorized("no code is waiting for this number", at)
	case errors.Is(err, errNoSMS):
		return huma.Error503ServiceUnavailable("SMS is not configured")
	case errors.Is(err, errSendCode):
		return huma.ErrorWithHeaders(huma.Error503ServiceUnavailable("could not send the code; try again later"), http.Header{"Retry-After": {"60"}})
	}
	return err
}

// tooMany is a 429 problem whose Retry-After says, in whole seconds (at
// least one), when the limit that refused the request lets one through.
func tooMany(msg string, wait time.Duration) error {
	secs := max(int64((wait+time.Second-1)/time.Second), 1)
	return huma.ErrorWithHeaders(huma.Error429TooManyRequests(msg), http.Header{"Retry-After": {strconv.FormatInt(secs, 10)}})
}

// codeText is the sign-in message: in Chinese for a Chinese number, in
// English otherwise. The code stands apart so that phones offer to copy it.
func codeText(e164, code string) string {
	if strings.HasPrefix(e164, "+86") {
		return "【heed】验证码 " + code + " ，5分钟内有效，用于查看您的联系记录。如非本人操作，请忽略本短信。"
	}
	return "heed verification code: " + code + " (valid 5 minutes). If you did not ask for it, ignore this message."
}

// selfErased is what a customer's own erasure records.
var selfErased = ledger.SubjectErased{Reason: "customer_request", Via: ledger.ViaSelfService}

// customerErase erases the personal data recorded about a customer's
// number at one business (tenant), or at every business when tenant is
// empty.
func (s *Server) customerErase(ctx context.Context, e164, tenant string) ([]ledger.Event, error) {
	subject := s.cfg.Pseudonyms.Pseudonym(e164)
	tenants, err := s.contacts.Tenants(ctx, subject)
	if err != nil {
		return nil, s.storeError("erase", err)
	}
	if tenant == "" {
		return s.erase(ctx, subject, tenants, true, "customer", selfErased)
	}
	if !slices.Contains(tenants, tenant) {
		return nil, errUnknownBusiness
	}
	return s.erase(ctx, subject, []string{tenant}, false, "customer", selfErased)
}

// challenge sends a sign-in code to a number and records that it did. Its
// errors are those signInProblem reads.
// The number's limits count the VerificationSent events in its subject
// stream, so a restart does not reset them; a number that opted out of
// everything at a business, or is on a national list, gets fewer codes
// (auth.SessionConfig.PerDayRestricted), not none: its holder may need to
// sign in to see what was done with it.
func (s *Server) challenge(ctx context.Context, number, addr string) error {
	if s.cfg.Texter == nil {
		return errNoSMS
	}
	e164, subject, err := s.person("body.number", number)
	if err != nil {
		return err
	}
	// One challenge per number at a time, from reading its history to
	// recording the code, so concurrent requests cannot both pass a limit.
	mu := s.codeLocks.of(subject)
	mu.Lock()
	defer mu.Unlock()
	sent, restricted, err := s.codeHistory(ctx, subject)
	if err != nil {
		return s.storeError("verify", err)
	}
	code, err := s.cfg.Sessions.Challenge(e164, addr, sent, restricted)
	if errors.Is(err, auth.ErrRateLimited) {
		return err
	}
	if err != nil {
		return huma.Error500InternalServerError("could not make a code")
	}
	if err := s.cfg.Texter.SendText(ctx, e164, codeText(e164, code)); err != nil {
		s.cfg.Log.Error("send code", "err", err)
		return errSendCode
	}
	ev, err := ledger.NewEvent("", subject, s.cfg.Now(), &ledger.VerificationSent{Channel: ledger.ChannelSMS})
	if err != nil {
		return s.storeError("verify", err)
	}
	ev.Actor = "customer"
	_, _, err = s.append(ctx, ledger.SubjectStream(subject), ev, nil)
	return err
}

// session exchanges a code for a customer token. Its errors are those
// signInProblem reads.
func (s *Server) session(number, code, addr string) (string, time.Time, error) {
	e164, _, err := s.person("body.number", number)
	if err != nil {
		return "", time.Time{}, err
	}
	return s.cfg.Sessions.Verify(e164, code, addr)
}

// codeHistory reads when codes were sent to subject (as the log recorded
// them) in the last day, and whether the number is restricted: on a
// national (global) list it has not been lifted from, or opted out of
// everything at a business and not granted anything there since.
func (s *Server) codeHistory(ctx context.Context, subject string) ([]time.Time, bool, error) {
	evs, err := s.cfg.Store.ReadStream(ctx, ledger.SubjectStream(subject), 1, 0)
	if err != nil && !errors.Is(err, ledger.ErrNotFound) {
		return nil, false, err
	}
	now := s.cfg.Now()
	var sent []time.Time
	listed := map[string]bool{}
	for i := range evs {
		e := &evs[i]
		switch e.Type {
		case ledger.TypeVerificationSent:
			if now.Sub(e.RecordedAt) < 24*time.Hour {
				sent = append(sent, e.RecordedAt)
			}
		case ledger.TypeSuppressionListed, ledger.TypeSuppressionLifted:
			p, err := ledger.Decode(e)
			if err != nil {
				continue
			}
			switch p := p.(type) {
			case *ledger.SuppressionListed:
				listed[p.Scope+"/"+p.List] = true
			case *ledger.SuppressionLifted:
				delete(listed, p.Scope+"/"+p.List)
			}
		}
	}
	for k := range listed {
		if strings.HasPrefix(k, "global/") {
			return sent, true, nil
		}
	}
	tenants, err := s.contacts.Tenants(ctx, subject)
	if err != nil {
		return nil, false, err
	}
	for _, t := range tenants {
		evs, err := s.cfg.Store.ReadStream(ctx, ledger.ContactStream(t, subject), 1, 0)
		if errors.Is(err, ledger.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, false, err
		}
		out := false
		for i := range evs {
			switch evs[i].Type {
			case ledger.TypeConsentGranted:
				out = false
			case ledger.TypeConsentWithdrawn:
				if p, err := ledger.Decode(&evs[i]); err == nil && p.(*ledger.ConsentWithdrawn).All {
					out = true
				}
			}
		}
		if out {
			return sent, true, nil
		}
	}
	return sent, false, nil
}

// stripes serialise work per subject.
type stripes [256]sync.Mutex

func (st *stripes) of(subject string) *sync.Mutex {
	h := fnv.New32a()
	h.Write([]byte(subject))
	return &st[h.Sum32()%uint32(len(st))]
}

package api

import (
	"context"
	"errors"
	"net"
	"net/http"
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
		Contacts []Contact `json:"contacts"`
	}
}

// clientAddr is the caller's IP, for rate limits.
func clientAddr(ctx huma.Context) string {
	host, _, err := net.SplitHostPort(ctx.RemoteAddr())
	if err != nil {
		return ctx.RemoteAddr()
	}
	return host
}

type addrKey struct{}

func (s *Server) registerCustomer() {
	withAddr := huma.Middlewares{func(ctx huma.Context, next func(huma.Context)) {
		next(huma.WithValue(ctx, addrKey{}, clientAddr(ctx)))
	}}
	huma.Register(s.api, huma.Operation{OperationID: "customer-challenge", Method: http.MethodPost, Path: "/v1/me/challenge",
		Summary: "Send a one-time code to a number by SMS", Tags: []string{"customer"}, Middlewares: withAddr,
		DefaultStatus: http.StatusAccepted, Errors: []int{400, 422, 429, 503}},
		func(ctx context.Context, in *challengeIn) (*challengeOut, error) {
			if s.cfg.Texter == nil {
				return nil, huma.Error503ServiceUnavailable("SMS is not configured")
			}
			e164, subject, err := s.person("body.number", in.Body.Number)
			if err != nil {
				return nil, err
			}
			addr, _ := ctx.Value(addrKey{}).(string)
			code, err := s.cfg.Sessions.Challenge(e164, addr)
			if errors.Is(err, auth.ErrRateLimited) {
				return nil, huma.Error429TooManyRequests("too many codes requested; try again later")
			}
			if err != nil {
				return nil, huma.Error500InternalServerError("could not make a code")
			}
			if err := s.cfg.Texter.SendText(ctx, e164, "heed verification code: "+code+" (valid 5 minutes)"); err != nil {
				s.cfg.Log.Error("send code", "err", err)
				return nil, huma.Error503ServiceUnavailable("could not send the code; try again later")
			}
			ev, err := ledger.NewEvent("", subject, s.cfg.Now(), &ledger.VerificationSent{Channel: ledger.ChannelSMS})
			if err != nil {
				return nil, s.storeError("verify", err)
			}
			ev.Actor = "customer"
			if _, _, err := s.append(ctx, ledger.SubjectStream(subject), ev, nil); err != nil {
				return nil, err
			}
			out := &challengeOut{Status: http.StatusAccepted}
			out.Body.Sent, out.Body.ExpiresIn = true, 300
			return out, nil
		})
	huma.Register(s.api, huma.Operation{OperationID: "customer-session", Method: http.MethodPost, Path: "/v1/me/session",
		Summary: "Exchange a one-time code for a short-lived token", Tags: []string{"customer"}, Middlewares: withAddr,
		Errors: []int{400, 401, 422, 429}},
		func(ctx context.Context, in *sessionIn) (*sessionOut, error) {
			e164, _, err := s.person("body.number", in.Body.Number)
			if err != nil {
				return nil, err
			}
			addr, _ := ctx.Value(addrKey{}).(string)
			tok, exp, err := s.cfg.Sessions.Verify(e164, in.Body.Code, addr)
			switch {
			case errors.Is(err, auth.ErrRateLimited):
				return nil, huma.Error429TooManyRequests("too many attempts; try again later")
			case err != nil:
				return nil, huma.Error401Unauthorized("wrong or expired code")
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
			return out, nil
		})
}

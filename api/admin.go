package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	"github.com/heed/heed/api/auth"
	"github.com/heed/heed/ledger"
)

// KeyMaker creates API keys; Keys that also implement it enable POST /v1/keys.
type KeyMaker interface {
	Create(role, tenant string) (string, auth.Key, error)
}

type keyIn struct {
	Body struct {
		Role   string `json:"role" enum:"admin,business,auditor"`
		Tenant string `json:"tenant,omitempty" maxLength:"64" doc:"required for business keys"`
	}
}

type keyOut struct {
	Status int
	Body   struct {
		Token string   `json:"token" doc:"shown once; only its hash is stored"`
		Key   auth.Key `json:"key"`
	}
}

type reinstateIn struct {
	Tenant string `path:"tenant" maxLength:"64"`
	Line   string `path:"line" minLength:"1" maxLength:"64"`
	Body   struct {
		Reason string `json:"reason" minLength:"1" maxLength:"500" doc:"why the line may contact again"`
	}
}

func (s *Server) registerAdmin() {
	huma.Register(s.api, huma.Operation{OperationID: "reinstate-line", Method: http.MethodPost, Path: "/v1/lines/{tenant}/{line}/reinstatement",
		Summary: "Lift a line's suspension (only an admin may)", Tags: []string{"admin"}, DefaultStatus: http.StatusCreated,
		Middlewares: huma.Middlewares{s.requireKey(auth.RoleAdmin)}, Security: []map[string][]string{{"key": {}}},
		Errors: []int{401, 403, 422}},
		func(ctx context.Context, in *reinstateIn) (*writeOutput, error) {
			if !auth.ValidTenant(in.Tenant) {
				return nil, huma.Error422UnprocessableEntity("invalid tenant")
			}
			ev, err := ledger.NewEvent(in.Tenant, "", s.cfg.Now(), &ledger.LineReinstated{Line: in.Line, Reason: in.Body.Reason})
			if err != nil {
				return nil, s.storeError("reinstate", err)
			}
			ev.Actor = who(ctx).key.ID
			e, _, err := s.append(ctx, ledger.LineStream(in.Tenant, in.Line), ev, nil)
			if err != nil {
				return nil, err
			}
			s.cfg.Log.Info("line reinstated", "by", ev.Actor, "tenant", in.Tenant, "line", in.Line)
			return &writeOutput{Status: http.StatusCreated, Body: written(e, false)}, nil
		})

	mk, ok := s.cfg.Keys.(KeyMaker)
	if !ok {
		return
	}
	huma.Register(s.api, huma.Operation{OperationID: "create-key", Method: http.MethodPost, Path: "/v1/keys",
		Summary: "Create an API key", Tags: []string{"admin"}, DefaultStatus: http.StatusCreated,
		Middlewares: huma.Middlewares{s.requireKey(auth.RoleAdmin)}, Security: []map[string][]string{{"key": {}}},
		Errors: []int{401, 403, 422}},
		func(ctx context.Context, in *keyIn) (*keyOut, error) {
			tok, key, err := mk.Create(in.Body.Role, in.Body.Tenant)
			if errors.Is(err, auth.ErrInvalidRole) {
				return nil, huma.Error422UnprocessableEntity(err.Error())
			}
			if err != nil {
				return nil, huma.Error500InternalServerError("could not store the key")
			}
			s.cfg.Log.Info("key created", "by", who(ctx).key.ID, "key", key.ID, "role", key.Role, "tenant", key.Tenant)
			out := &keyOut{Status: http.StatusCreated}
			out.Body.Token, out.Body.Key = tok, key
			return out, nil
		})
}

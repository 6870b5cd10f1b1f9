package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/heed/heed/api/auth"
	"github.com/heed/heed/ledger"
)

// KeyAdmin manages API keys; Keys that also implement it (auth.Keys does)
// enable the key operations: create, list and revoke.
type KeyAdmin interface {
	Issue(s auth.Spec) (string, auth.Key, error)
	Discard(id string) error
	List() []auth.Key
	Revoke(r auth.Revocation) (auth.Key, bool, error)
}

type keyIn struct {
	Body struct {
		Role      role      `json:"role"`
		Tenant    string    `json:"tenant,omitempty" maxLength:"64" doc:"required for business keys"`
		ExpiresIn string    `json:"expires_in,omitempty" maxLength:"32" doc:"lifetime, e.g. 720h or 90d; the key then answers 401 'expired'"`
		ExpiresAt time.Time `json:"expires_at,omitzero" doc:"when the key stops working (instead of expires_in)"`
		Reason    string    `json:"reason,omitempty" maxLength:"500" doc:"recorded in the KeyCreated event"`
		Backfill  bool      `json:"backfill,omitempty" doc:"a business key that may record history older than the back-dating window"`
	}
}

type keyOut struct {
	Status int
	Body   struct {
		Token string   `json:"token" doc:"shown once; only its hash is stored"`
		Key   auth.Key `json:"key"`
	}
}

type keyListOut struct {
	Body struct {
		Keys []auth.Key `json:"keys" doc:"every key, revoked and expired ones included, oldest first; never a token or its hash"`
	}
}

type revokeIn struct {
	ID     string `path:"id" minLength:"1" maxLength:"64"`
	Reason string `query:"reason" maxLength:"500" doc:"why; recorded in the KeyRevoked event"`
}

type revokeOut struct {
	Body struct {
		Key      auth.Key `json:"key"`
		Event    string   `json:"event" doc:"id of the KeyRevoked event"`
		Position uint64   `json:"position" doc:"its position in the log"`
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

	ka, ok := s.cfg.Keys.(KeyAdmin)
	if !ok {
		return
	}
	admin := huma.Middlewares{s.requireKey(auth.RoleAdmin)}
	sec := []map[string][]string{{"key": {}}}
	huma.Register(s.api, huma.Operation{OperationID: "create-key", Method: http.MethodPost, Path: "/v1/keys",
		Summary: "Create an API key", Description: "Records a KeyCreated event (never the token).",
		Tags: []string{"admin"}, DefaultStatus: http.StatusCreated, Middlewares: admin, Security: sec,
		Errors: []int{401, 403, 422}},
		func(ctx context.Context, in *keyIn) (*keyOut, error) {
			spec := auth.Spec{Role: string(in.Body.Role), Tenant: in.Body.Tenant, Expires: in.Body.ExpiresAt, Backfill: in.Body.Backfill}
			if in.Body.ExpiresIn != "" {
				if !spec.Expires.IsZero() {
					return nil, huma.Error422UnprocessableEntity("give expires_in or expires_at, not both")
				}
				d, err := auth.ParseLifetime(in.Body.ExpiresIn)
				if err != nil {
					return nil, huma.Error422UnprocessableEntity(err.Error())
				}
				spec.Expires = s.cfg.Now().Add(d)
			}
			tok, key, err := ka.Issue(spec)
			if errors.Is(err, auth.ErrInvalidRole) || errors.Is(err, auth.ErrInvalidExpiry) {
				return nil, huma.Error422UnprocessableEntity(err.Error())
			}
			if err != nil {
				return nil, huma.Error500InternalServerError("could not store the key")
			}
			by := who(ctx).key.ID
			ev, err := auth.CreatedEvent(key, by, in.Body.Reason)
			if err == nil {
				_, err = auth.Record(ctx, s.cfg.Store, ev)
			}
			if err != nil {
				// Nobody has seen the token: undo, so no key exists that
				// the log does not know of.
				if derr := ka.Discard(key.ID); derr != nil {
					s.cfg.Log.Error("discard unrecorded key", "key", key.ID, "err", derr)
				}
				return nil, s.storeError("create key", err)
			}
			s.cfg.Log.Info("key created", "by", by, "key", key.ID, "role", key.Role, "tenant", key.Tenant)
			out := &keyOut{Status: http.StatusCreated}
			out.Body.Token, out.Body.Key = tok, key
			return out, nil
		})

	huma.Register(s.api, huma.Operation{OperationID: "list-keys", Method: http.MethodGet, Path: "/v1/keys",
		Summary: "List API keys", Description: "Id, role, tenant, created, expires, last used and revocation of every key; never a token or its hash.",
		Tags: []string{"admin"}, Middlewares: admin, Security: sec, Errors: []int{401, 403}},
		func(context.Context, *struct{}) (*keyListOut, error) {
			out := &keyListOut{}
			out.Body.Keys = ka.List()
			return out, nil
		})

	huma.Register(s.api, huma.Operation{OperationID: "revoke-key", Method: http.MethodDelete, Path: "/v1/keys/{id}",
		Summary: "Revoke an API key",
		Description: "The key is refused from the next request on, and a KeyRevoked event is recorded. " +
			"Revoking a revoked key answers as the first time did (and records the event if that failed). " +
			"The last usable admin key cannot be revoked (409): create another first.",
		Tags: []string{"admin"}, Middlewares: admin, Security: sec, Errors: []int{401, 403, 404, 409}},
		func(ctx context.Context, in *revokeIn) (*revokeOut, error) {
			by := who(ctx).key.ID
			key, did, err := ka.Revoke(auth.Revocation{ID: in.ID, By: by, Reason: in.Reason, At: s.cfg.Now()})
			switch {
			case errors.Is(err, auth.ErrUnknownKey):
				return nil, huma.Error404NotFound("no key with this id")
			case errors.Is(err, auth.ErrLastAdmin):
				return nil, huma.Error409Conflict("this is the last usable admin key; create another admin key first")
			case err != nil:
				s.cfg.Log.Error("revoke key", "key", in.ID, "err", err)
				// The key is refused in memory; the file write failed.
			}
			ev, err := auth.RevokedEvent(key)
			var e ledger.Event
			if err == nil {
				e, err = auth.Record(ctx, s.cfg.Store, ev)
			}
			if err != nil {
				s.cfg.Log.Error("record key revocation", "key", key.ID, "err", err)
				return nil, huma.Error500InternalServerError("the key is revoked, but the KeyRevoked event could not be recorded; repeat the request to record it")
			}
			if did {
				s.cfg.Log.Info("key revoked", "by", by, "key", key.ID, "role", key.Role, "tenant", key.Tenant)
			}
			out := &revokeOut{}
			out.Body.Key, out.Body.Event, out.Body.Position = key, e.ID, e.Position
			return out, nil
		})
}

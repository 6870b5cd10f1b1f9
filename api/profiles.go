package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/heed/heed/api/auth"
	"github.com/heed/heed/ledger"
)

// Profile is how a business is shown to its customers (on /me): its name,
// its service phone and the lines it contacts them from. An admin sets it;
// each change is a TenantProfileSet event.
type Profile struct {
	Tenant        string    `json:"tenant"`
	DisplayName   string    `json:"display_name" doc:"the name customers know the business by, in Chinese"`
	DisplayNameEN string    `json:"display_name_en,omitempty" doc:"its name in English, if it has one"`
	ServicePhone  string    `json:"service_phone,omitempty" doc:"the number customers call for service"`
	Lines         []string  `json:"lines" doc:"the lines the business contacts customers from"`
	Event         string    `json:"event" doc:"id of the TenantProfileSet event that set it"`
	SetAt         time.Time `json:"set_at" doc:"when it was set"`
}

// name is the business's name in lang; the Chinese name stands in for a
// missing English one.
func (p Profile) name(lang string) string {
	if lang == langEN && p.DisplayNameEN != "" {
		return p.DisplayNameEN
	}
	return p.DisplayName
}

type profileIn struct {
	Tenant string `path:"tenant" minLength:"1" maxLength:"64" pattern:"^[A-Za-z0-9_.]+$"`
	Body   struct {
		DisplayName   string   `json:"display_name" minLength:"1" maxLength:"100" doc:"the name customers know the business by, in Chinese"`
		DisplayNameEN string   `json:"display_name_en,omitempty" maxLength:"100" doc:"its name in English"`
		ServicePhone  string   `json:"service_phone,omitempty" maxLength:"32" pattern:"^[0-9+() -]*$" doc:"the number customers call for service"`
		Lines         []string `json:"lines,omitempty" maxItems:"50" doc:"the lines the business contacts customers from; each one it owns"`
	}
}

type profileGetIn struct {
	Tenant string `path:"tenant" minLength:"1" maxLength:"64" pattern:"^[A-Za-z0-9_.]+$"`
}

type profileOut struct {
	Status int
	Body   struct {
		Profile
		Replayed bool `json:"replayed,omitempty" doc:"true when the profile was already this and nothing was recorded"`
	}
}

func (s *Server) registerProfiles() {
	sec := []map[string][]string{{"key": {}}}
	huma.Register(s.api, huma.Operation{OperationID: "set-tenant-profile", Method: http.MethodPut, Path: "/v1/tenants/{tenant}/profile",
		Summary:     "Set how a business is shown to its customers (only an admin may)",
		Description: "Records a TenantProfileSet event. Setting the profile it already has records nothing and answers 200.",
		Tags:        []string{"admin"}, Middlewares: huma.Middlewares{s.requireKey(auth.RoleAdmin)}, Security: sec,
		DefaultStatus: http.StatusCreated, Errors: []int{400, 401, 403, 422}},
		func(ctx context.Context, in *profileIn) (*profileOut, error) {
			b := in.Body
			for i, l := range b.Lines {
				if owner, ok := s.cfg.Lines[l]; ok && owner != in.Tenant {
					return nil, huma.Error422UnprocessableEntity("a line belongs to another business",
						&huma.ErrorDetail{Location: fmt.Sprintf("body.lines[%d]", i), Message: "heed's configuration gives this line to another business"})
				}
			}
			set := ledger.TenantProfileSet{DisplayName: b.DisplayName, DisplayNameEN: b.DisplayNameEN, ServicePhone: b.ServicePhone, Lines: b.Lines}
			old, ok, err := s.profile(ctx, in.Tenant)
			if err != nil {
				return nil, s.storeError("profile", err)
			}
			out := &profileOut{}
			if ok && old.DisplayName == set.DisplayName && old.DisplayNameEN == set.DisplayNameEN &&
				old.ServicePhone == set.ServicePhone && slices.Equal(old.Lines, nonNil(set.Lines)) {
				out.Status, out.Body.Profile, out.Body.Replayed = http.StatusOK, old, true
				return out, nil
			}
			ev, err := ledger.NewEvent(in.Tenant, "", s.cfg.Now(), &set)
			if err != nil {
				return nil, s.storeError("profile", err)
			}
			ev.Actor = who(ctx).key.ID
			e, _, err := s.append(ctx, ledger.ProfileStream(in.Tenant), ev, nil)
			if err != nil {
				return nil, err
			}
			s.cfg.Log.Info("tenant profile set", "by", ev.Actor, "tenant", in.Tenant)
			out.Status, out.Body.Profile = http.StatusCreated, profileFrom(in.Tenant, &e, &set)
			return out, nil
		})
	huma.Register(s.api, huma.Operation{OperationID: "get-tenant-profile", Method: http.MethodGet, Path: "/v1/tenants/{tenant}/profile",
		Summary: "How a business is shown to its customers (an admin, or the business itself)",
		Tags:    []string{"admin", "business"}, Middlewares: huma.Middlewares{s.requireKey(auth.RoleAdmin, auth.RoleBusiness)}, Security: sec,
		Errors: []int{400, 401, 403, 404}},
		func(ctx context.Context, in *profileGetIn) (*profileOut, error) {
			if k := who(ctx).key; k.Role == auth.RoleBusiness && k.Tenant != in.Tenant {
				return nil, huma.Error403Forbidden("a business reads only its own profile")
			}
			p, ok, err := s.profile(ctx, in.Tenant)
			if err != nil {
				return nil, s.storeError("profile", err)
			}
			if !ok {
				return nil, huma.Error404NotFound("no profile was set for this business")
			}
			out := &profileOut{Status: http.StatusOK}
			out.Body.Profile = p
			return out, nil
		})
}

// profile reads a business's current profile: the last one set.
func (s *Server) profile(ctx context.Context, tenant string) (Profile, bool, error) {
	evs, err := s.cfg.Store.ReadStream(ctx, ledger.ProfileStream(tenant), 1, 0)
	if errors.Is(err, ledger.ErrNotFound) {
		return Profile{}, false, nil
	}
	if err != nil {
		return Profile{}, false, err
	}
	for i := len(evs) - 1; i >= 0; i-- {
		p, err := ledger.Decode(&evs[i])
		if set, ok := p.(*ledger.TenantProfileSet); err == nil && ok {
			return profileFrom(tenant, &evs[i], set), true, nil
		}
	}
	return Profile{}, false, nil
}

func profileFrom(tenant string, e *ledger.Event, p *ledger.TenantProfileSet) Profile {
	return Profile{Tenant: tenant, DisplayName: p.DisplayName, DisplayNameEN: p.DisplayNameEN, ServicePhone: p.ServicePhone,
		Lines: nonNil(p.Lines), Event: e.ID, SetAt: e.RecordedAt}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

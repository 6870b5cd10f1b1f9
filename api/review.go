package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"

	"github.com/danielgtaylor/huma/v2"

	"github.com/heed/heed/api/auth"
	"github.com/heed/heed/ledger"
	"github.com/heed/heed/notify"
	"github.com/heed/heed/notify/template"
)

// The operators' review of flash templates (话术审核): a business proposes
// a template version, the automatic checks run at once, and a reviewer
// (or an admin) approves or rejects it, or revokes it once approved. Each
// step is an event in the template's stream, with the key that took it
// as actor; reminders read that stream.

// TemplateBody is one version of a template and its review state.
type TemplateBody struct {
	Tenant string `json:"tenant,omitempty" doc:"the business that proposed it (shown to reviewers)"`
	notify.Version
	Params   []template.Param `json:"params" doc:"the typed parameters a reminder fills"`
	Replayed bool             `json:"replayed,omitempty" doc:"true when the same text was already proposed and nothing was appended"`
}

func templateBody(tenant string, v notify.Version) TemplateBody {
	b := TemplateBody{Tenant: tenant, Version: v, Params: []template.Param{}}
	if t, err := template.Parse(v.Signature, v.Text); err == nil && t.Params != nil {
		b.Params = t.Params
	}
	if b.Events == nil {
		b.Events = []string{}
	}
	return b
}

type templateOut struct {
	Status int
	Body   TemplateBody
}

type templateListOut struct {
	Body struct {
		Templates []TemplateBody `json:"templates"`
	}
}

type proposeIn struct {
	Body struct {
		ID        string `json:"id" pattern:"^[A-Za-z0-9_.-]{1,64}$" doc:"the template id; proposing it again adds a version"`
		Purpose   string `json:"purpose,omitempty" enum:"service" default:"service" doc:"flash carries service reminders only"`
		Signature string `json:"signature" minLength:"2" maxLength:"12" doc:"the sender's name, shown as 【signature】 before the text" example:"平安保险"`
		Text      string `json:"text" minLength:"1" maxLength:"500" doc:"fixed text with typed parameters {name} or {name:type}, types text, date, money, number, ref" example:"您的{product}保单{policy:ref}将于{expires_on:date}到期，请及时续保。"`
	}
}

type templateIDIn struct {
	ID string `path:"id" pattern:"^[A-Za-z0-9_.-]{1,64}$"`
}

type reviewListIn struct {
	State string `query:"state" enum:"pending,approved,rejected,revoked,all" default:"pending"`
}

type reviewIn struct {
	Tenant  string `path:"tenant" maxLength:"64"`
	ID      string `path:"id" pattern:"^[A-Za-z0-9_.-]{1,64}$"`
	Version int    `path:"version" minimum:"1"`
	Action  string `path:"action" enum:"approve,reject,revoke"`
	Body    *struct {
		Reason string `json:"reason,omitempty" maxLength:"500" doc:"required to reject or revoke; a note when approving"`
	} `required:"false"`
}

func (s *Server) registerReview() {
	sec := []map[string][]string{{"key": {}}}
	biz := huma.Middlewares{s.requireKey(auth.RoleBusiness)}
	rev := huma.Middlewares{s.requireKey(auth.RoleReviewer, auth.RoleAdmin)}

	huma.Register(s.api, huma.Operation{OperationID: "propose-template", Method: http.MethodPost, Path: "/v1/templates",
		Summary:     "Propose a flash template (a new version when the id exists) for review",
		Description: "The automatic checks of China's SMS platforms run first (signature, no promotional wording, no links or mobile numbers, typed bounded parameters, length); a template that fails them is refused with every problem named. One that passes awaits a reviewer.",
		Tags:        []string{"templates"}, Middlewares: biz, Security: sec, DefaultStatus: http.StatusCreated,
		Errors: []int{400, 401, 403, 409, 422}},
		func(ctx context.Context, in *proposeIn) (*templateOut, error) {
			p := who(ctx)
			b := in.Body
			if problems := template.Review(b.Signature, b.Text); len(problems) > 0 {
				details := make([]error, 0, len(problems))
				for _, pr := range problems {
					loc := "body.text"
					if pr.Rule == "signature" {
						loc = "body.signature"
					}
					details = append(details, &huma.ErrorDetail{Location: loc, Message: pr.String()})
				}
				return nil, huma.Error422UnprocessableEntity("the template fails the automatic review", details...)
			}
			for range 20 {
				vs, rev, err := notify.ReadTemplate(ctx, s.cfg.Store, p.key.Tenant, b.ID)
				if err != nil {
					return nil, s.storeError("template", err)
				}
				// A retried proposal of the text awaiting review, or
				// approved, is the same proposal.
				if n := len(vs); n > 0 {
					last := vs[n-1]
					if last.Signature == b.Signature && last.Text == b.Text && (last.State == notify.TemplatePending || last.State == notify.TemplateApproved) {
						out := templateBody("", last)
						out.Replayed = true
						return &templateOut{Status: http.StatusOK, Body: out}, nil
					}
				}
				ev, err := ledger.NewEvent(p.key.Tenant, "", s.cfg.Now(), &ledger.TemplateProposed{TemplateID: b.ID,
					Version: len(vs) + 1, Purpose: ledger.PurposeService, Signature: b.Signature, Text: b.Text})
				if err != nil {
					return nil, s.storeError("template", err)
				}
				ev.Actor = p.key.ID
				_, err = s.cfg.Store.Append(ctx, ledger.TemplateStream(p.key.Tenant, b.ID), ledger.Exact(rev), []ledger.Event{ev})
				if errors.Is(err, ledger.ErrWrongRevision) {
					continue
				}
				if err != nil {
					return nil, s.storeError("template", err)
				}
				s.cfg.Log.Info("template proposed", "by", ev.Actor, "tenant", p.key.Tenant, "template", b.ID, "version", len(vs)+1)
				return s.templateNow(ctx, p.key.Tenant, b.ID, len(vs)+1, "", http.StatusCreated)
			}
			return nil, huma.Error409Conflict("the template kept changing; retry")
		})

	huma.Register(s.api, huma.Operation{OperationID: "list-templates", Method: http.MethodGet, Path: "/v1/templates",
		Summary: "List this business's templates, every version with its review state", Tags: []string{"templates"},
		Middlewares: biz, Security: sec, Errors: []int{401, 403}},
		func(ctx context.Context, _ *struct{}) (*templateListOut, error) {
			tenant := who(ctx).key.Tenant
			return s.templateList(ctx, func(t string) bool { return t == tenant }, func(notify.Version) bool { return true }, false)
		})

	huma.Register(s.api, huma.Operation{OperationID: "get-template", Method: http.MethodGet, Path: "/v1/templates/{id}",
		Summary: "Every version of one of this business's templates", Tags: []string{"templates"},
		Middlewares: biz, Security: sec, Errors: []int{401, 403, 404}},
		func(ctx context.Context, in *templateIDIn) (*templateListOut, error) {
			vs, _, err := notify.ReadTemplate(ctx, s.cfg.Store, who(ctx).key.Tenant, in.ID)
			if err != nil {
				return nil, s.storeError("template", err)
			}
			if len(vs) == 0 {
				return nil, huma.Error404NotFound("no such template")
			}
			out := &templateListOut{}
			for _, v := range vs {
				out.Body.Templates = append(out.Body.Templates, templateBody("", v))
			}
			return out, nil
		})

	huma.Register(s.api, huma.Operation{OperationID: "review-queue", Method: http.MethodGet, Path: "/v1/review/templates",
		Summary: "Templates of every business, by review state (pending by default)", Tags: []string{"review"},
		Middlewares: rev, Security: sec, Errors: []int{401, 403, 422}},
		func(ctx context.Context, in *reviewListIn) (*templateListOut, error) {
			return s.templateList(ctx, func(string) bool { return true },
				func(v notify.Version) bool { return in.State == "all" || v.State == in.State }, true)
		})

	huma.Register(s.api, huma.Operation{OperationID: "review-template", Method: http.MethodPost, Path: "/v1/review/templates/{tenant}/{id}/versions/{version}/{action}",
		Summary:     "Approve or reject a pending template version, or revoke an approved one",
		Description: "A rejection or revocation needs a reason. A revoked version denies every reminder that names it from then on.",
		Tags:        []string{"review"}, Middlewares: rev, Security: sec, DefaultStatus: http.StatusCreated,
		Errors: []int{401, 403, 404, 409, 422}},
		func(ctx context.Context, in *reviewIn) (*templateOut, error) {
			if !auth.ValidTenant(in.Tenant) {
				return nil, huma.Error422UnprocessableEntity("invalid tenant")
			}
			reason := ""
			if in.Body != nil {
				reason = strings.TrimSpace(in.Body.Reason)
			}
			if reason == "" && in.Action != "approve" {
				return nil, huma.Error422UnprocessableEntity("a reason is required", &huma.ErrorDetail{Location: "body.reason", Message: "required to " + in.Action})
			}
			vs, rev, err := notify.ReadTemplate(ctx, s.cfg.Store, in.Tenant, in.ID)
			if err != nil {
				return nil, s.storeError("template", err)
			}
			i := slices.IndexFunc(vs, func(v notify.Version) bool { return v.Version == in.Version })
			if i < 0 {
				return nil, huma.Error404NotFound("no such template version")
			}
			v := vs[i]
			want := notify.TemplatePending
			var payload any
			switch in.Action {
			case "approve":
				// The checks may have grown since it was proposed.
				if problems := template.Review(v.Signature, v.Text); len(problems) > 0 {
					return nil, huma.Error422UnprocessableEntity("the template now fails the automatic review: " + problems[0].String())
				}
				payload = &ledger.TemplateApproved{TemplateID: in.ID, Version: in.Version, Note: reason}
			case "reject":
				payload = &ledger.TemplateRejected{TemplateID: in.ID, Version: in.Version, Reason: reason}
			default:
				want = notify.TemplateApproved
				payload = &ledger.TemplateRevoked{TemplateID: in.ID, Version: in.Version, Reason: reason}
			}
			if v.State != want {
				return nil, huma.Error409Conflict(fmt.Sprintf("the version is %s; only a %s one can be %s", v.State, want, map[string]string{
					"approve": "approved", "reject": "rejected", "revoke": "revoked"}[in.Action]))
			}
			ev, err := ledger.NewEvent(in.Tenant, "", s.cfg.Now(), payload)
			if err != nil {
				return nil, s.storeError("template", err)
			}
			ev.Actor = who(ctx).key.ID
			// At the revision read: a concurrent decision on the same
			// template makes this one fail rather than both count.
			if _, err := s.cfg.Store.Append(ctx, ledger.TemplateStream(in.Tenant, in.ID), ledger.Exact(rev), []ledger.Event{ev}); err != nil {
				return nil, s.storeError("template", err)
			}
			s.cfg.Log.Info("template reviewed", "by", ev.Actor, "action", in.Action, "tenant", in.Tenant, "template", in.ID, "version", in.Version)
			return s.templateNow(ctx, in.Tenant, in.ID, in.Version, in.Tenant, http.StatusCreated)
		})
}

// templateNow answers with a version as it stands in the log.
func (s *Server) templateNow(ctx context.Context, tenant, id string, version int, show string, status int) (*templateOut, error) {
	vs, _, err := notify.ReadTemplate(ctx, s.cfg.Store, tenant, id)
	if err != nil {
		return nil, s.storeError("template", err)
	}
	i := slices.IndexFunc(vs, func(v notify.Version) bool { return v.Version == version })
	if i < 0 {
		return nil, huma.Error500InternalServerError("the template version was recorded but cannot be read back")
	}
	return &templateOut{Status: status, Body: templateBody(show, vs[i])}, nil
}

// templateList lists the versions of the templates of the tenants tenant
// accepts that keep accepts, by tenant and id.
func (s *Server) templateList(ctx context.Context, tenant func(string) bool, keep func(notify.Version) bool, showTenant bool) (*templateListOut, error) {
	all, err := s.contacts.Templates(ctx)
	if err != nil {
		return nil, s.storeError("templates", err)
	}
	out := &templateListOut{}
	out.Body.Templates = []TemplateBody{}
	for _, tt := range all {
		if !tenant(tt.Tenant) {
			continue
		}
		vs, _, err := notify.ReadTemplate(ctx, s.cfg.Store, tt.Tenant, tt.ID)
		if err != nil {
			return nil, s.storeError("templates", err)
		}
		for _, v := range vs {
			if keep(v) {
				show := ""
				if showTenant {
					show = tt.Tenant
				}
				out.Body.Templates = append(out.Body.Templates, templateBody(show, v))
			}
		}
	}
	sort.SliceStable(out.Body.Templates, func(i, j int) bool {
		a, b := out.Body.Templates[i], out.Body.Templates[j]
		if a.Tenant != b.Tenant {
			return a.Tenant < b.Tenant
		}
		return a.ID < b.ID
	})
	return out, nil
}

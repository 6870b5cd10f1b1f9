package api

import (
	"context"
	"errors"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/heed/heed/ledger"
	"github.com/heed/heed/notify/schedule"
)

// Planned is the scheduler of planned reminders (notify/schedule).
type Planned interface {
	Queue(ctx context.Context, tenant string, from, to time.Time, limit int) ([]schedule.Queued, int, error)
	Days(tenant string, from time.Time, days int, loc *time.Location) []int
	Preview(ctx context.Context, v *schedule.View, t *schedule.Timer, number string) (string, error)
}

// Plan is one version of a reminder plan.
type Plan struct {
	ID              string            `json:"id"`
	Version         int               `json:"version"`
	Offsets         []string          `json:"offsets" doc:"how long before the expiry each reminder is due: whole days (30d: at the window's opening that many local days before the expiry date) or hours (12h)"`
	Window          ledger.SendWindow `json:"window" doc:"local send window in the customer's own time zone, e.g. 10:00-18:00"`
	TemplateID      string            `json:"template_id"`
	TemplateVersion int               `json:"template_version"`
	Params          map[string]string `json:"params" doc:"each template parameter → the relationship field that fills it: product, contract_ref, expires_at or starts_at"`
	Retry           *ledger.PlanRetry `json:"retry,omitempty" doc:"try again this long after a failed delivery receipt, up to attempts times"`
	Line            string            `json:"line,omitempty" doc:"the line the reminders go from; empty: the business's default line"`
	DefinedAt       time.Time         `json:"defined_at"`
	DefinedBy       string            `json:"defined_by"`
	Event           string            `json:"event"`
}

func planOf(v schedule.PlanVersion) Plan {
	p := Plan{ID: v.PlanID, Version: v.Version, Offsets: v.Offsets, Window: v.Window, TemplateID: v.TemplateID,
		TemplateVersion: v.TemplateVersion, Params: v.Params, Retry: v.Retry, Line: v.Line, DefinedAt: v.DefinedAt,
		DefinedBy: v.DefinedBy, Event: v.Event}
	if p.Params == nil {
		p.Params = map[string]string{}
	}
	return p
}

type planIn struct {
	Body struct {
		ID              string            `json:"id" pattern:"^[A-Za-z0-9_.-]{1,64}$" doc:"the plan's id; defining it again adds a version"`
		Offsets         []string          `json:"offsets" minItems:"1" maxItems:"10" example:"[\"30d\",\"7d\",\"1d\"]"`
		Window          ledger.SendWindow `json:"window"`
		TemplateID      string            `json:"template_id" pattern:"^[A-Za-z0-9_.-]{1,64}$"`
		TemplateVersion int               `json:"template_version" minimum:"1"`
		Params          map[string]string `json:"params,omitempty" maxProperties:"20"`
		Retry           *ledger.PlanRetry `json:"retry,omitempty"`
		Line            string            `json:"line,omitempty" maxLength:"64"`
	}
}

type planOut struct {
	Status int
	Body   Plan
}

type planGetIn struct {
	ID string `path:"id" pattern:"^[A-Za-z0-9_.-]{1,64}$"`
}

type plansOut struct {
	Body struct {
		ID       string `json:"id"`
		Versions []Plan `json:"versions" doc:"oldest first; the last one applies to every timer not yet fired"`
	}
}

type renewIn struct {
	IdempotencyKey
	Ref  string `path:"ref" minLength:"1" maxLength:"128"`
	Body struct {
		Common
		Number    string    `json:"number" maxLength:"32"`
		ExpiresAt time.Time `json:"expires_at" doc:"the new expiry: reminders planned from the old one are cancelled, new ones planned"`
	}
}

type relRemindersIn struct {
	Ref    string `path:"ref" minLength:"1" maxLength:"128"`
	Number string `query:"number" maxLength:"32" required:"true"`
}

type relRemindersOut struct {
	Body struct {
		ContractRef string              `json:"contract_ref"`
		Reminders   []schedule.Reminder `json:"reminders" doc:"upcoming, deferred, sent and cancelled, in the order planned"`
	}
}

type cancelPlannedIn struct {
	Ref  string `path:"ref" minLength:"1" maxLength:"128"`
	ID   string `path:"id" maxLength:"128"`
	Body struct {
		Number string `json:"number" maxLength:"32"`
	}
}

type queueIn struct {
	Day   string `query:"day" required:"true" pattern:"^[0-9]{4}-[0-9]{2}-[0-9]{2}$" doc:"a local calendar day, YYYY-MM-DD"`
	Zone  string `query:"zone" maxLength:"64" doc:"the IANA time zone the day is in; default Asia/Shanghai"`
	Limit int    `query:"limit" minimum:"1" maximum:"1000" default:"100"`
}

// DayCount is how many planned reminders are due on a day.
type DayCount struct {
	Day   string `json:"day"`
	Count int    `json:"count"`
}

type queueOut struct {
	Body struct {
		Day       string            `json:"day"`
		Zone      string            `json:"zone"`
		Total     int               `json:"total" doc:"pending reminders due that day"`
		Reminders []schedule.Queued `json:"reminders" doc:"the first of them by due time"`
		Week      []DayCount        `json:"week" doc:"pending reminders due on that day and the six after it"`
	}
}

func (s *Server) registerPlans(mw huma.Middlewares, sec []map[string][]string) {
	op := func(id, method, path, summary string, errs ...int) huma.Operation {
		return huma.Operation{OperationID: id, Method: method, Path: path, Summary: summary, Tags: []string{"business"},
			Middlewares: mw, Security: sec, Errors: append([]int{400, 401, 403, 422}, errs...)}
	}
	define := op("define-plan", http.MethodPost, "/v1/plans", "Define a reminder plan, or its next version", 409)
	define.DefaultStatus = http.StatusCreated
	huma.Register(s.api, define, func(ctx context.Context, in *planIn) (*planOut, error) {
		p := who(ctx)
		b := in.Body
		if err := s.ownLine(ctx, "body.line", b.Line); err != nil {
			return nil, err
		}
		def := ledger.ReminderPlanDefined{PlanID: b.ID, Offsets: b.Offsets, Window: b.Window, TemplateID: b.TemplateID,
			TemplateVersion: b.TemplateVersion, Params: b.Params, Retry: b.Retry, Line: b.Line}
		vs, rev, err := schedule.ReadPlan(ctx, s.cfg.Store, p.key.Tenant, b.ID)
		if err != nil {
			return nil, s.storeError("plan", err)
		}
		if n := len(vs); n > 0 {
			last := vs[n-1].ReminderPlanDefined
			def.Version = last.Version
			if reflect.DeepEqual(normalPlan(last), normalPlan(def)) {
				// A retry of the last definition is no new version.
				return &planOut{Status: http.StatusOK, Body: planOf(vs[n-1])}, nil
			}
		}
		def.Version = len(vs) + 1
		if err := schedule.CheckPlan(ctx, s.cfg.Store, p.key.Tenant, &def); err != nil {
			if errors.Is(err, schedule.ErrPlan) {
				return nil, huma.Error422UnprocessableEntity(strings.TrimPrefix(err.Error(), "schedule: "),
					&huma.ErrorDetail{Location: "body.template_id", Message: "the plan must fill the template's parameters"})
			}
			return nil, s.storeError("plan", err)
		}
		ev, err := ledger.NewEvent(p.key.Tenant, "", s.cfg.Now(), &def)
		if err != nil {
			return nil, s.storeError("plan", err)
		}
		ev.Actor = p.key.ID
		out, err := s.cfg.Store.Append(ctx, ledger.PlanStream(p.key.Tenant, b.ID), ledger.Exact(rev), []ledger.Event{ev})
		if errors.Is(err, ledger.ErrWrongRevision) {
			return nil, huma.Error409Conflict("the plan was defined again meanwhile; read it and retry")
		}
		if err != nil {
			return nil, s.storeError("plan", err)
		}
		return &planOut{Status: http.StatusCreated, Body: planOf(schedule.PlanVersion{ReminderPlanDefined: def,
			DefinedAt: out[0].RecordedAt, DefinedBy: p.key.ID, Event: out[0].ID})}, nil
	})
	huma.Register(s.api, op("get-plan", http.MethodGet, "/v1/plans/{id}", "A reminder plan's versions", 404),
		func(ctx context.Context, in *planGetIn) (*plansOut, error) {
			vs, _, err := schedule.ReadPlan(ctx, s.cfg.Store, who(ctx).key.Tenant, in.ID)
			if err != nil {
				return nil, s.storeError("plan", err)
			}
			if len(vs) == 0 {
				return nil, huma.Error404NotFound("no plan of that id")
			}
			out := &plansOut{}
			out.Body.ID = in.ID
			for _, v := range vs {
				out.Body.Versions = append(out.Body.Versions, planOf(v))
			}
			return out, nil
		})

	renew := op("renew-relationship", http.MethodPost, "/v1/relationships/{ref}/renew", "Record a relationship's renewal to a new expiry", 404, 409, 413)
	renew.DefaultStatus = http.StatusCreated
	huma.Register(s.api, renew, func(ctx context.Context, in *renewIn) (*writeOutput, error) {
		b := in.Body
		_, subject, err := s.person("body.number", b.Number)
		if err != nil {
			return nil, err
		}
		if err := s.started(ctx, who(ctx).key.Tenant, subject, in.Ref); err != nil {
			return nil, err
		}
		return s.writeContact(ctx, "body.number", b.Number, b.Common, in.Key,
			&ledger.RelationshipRenewed{ContractRef: in.Ref, ExpiresAt: b.ExpiresAt.UTC()})
	})
	huma.Register(s.api, op("relationship-reminders", http.MethodGet, "/v1/relationships/{ref}/reminders",
		"A relationship's planned reminders: upcoming, deferred, sent and cancelled", 404),
		func(ctx context.Context, in *relRemindersIn) (*relRemindersOut, error) {
			tenant := who(ctx).key.Tenant
			_, subject, err := s.person("query.number", in.Number)
			if err != nil {
				return nil, err
			}
			if err := s.started(ctx, tenant, subject, in.Ref); err != nil {
				return nil, err
			}
			v, err := schedule.Read(ctx, s.cfg.Store, tenant, subject)
			if err != nil {
				return nil, s.storeError("reminders", err)
			}
			out := &relRemindersOut{}
			out.Body.ContractRef, out.Body.Reminders = in.Ref, v.Reminders(in.Ref)
			return out, nil
		})
	huma.Register(s.api, op("cancel-planned-reminder", http.MethodPost, "/v1/relationships/{ref}/reminders/{id}/cancel",
		"Cancel one planned reminder before it fires", 404, 409),
		func(ctx context.Context, in *cancelPlannedIn) (*writeOutput, error) {
			p := who(ctx)
			_, subject, err := s.person("body.number", in.Body.Number)
			if err != nil {
				return nil, err
			}
			var e ledger.Event
			err = s.cfg.Gate.Exclusive(subject, func() error {
				var err error
				e, err = schedule.Cancel(ctx, s.cfg.Store, p.key.Tenant, subject, in.Ref, in.ID, p.key.ID, s.cfg.Now())
				return err
			})
			switch {
			case errors.Is(err, schedule.ErrNoTimer):
				return nil, huma.Error404NotFound("no planned reminder of that id for that relationship and number")
			case errors.Is(err, schedule.ErrNotPending):
				return nil, huma.Error409Conflict("the reminder has already been sent or cancelled")
			case err != nil:
				return nil, s.storeError("cancel", err)
			}
			return &writeOutput{Status: http.StatusOK, Body: written(e, false)}, nil
		})
	huma.Register(s.api, op("planned-queue", http.MethodGet, "/v1/planned-reminders",
		"The business's planned reminders due on a day, and how many on the days after", 503),
		func(ctx context.Context, in *queueIn) (*queueOut, error) {
			if s.cfg.Planned == nil {
				return nil, huma.Error503ServiceUnavailable("the scheduler is not running")
			}
			zone := in.Zone
			if zone == "" {
				zone = "Asia/Shanghai"
			}
			loc, err := time.LoadLocation(zone)
			if err != nil {
				return nil, huma.Error422UnprocessableEntity("unknown time zone", &huma.ErrorDetail{Location: "query.zone", Message: "an IANA zone such as Asia/Shanghai"})
			}
			day, err := time.ParseInLocation(time.DateOnly, in.Day, loc)
			if err != nil {
				return nil, huma.Error422UnprocessableEntity("not a date", &huma.ErrorDetail{Location: "query.day", Message: "YYYY-MM-DD"})
			}
			tenant := who(ctx).key.Tenant
			y, m, d := day.Date()
			list, total, err := s.cfg.Planned.Queue(ctx, tenant, day, time.Date(y, m, d+1, 0, 0, 0, 0, loc), in.Limit)
			if err != nil {
				return nil, s.storeError("queue", err)
			}
			out := &queueOut{}
			out.Body.Day, out.Body.Zone, out.Body.Total, out.Body.Reminders = in.Day, zone, total, list
			for i, n := range s.cfg.Planned.Days(tenant, day, 7, loc) {
				out.Body.Week = append(out.Body.Week, DayCount{Day: time.Date(y, m, d+i, 0, 0, 0, 0, loc).Format(time.DateOnly), Count: n})
			}
			return out, nil
		})
}

// normalPlan is a plan definition as compared for a retry: an empty
// parameter map is none.
func normalPlan(p ledger.ReminderPlanDefined) ledger.ReminderPlanDefined {
	if len(p.Params) == 0 {
		p.Params = nil
	}
	return p
}

// knownPlan checks that a relationship may name plan: the business
// defined it, and the relationship has an expiry to plan from.
func (s *Server) knownPlan(ctx context.Context, plan string, expires *time.Time) error {
	if expires == nil {
		return huma.Error422UnprocessableEntity("a relationship with a plan needs expires_at",
			&huma.ErrorDetail{Location: "body.expires_at", Message: "the plan reminds before it"})
	}
	vs, _, err := schedule.ReadPlan(ctx, s.cfg.Store, who(ctx).key.Tenant, plan)
	if err != nil {
		return s.storeError("plan", err)
	}
	if len(vs) == 0 {
		return huma.Error422UnprocessableEntity("unknown plan", &huma.ErrorDetail{Location: "body.plan", Message: "define it first with POST /v1/plans"})
	}
	return nil
}

// MyReminder is an upcoming planned reminder to the signed-in number.
type MyReminder struct {
	Tenant      string    `json:"tenant"`
	Business    string    `json:"business" doc:"the business's display name, or its tenant id"`
	ReminderID  string    `json:"reminder_id"`
	ContractRef string    `json:"contract_ref"`
	DueAt       time.Time `json:"due_at"`
	Status      string    `json:"status" enum:"upcoming,deferred"`
	Text        string    `json:"text,omitempty" doc:"what it will say, as the plan's template stands now"`
}

type myRemindersOut struct {
	Body struct {
		Reminders []MyReminder `json:"reminders" doc:"soonest first"`
	}
}

func (s *Server) registerMyReminders() {
	huma.Register(s.api, huma.Operation{OperationID: "customer-reminders", Method: http.MethodGet, Path: "/v1/me/reminders",
		Summary: "The reminders businesses plan to send my number", Tags: []string{"customer"},
		Description: "404 when this heed runs no scheduler of planned reminders.",
		Middlewares: huma.Middlewares{s.requireCustomer}, Security: []map[string][]string{{"customer": {}}}, Errors: []int{401, 404}},
		func(ctx context.Context, _ *struct{}) (*myRemindersOut, error) {
			if s.cfg.Planned == nil {
				return nil, huma.Error404NotFound("no planned reminders are served here")
			}
			number := who(ctx).number
			subject := s.cfg.Pseudonyms.Pseudonym(number)
			tenants, err := s.contacts.Tenants(ctx, subject)
			if err != nil {
				return nil, s.storeError("reminders", err)
			}
			out := &myRemindersOut{}
			out.Body.Reminders = []MyReminder{}
			for _, t := range tenants {
				v, err := schedule.Read(ctx, s.cfg.Store, t, subject)
				if err != nil {
					return nil, s.storeError("reminders", err)
				}
				business := t
				if p, ok, err := s.profile(ctx, t); err == nil && ok && p.DisplayName != "" {
					business = p.DisplayName
				}
				for _, r := range v.Reminders("") {
					if r.Status != schedule.StatusUpcoming && r.Status != schedule.StatusDeferred {
						continue
					}
					m := MyReminder{Tenant: t, Business: business, ReminderID: r.ReminderID, ContractRef: r.ContractRef, DueAt: r.DueAt, Status: r.Status}
					if text, err := s.cfg.Planned.Preview(ctx, v, v.Timers[r.ReminderID], number); err == nil {
						m.Text = text
					}
					out.Body.Reminders = append(out.Body.Reminders, m)
				}
			}
			slices.SortFunc(out.Body.Reminders, func(a, b MyReminder) int { return a.DueAt.Compare(b.DueAt) })
			return out, nil
		})
}

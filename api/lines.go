package api

import (
	"context"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/heed/heed/api/auth"
	"github.com/heed/heed/ledger"
	"github.com/heed/heed/projections"
)

// LineStates reads a tenant's line as the projections see it
// (projections.Runner implements it).
type LineStates interface {
	Line(ctx context.Context, tenant, line string) (projections.LineState, error)
}

type lineIn struct {
	Line string `path:"line" minLength:"1" maxLength:"64"`
}

// LineBody is a line's state as a business reads it.
type LineBody struct {
	Line        string         `json:"line"`
	Contacts    int            `json:"contacts" doc:"contacts over the window, each counted when heed recorded it"`
	Complaints  int            `json:"complaints" doc:"complaints over the window"`
	Rate        float64        `json:"rate" doc:"complaints / contacts"`
	WindowDays  int            `json:"window_days"`
	Threshold   float64        `json:"threshold" doc:"the rate that suspends a line"`
	MinContacts int            `json:"min_contacts" doc:"the fewest contacts in the window for the rate to count"`
	Suspended   bool           `json:"suspended" doc:"decisions on the line are refused"`
	Recorded    bool           `json:"recorded,omitempty" doc:"the LineSuspended event is in the log"`
	Reason      *ledger.Reason `json:"reason,omitempty" doc:"why it is suspended, with the figures"`
	AsOf        uint64         `json:"as_of" doc:"log position the state reflects"`
}

type lineOut struct{ Body LineBody }

type externalComplaintIn struct {
	IdempotencyKey
	Body struct {
		Common
		Number  string         `json:"number" maxLength:"32"`
		Line    string         `json:"line" minLength:"1" maxLength:"64" doc:"the line complained about"`
		Tenant  string         `json:"tenant,omitempty" maxLength:"64" doc:"the business the line belongs to; may be left out for a line heed's configuration assigns"`
		Channel channel        `json:"channel,omitempty"`
		Source  externalSource `json:"source"`
		Reason  string         `json:"reason,omitempty" maxLength:"1000"`
	}
}

func (s *Server) registerLines() {
	huma.Register(s.api, huma.Operation{OperationID: "get-line", Method: http.MethodGet, Path: "/v1/lines/{line}",
		Summary: "A line of the caller's business: contacts, complaints and complaint rate over the window, and whether it is suspended and why",
		Tags:    []string{"business"}, Middlewares: huma.Middlewares{s.requireKey(auth.RoleBusiness)},
		Security: []map[string][]string{{"key": {}}}, Errors: []int{401, 403, 503}},
		func(ctx context.Context, in *lineIn) (*lineOut, error) {
			if s.cfg.LineStates == nil {
				return nil, huma.Error503ServiceUnavailable("line states are not served")
			}
			if err := s.ownLine(ctx, "path.line", in.Line); err != nil {
				return nil, err
			}
			ls, err := s.cfg.LineStates.Line(ctx, who(ctx).key.Tenant, in.Line)
			if err != nil {
				return nil, s.storeError("line", err)
			}
			out := &lineOut{Body: LineBody{Line: ls.Line, Contacts: ls.Contacts, Complaints: ls.Complaints, Rate: ls.Rate,
				WindowDays: ls.WindowDays, Threshold: ls.Threshold, MinContacts: ls.MinContacts, Suspended: ls.Suspended,
				Recorded: ls.Recorded, AsOf: ls.AsOf}}
			if ls.Reason != nil {
				out.Body.Reason = ls.Reason
			}
			return out, nil
		})
}

func (s *Server) registerExternal() {
	huma.Register(s.api, huma.Operation{OperationID: "record-external-complaint", Method: http.MethodPost, Path: "/v1/complaints/external",
		Summary: "Record an operator's or regulator's complaint against a business's line (regulator keys)",
		Tags:    []string{"regulator"}, Middlewares: huma.Middlewares{s.requireKey(auth.RoleRegulator)},
		Security: []map[string][]string{{"key": {}}}, DefaultStatus: http.StatusCreated, Errors: []int{400, 401, 403, 409, 422}},
		func(ctx context.Context, in *externalComplaintIn) (*writeOutput, error) {
			b := in.Body
			tenant := b.Tenant
			if owner, ok := s.cfg.Lines[b.Line]; ok {
				if tenant != "" && tenant != owner {
					return nil, huma.Error422UnprocessableEntity("the line belongs to another business", &huma.ErrorDetail{Location: "body.tenant", Message: "leave it out or name the line's owner"})
				}
				tenant = owner
			}
			if !auth.ValidTenant(tenant) {
				return nil, huma.Error422UnprocessableEntity("name the business the line belongs to", &huma.ErrorDetail{Location: "body.tenant", Message: "required for a line heed's configuration does not assign"})
			}
			_, subject, err := s.person("body.number", b.Number)
			if err != nil {
				return nil, err
			}
			at, err := s.occurred(ctx, "body.occurred_at", b.Common)
			if err != nil {
				return nil, err
			}
			payload := func() any {
				return &ledger.ComplaintReceived{Line: b.Line, Channel: string(b.Channel), Source: string(b.Source), Reason: b.Reason}
			}
			ev, err := ledger.NewEvent(tenant, subject, at, payload())
			if err != nil {
				return nil, s.storeError("build", err)
			}
			actor := who(ctx).key.ID
			ev.Actor = actor
			// Ids are scoped by the writing key, not the tenant: a regulator
			// writes for every business.
			ev.ID = s.eventID(actor, b.ID, in.Key, ev.Type)
			var rebuild func(time.Time) any
			if b.OccurredAt == nil {
				rebuild = func(time.Time) any { return payload() }
			}
			var e ledger.Event
			var replayed bool
			err = s.cfg.Gate.Exclusive(subject, func() error {
				var err error
				e, replayed, err = s.append(ctx, ledger.ContactStream(tenant, subject), ev, rebuild)
				return err
			})
			if err != nil {
				return nil, err
			}
			s.cfg.Log.Info("external complaint", "by", actor, "tenant", tenant, "line", b.Line, "source", b.Source)
			out := &writeOutput{Status: http.StatusCreated, Body: written(e, replayed)}
			if replayed {
				out.Status = http.StatusOK
			}
			return out, nil
		})
}

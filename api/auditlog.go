package api

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/heed/heed/api/auth"
	"github.com/heed/heed/ledger"
	"github.com/heed/heed/projections/report"
)

// logScan bounds the events one search request reads: a search that
// matches rarely answers with what it found so far and where to go on.
const logScan = 10000

type auditLogIn struct {
	After  uint64    `query:"after" doc:"list events after this position"`
	Type   string    `query:"type" maxLength:"64" doc:"only events of this type"`
	Tenant string    `query:"tenant" maxLength:"64" doc:"only events of this business"`
	Line   string    `query:"line" maxLength:"64" doc:"only events that name this line"`
	Since  time.Time `query:"since" doc:"only events recorded at or after this time (RFC 3339)"`
	Until  time.Time `query:"until" doc:"only events recorded before this time (RFC 3339)"`
	Limit  int       `query:"limit" minimum:"1" maximum:"200" default:"50" doc:"most events to list"`
}

// LogEvent is an event as the log browser lists it: the envelope, the line
// it names and its payload. Its proof of inclusion is at
// /v1/audit/proofs/inclusion?position=…, whose leaf is the signed truth.
type LogEvent struct {
	Position   uint64          `json:"position"`
	ID         string          `json:"id"`
	Type       string          `json:"type"`
	Tenant     string          `json:"tenant,omitempty"`
	Subject    string          `json:"subject,omitempty"`
	Stream     string          `json:"stream"`
	Line       string          `json:"line,omitempty"`
	OccurredAt time.Time       `json:"occurred_at"`
	RecordedAt time.Time       `json:"recorded_at"`
	Actor      string          `json:"actor,omitempty"`
	Data       json.RawMessage `json:"data"`
}

type auditLogOut struct {
	Body struct {
		Events []LogEvent `json:"events"`
		Next   uint64     `json:"next" doc:"the last position read: pass it as after to go on"`
		Head   uint64     `json:"head" doc:"the log's head when the search began"`
		Done   bool       `json:"done" doc:"nothing after next can match: the head or until was reached"`
	}
}

func (s *Server) registerLog() {
	huma.Register(s.api, huma.Operation{OperationID: "audit-log", Method: http.MethodGet, Path: "/v1/audit/log",
		Summary: "Browse and search the log by position, type, business, line and time",
		Description: "Lists events after `after` that match every filter given, in position order. One request reads at most " +
			"10,000 events: page on with after=next until done. `since` starts at the first event recorded then (found by " +
			"binary search over positions, as recorded times grow with them).",
		Tags: []string{"auditor"}, Middlewares: huma.Middlewares{s.requireKey(auth.RoleAuditor, auth.RoleAdmin)},
		Security: []map[string][]string{{"key": {}}}, Errors: []int{401, 403, 422}},
		func(ctx context.Context, in *auditLogIn) (*auditLogOut, error) {
			if in.Type != "" && !slices.Contains(ledger.Types(), in.Type) {
				return nil, huma.Error422UnprocessableEntity("unknown event type",
					&huma.ErrorDetail{Location: "query.type", Message: "one of " + strings.Join(ledger.Types(), ", ")})
			}
			if !in.Since.IsZero() && !in.Until.IsZero() && in.Until.Before(in.Since) {
				return nil, huma.Error422UnprocessableEntity("until is before since", &huma.ErrorDetail{Location: "query.until", Message: "must not be before since"})
			}
			out := &auditLogOut{}
			out.Body.Events = []LogEvent{}
			head, err := s.cfg.Store.Head(ctx)
			if err != nil {
				return nil, s.storeError("log", err)
			}
			out.Body.Head, out.Body.Next = head, min(in.After, head)
			if !in.Since.IsZero() {
				first, err := report.Seek(ctx, s.cfg.Store, head, in.Since)
				if err != nil {
					return nil, s.storeError("log", err)
				}
				out.Body.Next = max(out.Body.Next, first-1)
			}
			stop := out.Body.Next + logScan
			for out.Body.Next < head && out.Body.Next < stop && len(out.Body.Events) < in.Limit && !out.Body.Done {
				evs, err := s.cfg.Store.ReadAll(ctx, out.Body.Next+1, int(min(1000, head-out.Body.Next, stop-out.Body.Next)))
				if err != nil {
					return nil, s.storeError("log", err)
				}
				if len(evs) == 0 {
					break
				}
				for i := range evs {
					e := &evs[i]
					if !in.Until.IsZero() && !e.RecordedAt.Before(in.Until) {
						out.Body.Done = true
						break
					}
					out.Body.Next = e.Position
					if (in.Type != "" && e.Type != in.Type) || (in.Tenant != "" && e.Tenant != in.Tenant) {
						continue
					}
					var named struct {
						Line string `json:"line"`
					}
					_ = json.Unmarshal(e.Data, &named)
					if in.Line != "" && named.Line != in.Line {
						continue
					}
					data := e.Data
					if len(data) == 0 {
						data = json.RawMessage("{}")
					}
					out.Body.Events = append(out.Body.Events, LogEvent{Position: e.Position, ID: e.ID, Type: e.Type, Tenant: e.Tenant,
						Subject: e.Subject, Stream: e.Stream, Line: named.Line, OccurredAt: e.OccurredAt, RecordedAt: e.RecordedAt,
						Actor: e.Actor, Data: data})
					if len(out.Body.Events) == in.Limit {
						break
					}
				}
			}
			out.Body.Done = out.Body.Done || out.Body.Next >= head
			return out, nil
		})
}

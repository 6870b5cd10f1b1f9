package api

import (
	"context"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/heed/heed/api/auth"
	"github.com/heed/heed/ledger"
)

type flaggedIn struct {
	After  uint64 `query:"after" doc:"scan from the position after this one"`
	Scan   int    `query:"scan" minimum:"1" maximum:"100000" default:"10000" doc:"how many events of the log to scan"`
	Status string `query:"status" enum:"none,denied,forged,mismatch,expired,unverified" doc:"only contacts whose cited decision has this status"`
}

// FlaggedContact is a contact that did not rest on a valid decision heed
// issued.
type FlaggedContact struct {
	Position   uint64    `json:"position"`
	ID         string    `json:"id" doc:"event id of the ContactMade"`
	Tenant     string    `json:"tenant"`
	Actor      string    `json:"actor" doc:"the key that recorded it"`
	OccurredAt time.Time `json:"occurred_at"`
	RecordedAt time.Time `json:"recorded_at"`
	Line       string    `json:"line"`
	Channel    string    `json:"channel"`
	Purpose    string    `json:"purpose"`
	// Decision is the cited decision as heed found it; status unverified
	// marks a contact recorded before heed checked citations.
	Decision ledger.CitedDecision `json:"decision"`
}

type flaggedOut struct {
	Body struct {
		Contacts []FlaggedContact `json:"contacts"`
		Next     uint64           `json:"next" doc:"the last position scanned: pass it as after to go on"`
		Head     uint64           `json:"head" doc:"the log's head when the scan began"`
	}
}

// statusUnverified is reported for contacts recorded before heed verified
// citations: they name a decision id heed never checked.
const statusUnverified = "unverified"

func (s *Server) registerFlagged() {
	huma.Register(s.api, huma.Operation{OperationID: "audit-flagged-contacts", Method: http.MethodGet, Path: "/v1/audit/flagged-contacts",
		Summary:     "Contacts that cite no decision, a denied, forged, mismatched or expired one",
		Description: "Scans the log from after+1, at most scan events, and lists the ContactMade events whose cited decision is not valid. Page on with after=next until next reaches head.",
		Tags:        []string{"auditor"}, Middlewares: huma.Middlewares{s.requireKey(auth.RoleAuditor, auth.RoleAdmin)},
		Security: []map[string][]string{{"key": {}}}, Errors: []int{401, 403, 422}},
		func(ctx context.Context, in *flaggedIn) (*flaggedOut, error) {
			out := &flaggedOut{}
			out.Body.Contacts = []FlaggedContact{}
			head, err := s.cfg.Store.Head(ctx)
			if err != nil {
				return nil, s.storeError("flagged", err)
			}
			out.Body.Head, out.Body.Next = head, in.After
			for out.Body.Next < head && out.Body.Next < in.After+uint64(in.Scan) {
				n := min(4096, int(in.After+uint64(in.Scan)-out.Body.Next))
				evs, err := s.cfg.Store.ReadAll(ctx, out.Body.Next+1, n)
				if err != nil {
					return nil, s.storeError("flagged", err)
				}
				if len(evs) == 0 {
					break
				}
				for i := range evs {
					e := &evs[i]
					out.Body.Next = e.Position
					if e.Type != ledger.TypeContactMade {
						continue
					}
					if f, ok := flagged(e); ok && (in.Status == "" || in.Status == f.Decision.Status) {
						out.Body.Contacts = append(out.Body.Contacts, f)
					}
				}
			}
			return out, nil
		})
}

// flagged reads a ContactMade and reports whether its citation is flagged.
func flagged(e *ledger.Event) (FlaggedContact, bool) {
	p, err := ledger.Decode(e)
	if err != nil {
		return FlaggedContact{}, false
	}
	c, ok := p.(*ledger.ContactMade)
	if !ok {
		return FlaggedContact{}, false
	}
	f := FlaggedContact{Position: e.Position, ID: e.ID, Tenant: e.Tenant, Actor: e.Actor, OccurredAt: e.OccurredAt,
		RecordedAt: e.RecordedAt, Line: c.Line, Channel: c.Channel, Purpose: c.Purpose}
	switch {
	case c.Decision != nil:
		f.Decision = *c.Decision
	case c.DecisionID != "":
		f.Decision = ledger.CitedDecision{ID: c.DecisionID, Status: statusUnverified}
	default:
		f.Decision = ledger.CitedDecision{Status: ledger.CitedNone}
	}
	return f, f.Decision.Status != ledger.CitedValid
}

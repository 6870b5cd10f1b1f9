package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/google/uuid"

	"github.com/heed/heed/ledger"
)

// importable are the event types a business may bulk-import: facts from
// its own systems, never the notifier's own records.
var importable = []string{
	ledger.TypeConsentGranted, ledger.TypeConsentWithdrawn, ledger.TypeRelationshipStarted, ledger.TypeRelationshipEnded,
	ledger.TypeContactMade, ledger.TypeComplaintReceived, ledger.TypeSuppressionListed, ledger.TypeSuppressionLifted,
}

// ImportLine is one line of an NDJSON import.
type ImportLine struct {
	ID         string          `json:"id,omitempty"`
	Type       string          `json:"type"`
	Number     string          `json:"number"`
	OccurredAt time.Time       `json:"occurred_at"`
	Data       json.RawMessage `json:"data"`
	// DecisionTag is the tag of the decision a ContactMade line cites in
	// data.decision_id.
	DecisionTag string `json:"decision_tag,omitempty"`
}

type importIn struct {
	Key      string `header:"Idempotency-Key" maxLength:"200" doc:"makes a retried import a no-op for lines without an id"`
	Backfill bool   `query:"backfill" doc:"the lines are history older than the back-dating window (keys allowed to backfill only); imported contacts count for the limits at their occurred_at"`
	RawBody  []byte `contentType:"application/x-ndjson" doc:"one event per line: {id?, type, number, occurred_at, data}"`
}

type importOut struct {
	Status int
	Body   struct {
		Events []Written `json:"events"`
	}
}

func (s *Server) registerImport(mw huma.Middlewares, sec []map[string][]string) {
	huma.Register(s.api, huma.Operation{OperationID: "import-events", Method: http.MethodPost, Path: "/v1/events:import",
		Summary:     "Import events in bulk (NDJSON); every line is checked before any is written",
		Description: "Lines about one number keep their order in its stream; lines about different numbers may land in the log in any order.", Tags: []string{"business"},
		Middlewares: mw, Security: sec, DefaultStatus: http.StatusCreated, Errors: []int{400, 401, 403, 409, 413, 422}},
		func(ctx context.Context, in *importIn) (*importOut, error) {
			p := who(ctx)
			if in.Backfill && !p.key.Backfill {
				return nil, huma.Error403Forbidden("this key may not backfill; an admin creates keys that may")
			}
			now := s.cfg.Now().UTC()
			var evs []ledger.Event
			sc := bufio.NewScanner(bytes.NewReader(in.RawBody))
			sc.Buffer(make([]byte, 64*1024), MaxBody)
			for n := 1; sc.Scan(); n++ {
				line := bytes.TrimSpace(sc.Bytes())
				if len(line) == 0 {
					continue
				}
				loc := fmt.Sprintf("body line %d", n)
				var l ImportLine
				dec := json.NewDecoder(bytes.NewReader(line))
				dec.DisallowUnknownFields()
				if err := dec.Decode(&l); err != nil {
					return nil, huma.Error400BadRequest("malformed NDJSON", &huma.ErrorDetail{Location: loc, Message: "not a JSON object of {id, type, number, occurred_at, data}"})
				}
				if !slices.Contains(importable, l.Type) {
					return nil, huma.Error422UnprocessableEntity("event type not importable", &huma.ErrorDetail{Location: loc + " type", Message: "expected one of " + fmt.Sprint(importable)})
				}
				e164, subject, err := s.person(loc+" number", l.Number)
				if err != nil {
					return nil, err
				}
				if err := s.bounded(loc+" occurred_at", l.OccurredAt.UTC(), now, in.Backfill); err != nil {
					return nil, err
				}
				id := l.ID
				if id == "" && in.Key != "" {
					id = uuid.NewSHA1(idemSpace, fmt.Appendf(nil, "%s\x00import\x00%s\x00%d", p.key.Tenant, in.Key, n)).String()
				}
				if id == "" {
					id = ledger.NewID()
				}
				e := ledger.Event{ID: id, Type: l.Type, Tenant: p.key.Tenant, Subject: subject, OccurredAt: l.OccurredAt.UTC(),
					Actor: p.key.ID, Schema: 1, Data: l.Data}
				if err := ledger.Validate(&e); err != nil {
					return nil, huma.Error422UnprocessableEntity("invalid event", &huma.ErrorDetail{Location: loc, Message: err.Error()})
				}
				if pl, _ := ledger.Decode(&e); pl != nil {
					switch pl := pl.(type) {
					case *ledger.ContactMade:
						if err := s.ownLine(ctx, loc+" data.line", pl.Line); err != nil {
							return nil, err
						}
						if pl.Decision != nil {
							return nil, huma.Error422UnprocessableEntity("heed records the cited decision itself", &huma.ErrorDetail{Location: loc + " data.decision", Message: "leave it out"})
						}
						// The region is the callee's, as Decide computes it,
						// whatever the line says: a business cannot steer
						// contacts out of the region-burst rule; and only a
						// backfill counts a contact at its own time.
						var status string
						pl.Region, pl.Backfill = s.region(e164), in.Backfill
						pl.Decision = s.cite(p.key.Tenant, e164, pl.Channel, pl.Purpose, pl.Line, e.OccurredAt, pl.DecisionID, l.DecisionTag, &status)
						if e.Data, err = json.Marshal(pl); err != nil {
							return nil, err
						}
					case *ledger.ConsentWithdrawn:
						if pl.Via == ledger.ViaSelfService {
							return nil, huma.Error403Forbidden("only the customer records a self-service opt-out", &huma.ErrorDetail{Location: loc + " data.via", Message: "not self-service"})
						}
					case *ledger.ComplaintReceived:
						if pl.Via != "" || pl.Contact != "" {
							return nil, huma.Error403Forbidden("only the customer records a self-service complaint", &huma.ErrorDetail{Location: loc + " data.via", Message: "leave via and contact out"})
						}
						if pl.Source != "customer" {
							return nil, huma.Error403Forbidden("a business records only its customers' complaints", &huma.ErrorDetail{Location: loc + " data.source", Message: "must be customer"})
						}
						if err := s.ownLine(ctx, loc+" data.line", pl.Line); err != nil {
							return nil, err
						}
					case *ledger.SuppressionListed:
						if pl.Scope != "tenant" {
							return nil, huma.Error422UnprocessableEntity("a business may only use its own lists", &huma.ErrorDetail{Location: loc + " data.scope", Message: "must be tenant"})
						}
					case *ledger.SuppressionLifted:
						if pl.Scope != "tenant" {
							return nil, huma.Error422UnprocessableEntity("a business may only use its own lists", &huma.ErrorDetail{Location: loc + " data.scope", Message: "must be tenant"})
						}
					}
				}
				evs = append(evs, e)
			}
			if err := sc.Err(); err != nil {
				return nil, huma.Error400BadRequest("unreadable body")
			}
			if len(evs) == 0 {
				return nil, huma.Error422UnprocessableEntity("no events in the body")
			}
			// Each stream's lines go in one append, in their order; streams
			// are appended concurrently so they share the store's group
			// commits instead of paying one fsync each.
			byStream := map[string][]int{}
			var order []string
			for i := range evs {
				st := ledger.ContactStream(evs[i].Tenant, evs[i].Subject)
				if _, ok := byStream[st]; !ok {
					order = append(order, st)
				}
				byStream[st] = append(byStream[st], i)
			}
			results := make([]Written, len(evs))
			var (
				wg       sync.WaitGroup
				mu       sync.Mutex
				firstErr error
				sem      = make(chan struct{}, 64)
			)
			for _, st := range order {
				idx := byStream[st]
				sem <- struct{}{}
				wg.Go(func() {
					defer func() { <-sem }()
					batch := make([]ledger.Event, len(idx))
					for j, i := range idx {
						batch[j] = evs[i]
					}
					var stored []ledger.Event
					err := s.cfg.Gate.Exclusive(batch[0].Subject, func() error {
						var err error
						stored, err = s.cfg.Store.Append(ctx, st, ledger.Any(), batch)
						return err
					})
					if err != nil {
						mu.Lock()
						if firstErr == nil {
							firstErr = err
						}
						mu.Unlock()
						return
					}
					for j, e := range stored {
						results[idx[j]] = written(e, e.Replayed)
					}
				})
			}
			wg.Wait()
			if firstErr != nil {
				return nil, s.storeError("import", firstErr)
			}
			out := &importOut{Status: http.StatusCreated}
			out.Body.Events = results
			return out, nil
		})
	// The document gives the schema of one line, which is what a client
	// needs and what strictInput checks each line against.
	if item := s.api.OpenAPI().Paths["/v1/events:import"]; item != nil && item.Post != nil {
		if mt := item.Post.RequestBody.Content["application/x-ndjson"]; mt != nil {
			mt.Schema = huma.SchemaFromType(s.api.OpenAPI().Components.Schemas, reflect.TypeFor[ImportLine]())
			mt.Schema.Description = "one line of the body; each line is a JSON object"
		}
	}
}

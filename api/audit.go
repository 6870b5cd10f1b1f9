package api

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	"github.com/heed/heed/api/auth"
	"github.com/heed/heed/ledger"
	"github.com/heed/heed/ledger/pii"
)

type auditEventsIn struct {
	After uint64 `query:"after" doc:"return events after this position"`
	Limit int    `query:"limit" minimum:"1" maximum:"100000" default:"1000"`
}

type checkpointOut struct{ Body Checkpoint }

type inclusionIn struct {
	Position int64 `query:"position" minimum:"1" required:"true"`
	Size     int64 `query:"size" minimum:"0" doc:"tree size; 0 or absent means the latest checkpoint"`
}

// InclusionProof proves one event is in a tree.
type InclusionProof struct {
	Position int64    `json:"position"`
	Size     int64    `json:"size"`
	Leaf     string   `json:"leaf" doc:"the event's canonical encoding, the bytes hashed into the tree"`
	Proof    [][]byte `json:"proof" doc:"RFC 6962 audit path"`
}

type inclusionOut struct{ Body InclusionProof }

type consistencyIn struct {
	Old int64 `query:"old" minimum:"1" required:"true"`
	New int64 `query:"new" minimum:"0" doc:"0 or absent means the latest checkpoint"`
}

// ConsistencyProof proves a tree is an extension of an older one.
type ConsistencyProof struct {
	Old   int64    `json:"old"`
	New   int64    `json:"new"`
	Proof [][]byte `json:"proof"`
}

type consistencyOut struct{ Body ConsistencyProof }

func (s *Server) registerAudit() {
	mw := huma.Middlewares{s.requireKey(auth.RoleAuditor, auth.RoleAdmin)}
	sec := []map[string][]string{{"key": {}}}
	op := func(id, path, summary string) huma.Operation {
		return huma.Operation{OperationID: id, Method: http.MethodGet, Path: path, Summary: summary,
			Tags: []string{"auditor"}, Middlewares: mw, Security: sec, Errors: []int{400, 401, 403, 404, 422, 503}}
	}
	huma.Register(s.api, op("audit-events", "/v1/audit/events", "The global log as NDJSON, one canonical leaf per line"),
		func(ctx context.Context, in *auditEventsIn) (*huma.StreamResponse, error) {
			evs, err := s.cfg.Store.ReadAll(ctx, in.After+1, in.Limit)
			if err != nil {
				return nil, s.storeError("audit", err)
			}
			return &huma.StreamResponse{Body: func(hc huma.Context) {
				hc.SetHeader("Content-Type", "application/x-ndjson")
				w := bufio.NewWriter(hc.BodyWriter())
				for i := range evs {
					leaf, err := evs[i].Leaf()
					if err != nil {
						s.cfg.Log.Error("audit leaf", "position", evs[i].Position, "err", err)
						return
					}
					_, _ = w.Write(leaf)
					_ = w.WriteByte('\n')
				}
				_ = w.Flush()
			}}, nil
		})
	s.registerPersonal(mw, sec)
	s.registerReports()
	s.registerLog()
	s.registerAuditPage()
	huma.Register(s.api, op("audit-checkpoint", "/v1/audit/checkpoint", "The latest signed checkpoint"),
		func(ctx context.Context, _ *struct{}) (*checkpointOut, error) {
			if s.cfg.Auditor == nil {
				return nil, huma.Error503ServiceUnavailable("no sealer is running")
			}
			cp, err := s.cfg.Auditor.Checkpoint(ctx)
			if err != nil {
				return nil, s.checkpointError(err)
			}
			return &checkpointOut{Body: cp}, nil
		})
	huma.Register(s.api, op("audit-inclusion", "/v1/audit/proofs/inclusion", "Prove an event is in a checkpointed tree"),
		func(ctx context.Context, in *inclusionIn) (*inclusionOut, error) {
			if s.cfg.Auditor == nil {
				return nil, huma.Error503ServiceUnavailable("no sealer is running")
			}
			size, err := s.treeSize(ctx, "size", in.Size)
			if err != nil {
				return nil, err
			}
			if in.Position > size {
				return nil, huma.Error422UnprocessableEntity("position is beyond the tree size")
			}
			evs, err := s.cfg.Store.ReadAll(ctx, uint64(in.Position), 1)
			if err != nil || len(evs) == 0 {
				return nil, huma.Error404NotFound("no event at that position")
			}
			leaf, err := evs[0].Leaf()
			if err != nil {
				return nil, s.storeError("leaf", err)
			}
			proof, err := s.cfg.Auditor.Inclusion(ctx, in.Position, size)
			if err != nil {
				return nil, s.auditError(err)
			}
			return &inclusionOut{Body: InclusionProof{Position: in.Position, Size: size, Leaf: string(leaf), Proof: proof}}, nil
		})
	huma.Register(s.api, op("audit-consistency", "/v1/audit/proofs/consistency", "Prove a newer tree extends an older one"),
		func(ctx context.Context, in *consistencyIn) (*consistencyOut, error) {
			if s.cfg.Auditor == nil {
				return nil, huma.Error503ServiceUnavailable("no sealer is running")
			}
			newer, err := s.treeSize(ctx, "new", in.New)
			if err != nil {
				return nil, err
			}
			if in.Old > newer {
				return nil, huma.Error422UnprocessableEntity("old is larger than new")
			}
			proof, err := s.cfg.Auditor.Consistency(ctx, in.Old, newer)
			if err != nil {
				return nil, s.auditError(err)
			}
			return &consistencyOut{Body: ConsistencyProof{Old: in.Old, New: newer, Proof: proof}}, nil
		})
	huma.Register(s.api, op("audit-bundle", "/v1/audit/bundle", "The audit bundle: every event, checkpoints and the public key, as `heed export` writes it"),
		func(ctx context.Context, _ *struct{}) (*huma.StreamResponse, error) {
			if s.cfg.Auditor == nil {
				return nil, huma.Error503ServiceUnavailable("no sealer is running")
			}
			return &huma.StreamResponse{Body: func(hc huma.Context) {
				hc.SetHeader("Content-Type", "application/octet-stream")
				hc.SetHeader("Content-Disposition", `attachment; filename="heed-bundle"`)
				if err := s.cfg.Auditor.Bundle(hc.Context(), hc.BodyWriter()); err != nil {
					s.cfg.Log.Error("bundle", "err", err)
				}
			}}, nil
		})
}

// treeSize is the tree a proof is asked against: the newest checkpoint's
// when asked is 0, else asked, which must not be beyond it. Proofs past the
// newest checkpoint would need hashes the sealer has not yet covered, and
// the tree's own error names internal hash indexes.
func (s *Server) treeSize(ctx context.Context, param string, asked int64) (int64, error) {
	cp, err := s.cfg.Auditor.Checkpoint(ctx)
	if err != nil {
		return 0, s.checkpointError(err)
	}
	if asked == 0 {
		return cp.Size, nil
	}
	if asked > cp.Size {
		return 0, huma.Error422UnprocessableEntity(fmt.Sprintf("%s %d is beyond the newest checkpoint %d", param, asked, cp.Size),
			&huma.ErrorDetail{Location: "query." + param, Message: fmt.Sprintf("at most %d", cp.Size)})
	}
	return asked, nil
}

func (s *Server) checkpointError(err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return huma.NewError(http.StatusServiceUnavailable, "request cancelled")
	}
	s.cfg.Log.Warn("audit checkpoint", "err", err)
	return huma.Error503ServiceUnavailable("no signed checkpoint is available yet; retry shortly")
}

// auditError answers a proof that failed within the checked range: the
// tree's error stays in the log, as it names internal hash indexes.
func (s *Server) auditError(err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return huma.NewError(http.StatusServiceUnavailable, "request cancelled")
	}
	s.cfg.Log.Error("audit proof", "err", err)
	return huma.Error500InternalServerError("the proof could not be computed")
}

type personalIn struct {
	Position uint64 `path:"position" minimum:"1"`
	Purpose  string `query:"purpose" required:"true" minLength:"1" maxLength:"500" doc:"why the fields are read; recorded, and shown to the customer"`
}

// PersonalFields are an event's opened personal fields.
type PersonalFields struct {
	Position uint64            `json:"position"`
	EventID  string            `json:"event_id"`
	Type     string            `json:"type"`
	Tenant   string            `json:"tenant,omitempty"`
	Fields   map[string]string `json:"fields"`
	Access   Written           `json:"access" doc:"the PersonalDataAccessed event that records this read"`
}

type personalOut struct{ Body PersonalFields }

// registerPersonal adds the one operation that returns opened personal
// fields to staff. It records the read (PersonalDataAccessed, in the
// stream of the event read, where the customer sees it) before it answers.
func (s *Server) registerPersonal(mw huma.Middlewares, sec []map[string][]string) {
	huma.Register(s.api, huma.Operation{OperationID: "audit-personal", Method: http.MethodGet, Path: "/v1/audit/events/{position}/personal",
		Summary:     "Read an event's personal fields, opened; the read is recorded and the customer sees it",
		Description: "Answers 404 for an event without personal fields and 410 once the key that sealed them was destroyed.",
		Tags:        []string{"auditor"}, Middlewares: mw, Security: sec, Errors: []int{401, 403, 404, 410, 422, 503}},
		func(ctx context.Context, in *personalIn) (*personalOut, error) {
			if s.cfg.PII == nil {
				return nil, huma.Error503ServiceUnavailable("no key store is configured")
			}
			evs, err := s.cfg.Store.ReadAll(ctx, in.Position, 1)
			if err != nil || len(evs) == 0 || evs[0].Position != in.Position {
				return nil, huma.Error404NotFound("no event at that position")
			}
			e := &evs[0]
			if len(e.PII) == 0 || e.Subject == "" {
				return nil, huma.Error404NotFound("that event has no personal fields")
			}
			// Checked before the read is recorded, so that reads of erased
			// data leave no record of a read that returned nothing.
			if _, err := s.cfg.PII.OpenEvent(ctx, e); err != nil {
				return nil, s.personalError(err)
			}
			p := who(ctx)
			rec, err := ledger.NewEvent(e.Tenant, e.Subject, s.cfg.Now(), &ledger.PersonalDataAccessed{
				EventID: e.ID, Position: e.Position, Role: p.key.Role, Purpose: in.Purpose})
			if err != nil {
				return nil, s.storeError("access record", err)
			}
			rec.Actor = p.key.ID
			stream := ledger.SubjectStream(e.Subject)
			if e.Tenant != "" {
				stream = ledger.ContactStream(e.Tenant, e.Subject)
			}
			stored, err := s.cfg.Store.Append(ctx, stream, ledger.Any(), []ledger.Event{rec})
			if err != nil {
				return nil, s.storeError("access record", err)
			}
			// Opened again after the record is durable: an erasure in
			// between wins.
			fields, err := s.cfg.PII.OpenEvent(ctx, e)
			if err != nil {
				return nil, s.personalError(err)
			}
			return &personalOut{Body: PersonalFields{Position: e.Position, EventID: e.ID, Type: e.Type, Tenant: e.Tenant,
				Fields: fields, Access: written(stored[0], false)}}, nil
		})
}

func (s *Server) personalError(err error) error {
	if errors.Is(err, pii.ErrErased) {
		return huma.Error410Gone("the personal data of that event was erased")
	}
	s.cfg.Log.Error("open personal fields", "err", err)
	return huma.Error500InternalServerError("the personal fields could not be opened")
}

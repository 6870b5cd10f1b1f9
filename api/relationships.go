package api

import (
	"context"
	"errors"

	"github.com/danielgtaylor/huma/v2"

	"github.com/heed/heed/ledger"
)

// started says whether the tenant ever started its relationship ref with
// subject; ending one it never started is 404: the resource the path names
// does not exist for this tenant and number, and the end would be a record
// the projections could only ignore. Ending one already ended is allowed:
// a later end corrects the earlier one's time or reason.
func (s *Server) started(ctx context.Context, tenant, subject, ref string) error {
	evs, err := s.cfg.Store.ReadStream(ctx, ledger.ContactStream(tenant, subject), 1, 0)
	if err != nil && !errors.Is(err, ledger.ErrNotFound) {
		return s.storeError("relationship", err)
	}
	for i := range evs {
		if evs[i].Type != ledger.TypeRelationshipStarted {
			continue
		}
		p, err := ledger.Decode(&evs[i])
		if err != nil {
			return s.storeError("relationship", err)
		}
		if r, ok := p.(*ledger.RelationshipStarted); ok && r.ContractRef == ref {
			return nil
		}
	}
	return huma.Error404NotFound("no relationship with that contract ref was started for this number",
		&huma.ErrorDetail{Location: "path.ref", Message: "start it with POST /v1/relationships first"})
}

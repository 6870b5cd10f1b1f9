package api

import (
	"slices"

	"github.com/danielgtaylor/huma/v2"

	"github.com/heed/heed/api/auth"
	"github.com/heed/heed/ledger"
)

// The API's enums whose values a list in Go defines (mostly the ledger's
// catalogue, which Validate checks every event against). Each type's schema
// lists that list's values, so the OpenAPI document and the request
// validation follow it instead of a copy in a tag.
type (
	channel         string // ledger.Channels
	purpose         string // ledger.Purposes
	consentSource   string // ledger.ConsentSources
	withdrawVia     string // ledger.WithdrawVias but self-service: only the customer's own page records that
	complaintSource string // ledger.ComplaintFrom
	// externalSource is ledger.ComplaintFrom but customer: the external
	// complaints are operators' and regulators'.
	externalSource string
	erasureReason  string // ErasureReasons
	role           string // auth.Roles
)

// Schema implements huma.SchemaProvider.
func (channel) Schema(huma.Registry) *huma.Schema { return enum(ledger.Channels) }

// Schema implements huma.SchemaProvider.
func (purpose) Schema(huma.Registry) *huma.Schema { return enum(ledger.Purposes) }

// Schema implements huma.SchemaProvider.
func (consentSource) Schema(huma.Registry) *huma.Schema { return enum(ledger.ConsentSources) }

// Schema implements huma.SchemaProvider.
func (withdrawVia) Schema(huma.Registry) *huma.Schema {
	return enum(without(ledger.WithdrawVias, ledger.ViaSelfService))
}

// Schema implements huma.SchemaProvider.
func (complaintSource) Schema(huma.Registry) *huma.Schema { return enum(ledger.ComplaintFrom) }

// Schema implements huma.SchemaProvider.
func (externalSource) Schema(huma.Registry) *huma.Schema {
	return enum(without(ledger.ComplaintFrom, "customer"))
}

// Schema implements huma.SchemaProvider.
func (erasureReason) Schema(huma.Registry) *huma.Schema { return enum(ErasureReasons) }

// Schema implements huma.SchemaProvider.
func (role) Schema(huma.Registry) *huma.Schema { return enum(auth.Roles) }

func enum(values []string) *huma.Schema {
	s := &huma.Schema{Type: huma.TypeString}
	for _, v := range values {
		s.Enum = append(s.Enum, v)
	}
	return s
}

func without(values []string, drop string) []string {
	return slices.DeleteFunc(slices.Clone(values), func(v string) bool { return v == drop })
}

// strs converts a list of enum values to the strings the ledger stores.
func strs[T ~string](vs []T) []string {
	if vs == nil {
		return nil
	}
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = string(v)
	}
	return out
}

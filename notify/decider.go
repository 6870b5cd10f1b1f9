package notify

import (
	"github.com/heed/heed/projections"
)

// Projections puts the eligibility projections behind a Decider.
func Projections(r *projections.Runner) Decider { return r }

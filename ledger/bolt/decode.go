package bolt

import (
	"fmt"

	"github.com/heed/heed/ledger"
)

// decode turns a stored leaf into an event (see ledger.DecodeLeaf).
func decode(leaf []byte) (ledger.Event, error) {
	e, err := ledger.DecodeLeaf(leaf)
	if err != nil {
		return ledger.Event{}, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return e, nil
}

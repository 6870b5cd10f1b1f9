package mem_test

import (
	"testing"

	"github.com/heed/heed/ledger"
	"github.com/heed/heed/ledger/mem"
	"github.com/heed/heed/ledger/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(*testing.T) ledger.Store { return mem.New() })
}

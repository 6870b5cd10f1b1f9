package bolt_test

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/heed/heed/ledger"
	"github.com/heed/heed/ledger/bolt"
	"github.com/heed/heed/ledger/storetest"
)

func openTemp(t *testing.T, opts ...bolt.Option) (*bolt.Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "heed.db")
	s, err := bolt.Open(path, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return s, path
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) ledger.Store {
		s, _ := openTemp(t)
		return s
	})
}

// TestConformanceFolding runs the suite with the stream index folded into
// the file after every commit or every few events, so reads and revision
// checks meet entries in memory, in the file, and in both.
func TestConformanceFolding(t *testing.T) {
	for _, n := range []int{1, 3} {
		t.Run(fmt.Sprint("every=", n), func(t *testing.T) {
			storetest.Run(t, func(t *testing.T) ledger.Store {
				s, _ := openTemp(t, bolt.FoldEvery(n))
				return s
			})
		})
	}
}

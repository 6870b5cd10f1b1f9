//go:build !unix

package projections

import "os"

// mapFile reads n bytes of f from off into memory, where files cannot be
// mapped privately.
func mapFile(f *os.File, off, n int64) ([]byte, error) {
	b := make([]byte, n)
	if _, err := f.ReadAt(b, off); err != nil {
		return nil, err
	}
	return b, nil
}

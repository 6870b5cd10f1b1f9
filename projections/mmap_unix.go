//go:build unix

package projections

import (
	"os"
	"syscall"
)

// mapFile maps n bytes of f from off (a multiple of the page size)
// privately: pages are read from the file when first touched, and a write
// copies its page into memory, so the file is never changed. The mapping
// lives as long as the process: the state's arrays point into it.
func mapFile(f *os.File, off, n int64) ([]byte, error) {
	return syscall.Mmap(int(f.Fd()), off, int(n), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE)
}

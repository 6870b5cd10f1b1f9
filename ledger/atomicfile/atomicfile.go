// Package atomicfile writes files that a crash leaves whole or absent,
// never torn: the content goes to a temporary file in the same directory,
// which is synced, then renamed (or linked) into place, and the directory
// is synced so that the new name survives too.
package atomicfile

import (
	"bufio"
	"encoding/binary"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// Write writes path with mode perm from what write writes, replacing any
// file there. On an error path is left as it was.
func Write(path string, perm fs.FileMode, write func(io.Writer) error) error {
	return put(path, perm, write, os.Rename)
}

// Castagnoli is the CRC-32C table WriteSummed sums with.
var Castagnoli = crc32.MakeTable(crc32.Castagnoli)

// WriteSummed is Write through a buffer, with the CRC-32C (Castagnoli) of
// what write wrote appended as four little-endian bytes, so that a reader
// tells a damaged file from a whole one.
func WriteSummed(path string, perm fs.FileMode, write func(*bufio.Writer) error) error {
	return Write(path, perm, func(f io.Writer) error {
		sum := crc32.New(Castagnoli)
		w := bufio.NewWriterSize(io.MultiWriter(f, sum), 1<<20)
		if err := write(w); err != nil {
			return err
		}
		if err := w.Flush(); err != nil {
			return err
		}
		return binary.Write(f, binary.LittleEndian, sum.Sum32())
	})
}

// Create is Write for a file that must not exist yet: when path exists it
// fails with an error wrapping fs.ErrExist and leaves it alone, so two
// processes creating one file at once cannot overwrite each other's.
func Create(path string, perm fs.FileMode, write func(io.Writer) error) error {
	return put(path, perm, write, os.Link)
}

func put(path string, perm fs.FileMode, write func(io.Writer) error, place func(tmp, path string) error) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	err = f.Chmod(perm)
	if err == nil {
		err = write(f)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = place(tmp, path)
	}
	if err != nil {
		return err
	}
	return SyncDir(filepath.Dir(path))
}

// Rename renames a file written and synced by other means (a compacted
// database) over path, and syncs the directory.
func Rename(from, path string) error {
	if err := os.Rename(from, path); err != nil {
		return err
	}
	return SyncDir(filepath.Dir(path))
}

// SyncDir syncs directory dir, so that names created, renamed or removed
// in it survive a crash.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

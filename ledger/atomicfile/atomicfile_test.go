package atomicfile

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	write := func(s string) func(io.Writer) error {
		return func(w io.Writer) error { _, err := io.WriteString(w, s); return err }
	}
	failed := errors.New("disk full")
	for _, c := range []struct {
		name   string
		do     func() error
		want   string
		err    error
		exists bool // the error wraps fs.ErrExist
	}{
		{"create", func() error { return Create(path, 0o600, write("one")) }, "one", nil, false},
		{"create again", func() error { return Create(path, 0o600, write("two")) }, "one", nil, true},
		{"replace", func() error { return Write(path, 0o640, write("three")) }, "three", nil, false},
		{"failed write", func() error {
			return Write(path, 0o600, func(w io.Writer) error { io.WriteString(w, "torn"); return failed })
		}, "three", failed, false},
	} {
		err := c.do()
		switch {
		case c.exists && !errors.Is(err, fs.ErrExist):
			t.Errorf("%s: %v, want fs.ErrExist", c.name, err)
		case !c.exists && !errors.Is(err, c.err):
			t.Errorf("%s: %v, want %v", c.name, err, c.err)
		}
		b, rerr := os.ReadFile(path)
		if rerr != nil || string(b) != c.want {
			t.Errorf("%s: file holds %q (%v), want %q", c.name, b, rerr, c.want)
		}
		left, _ := filepath.Glob(filepath.Join(dir, ".*"))
		if len(left) != 0 {
			t.Errorf("%s: temporary files left: %v", c.name, left)
		}
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, %v; want 0640", fi.Mode(), err)
	}
}

// TestWriteSummed checks the trailer readers verify: the body as written,
// then its CRC-32C in four little-endian bytes; a failed write leaves the
// old file.
func TestWriteSummed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.snap")
	body := bytes.Repeat([]byte("heed "), 300000)
	if err := WriteSummed(path, 0o600, func(w *bufio.Writer) error { _, err := w.Write(body); return err }); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got[:len(got)-4], body) || binary.LittleEndian.Uint32(got[len(got)-4:]) != crc32.Checksum(body, Castagnoli) {
		t.Fatalf("file of %d bytes is not the body and its CRC-32C", len(got))
	}
	if err := WriteSummed(path, 0o600, func(*bufio.Writer) error { return errors.New("disk full") }); err == nil {
		t.Fatal("a failed write reported success")
	}
	if again, _ := os.ReadFile(path); !bytes.Equal(again, got) {
		t.Fatal("a failed write changed the file")
	}
}

package backup

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Archive framing: per file, 'F', a 2-byte name length, the name, then
// pieces of content, each a 4-byte length and the bytes, ended by a
// zero-length piece; after the last file, 'E'. Lengths are big-endian.

// ArchiveWriter writes files into an archive.
type ArchiveWriter struct {
	w *bufio.Writer
}

// NewArchiveWriter starts an archive on w.
func NewArchiveWriter(w io.Writer) *ArchiveWriter {
	return &ArchiveWriter{w: bufio.NewWriterSize(w, chunkSize)}
}

// File adds a file named name whose content fn writes.
func (a *ArchiveWriter) File(name string, fn func(io.Writer) error) error {
	if name == "" || len(name) > 255 {
		return fmt.Errorf("backup: bad file name %q", name)
	}
	a.w.WriteByte('F')
	binary.Write(a.w, binary.BigEndian, uint16(len(name)))
	a.w.WriteString(name)
	pw := &pieces{w: a.w}
	if err := fn(pw); err != nil {
		return err
	}
	if pw.err != nil {
		return pw.err
	}
	return binary.Write(a.w, binary.BigEndian, uint32(0))
}

// Close ends the archive and flushes it; it does not close the writer
// underneath.
func (a *ArchiveWriter) Close() error {
	a.w.WriteByte('E')
	return a.w.Flush()
}

type pieces struct {
	w   *bufio.Writer
	err error
}

func (p *pieces) Write(b []byte) (int, error) {
	n := 0
	for len(b) > 0 && p.err == nil {
		k := min(len(b), 1<<20)
		if err := binary.Write(p.w, binary.BigEndian, uint32(k)); err != nil {
			p.err = err
			break
		}
		if _, err := p.w.Write(b[:k]); err != nil {
			p.err = err
			break
		}
		b, n = b[k:], n+k
	}
	return n, p.err
}

// ArchiveReader reads the files of an archive in order.
type ArchiveReader struct {
	r    *bufio.Reader
	left uint32 // bytes left in the current piece
	in   bool   // inside a file
}

// NewArchiveReader reads an archive from r.
func NewArchiveReader(r io.Reader) *ArchiveReader {
	return &ArchiveReader{r: bufio.NewReaderSize(r, chunkSize)}
}

// Next skips what is left of the current file and returns the next
// file's name, its content to read before the following Next, or io.EOF
// after the last file.
func (a *ArchiveReader) Next() (string, io.Reader, error) {
	if a.in {
		if _, err := io.Copy(io.Discard, a); err != nil {
			return "", nil, err
		}
	}
	tag, err := a.r.ReadByte()
	if err != nil {
		return "", nil, fmt.Errorf("%w: archive ends without its end mark", ErrDamaged)
	}
	switch tag {
	case 'E':
		return "", nil, io.EOF
	case 'F':
	default:
		return "", nil, fmt.Errorf("%w: bad archive entry", ErrDamaged)
	}
	var n uint16
	if err := binary.Read(a.r, binary.BigEndian, &n); err != nil {
		return "", nil, fmt.Errorf("%w: %v", ErrDamaged, err)
	}
	name := make([]byte, n)
	if _, err := io.ReadFull(a.r, name); err != nil {
		return "", nil, fmt.Errorf("%w: %v", ErrDamaged, err)
	}
	a.in, a.left = true, 0
	return string(name), a, nil
}

// Read reads the current file's content.
func (a *ArchiveReader) Read(p []byte) (int, error) {
	if !a.in {
		return 0, io.EOF
	}
	for a.left == 0 {
		if err := binary.Read(a.r, binary.BigEndian, &a.left); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return 0, fmt.Errorf("%w: %v", ErrDamaged, err)
		}
		if a.left == 0 {
			a.in = false
			return 0, io.EOF
		}
	}
	if uint32(len(p)) > a.left {
		p = p[:a.left]
	}
	k, err := a.r.Read(p)
	a.left -= uint32(k)
	if errors.Is(err, io.EOF) {
		err = fmt.Errorf("%w: file cut short", ErrDamaged)
	}
	return k, err
}

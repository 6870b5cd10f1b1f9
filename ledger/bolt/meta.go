package bolt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
)

// bbolt's on-disk meta page, as far as checkMeta needs it: a 16-byte page
// header, then magic, version, page size, flags, root bucket (16 bytes),
// freelist page, high-water page id, txid and an FNV-64a checksum of the
// fields before it. bbolt writes it in native order; heed runs on
// little-endian machines.
const (
	pageHeader  = 16
	metaMagic   = 0xED0CDAED
	metaVersion = 2
	metaLen     = 64
)

type meta struct {
	pageSize uint32
	pgid     uint64
	txid     uint64
}

func parseMeta(b []byte) (meta, bool) {
	if len(b) < pageHeader+metaLen {
		return meta{}, false
	}
	m := b[pageHeader : pageHeader+metaLen]
	le := binary.LittleEndian
	if le.Uint32(m[0:]) != metaMagic || le.Uint32(m[4:]) != metaVersion {
		return meta{}, false
	}
	h := fnv.New64a()
	h.Write(m[:56])
	if h.Sum64() != le.Uint64(m[56:]) {
		return meta{}, false
	}
	return meta{pageSize: le.Uint32(m[8:]), pgid: le.Uint64(m[40:]), txid: le.Uint64(m[48:])}, true
}

// checkMeta reads the meta pages of an existing, non-empty file before
// bbolt maps it, and refuses a file bbolt cannot read or one shorter than
// the pages its meta claims (bbolt would fault reading past the end). It
// only reads.
func checkMeta(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("bolt: open %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("bolt: open %s: %w", path, err)
	}
	if fi.IsDir() {
		return fmt.Errorf("bolt: open %s: is a directory", path)
	}
	if fi.Size() == 0 {
		return nil // bbolt initialises an empty file
	}
	buf := make([]byte, 4096)
	n, err := io.ReadFull(f, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("bolt: read %s: %w", path, err)
	}
	best, ok := parseMeta(buf[:n])
	ps := int64(4096)
	if ok {
		ps = int64(best.pageSize)
	}
	// The second meta page sits one page in; try the first meta's page
	// size and the common ones in case the first is the damaged one.
	for _, off := range []int64{ps, 4096, 8192, 16384, 65536} {
		b := make([]byte, pageHeader+metaLen)
		if _, err := f.ReadAt(b, off); err != nil {
			continue
		}
		if m, ok2 := parseMeta(b); ok2 && int64(m.pageSize) == off {
			if !ok || m.txid > best.txid {
				best = m
			}
			ok = true
			break
		}
	}
	if !ok {
		return fmt.Errorf("%w: %s: no valid bbolt meta page", ErrCorrupt, path)
	}
	if need := int64(best.pgid) * int64(best.pageSize); fi.Size() < need {
		return fmt.Errorf("%w: %s: file is %d bytes, its pages need %d: truncated", ErrCorrupt, path, fi.Size(), need)
	}
	return nil
}

package contactindex

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/heed/heed/ledger/atomicfile"
)

// The snapshot is the index as of a log position: a header line (JSON:
// the position, the id of its event, the tenants, the templates, the
// counts), the hex subjects' sets as fixed records, the other subjects'
// with their names, and a CRC-32C of all that. It is a function of the
// log: one the log does not hold (ahead of it, another log's) or that is
// damaged is set aside and the index replayed from position 1.
const (
	snapshotFile  = "contacts.snap"
	snapshotMagic = "heed contact index v1\n"
	// saveAfter is how many events applied since the last snapshot make
	// reaching the head, or stopping, save one.
	saveAfter = 100_000
	// saveEvery is the least time between periodic snapshots.
	saveEvery = 5 * time.Minute
)

// errSnapshot means a snapshot cannot be used.
var errSnapshot = errors.New("contactindex: snapshot does not match the log")

type snapshotHeader struct {
	Position  uint64     `json:"position"`
	ID        string     `json:"id"`
	Tenants   []string   `json:"tenants"`
	Templates []Template `json:"templates"`
	Hashed    int        `json:"hashed"`
	Other     int        `json:"other"`
}

// Persist keeps the index's snapshots in dir: Run starts from the last
// one that matches the log (queries wait for it to be read), and saves one after a long catch-up, every few
// minutes while events come, and on its way out.
func (x *Index) Persist(dir string, log *slog.Logger) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	x.dir, x.log, x.loaded = dir, log, make(chan struct{})
}

// save writes the index as of the last applied event; the caller holds
// off the appliers (catchMu, or is the follower).
func (x *Index) save() error {
	if x.dir == "" || x.seen.Load() == x.savedAt {
		return nil
	}
	start := time.Now()
	if err := os.MkdirAll(x.dir, 0o700); err != nil {
		return err
	}
	pos := x.seen.Load()
	err := atomicfile.WriteSummed(filepath.Join(x.dir, snapshotFile), 0o600, func(w *bufio.Writer) error {
		x.mu.RLock()
		defer x.mu.RUnlock()
		return x.writeTo(w, pos)
	})
	if err != nil {
		return fmt.Errorf("contactindex: snapshot: %w", err)
	}
	x.savedAt, x.savedWhen, x.cost = pos, time.Now(), time.Since(start)
	return nil
}

// writeTo writes the snapshot's body; x.mu is held.
func (x *Index) writeTo(w *bufio.Writer, pos uint64) error {
	h := snapshotHeader{Position: pos, ID: x.lastID, Tenants: x.tenants.names, Hashed: len(x.tenants.byHash), Other: len(x.tenants.other)}
	for k := range x.tmpls {
		h.Templates = append(h.Templates, k)
	}
	b, err := json.Marshal(h)
	if err != nil {
		return err
	}
	w.WriteString(snapshotMagic)
	w.Write(b)
	w.WriteByte('\n')
	var rec [32 + 1 + 16]byte
	for k, s := range x.tenants.byHash {
		copy(rec[:32], k[:])
		rec[32] = s.n
		for i, id := range s.ids {
			binary.LittleEndian.PutUint32(rec[33+4*i:], id)
		}
		w.Write(rec[:])
	}
	var buf []byte
	for subject, ids := range x.tenants.other {
		buf = binary.AppendUvarint(buf[:0], uint64(len(subject)))
		buf = append(buf, subject...)
		buf = binary.AppendUvarint(buf, uint64(len(ids)))
		for _, id := range ids {
			buf = binary.LittleEndian.AppendUint32(buf, id)
		}
		if _, err := w.Write(buf); err != nil {
			return err
		}
	}
	return nil
}

// load reads the snapshot in x.dir into the index if the log holds its
// last event; any other is set aside and the index starts empty.
func (x *Index) load(ctx context.Context) error {
	if x.dir == "" {
		return nil
	}
	path := filepath.Join(x.dir, snapshotFile)
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("contactindex: %w", err)
	}
	start := time.Now()
	sets, h, err := read(ctx, f)
	f.Close()
	if err == nil {
		err = x.matchLog(ctx, h)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil {
		if !errors.Is(err, errSnapshot) {
			return err // the store failed: not the snapshot's fault
		}
		x.log.Warn("contact index snapshot set aside; replaying the log", "err", err)
		if err := os.Rename(path, path+".bad"); err != nil {
			return fmt.Errorf("contactindex: %w", err)
		}
		return nil
	}
	x.mu.Lock()
	x.tenants = sets
	for _, t := range h.Templates {
		x.tmpls[t] = true
	}
	x.mu.Unlock()
	x.lastID, x.savedAt, x.savedWhen = h.ID, h.Position, time.Now()
	x.seen.Store(h.Position)
	x.log.Info("contact index read from its snapshot", "position", h.Position, "subjects", h.Hashed+h.Other, "s", time.Since(start).Seconds())
	return nil
}

// matchLog checks that the log holds the snapshot's last event at its
// position.
func (x *Index) matchLog(ctx context.Context, h snapshotHeader) error {
	if h.Position == 0 {
		return nil
	}
	head, err := x.store.Head(ctx)
	if err != nil {
		return err
	}
	if h.Position > head {
		return fmt.Errorf("%w: at %d, beyond the log's head %d", errSnapshot, h.Position, head)
	}
	evs, err := x.store.ReadAll(ctx, h.Position, 1)
	if err != nil {
		return err
	}
	if len(evs) == 0 || evs[0].ID != h.ID {
		return fmt.Errorf("%w: the log holds another event at %d", errSnapshot, h.Position)
	}
	return nil
}

// read decodes a snapshot, checking its checksum before anything of it is
// used.
func read(ctx context.Context, f *os.File) (tenantSets, snapshotHeader, error) {
	var h snapshotHeader
	fi, err := f.Stat()
	if err != nil {
		return tenantSets{}, h, err
	}
	bad := func(what string) error { return fmt.Errorf("%w: %s", errSnapshot, what) }
	if fi.Size() < int64(len(snapshotMagic))+4 {
		return tenantSets{}, h, bad("too short")
	}
	var want uint32
	if err := binary.Read(io.NewSectionReader(f, fi.Size()-4, 4), binary.LittleEndian, &want); err != nil {
		return tenantSets{}, h, err
	}
	sum := crc32.New(atomicfile.Castagnoli)
	r := bufio.NewReaderSize(io.TeeReader(io.NewSectionReader(f, 0, fi.Size()-4), sum), 1<<20)
	magic := make([]byte, len(snapshotMagic))
	if _, err := io.ReadFull(r, magic); err != nil || string(magic) != snapshotMagic {
		return tenantSets{}, h, bad("not a snapshot")
	}
	line, err := r.ReadBytes('\n')
	if err != nil {
		return tenantSets{}, h, bad("header")
	}
	if err := json.Unmarshal(line, &h); err != nil || h.Hashed < 0 || h.Other < 0 {
		return tenantSets{}, h, bad("header")
	}
	sets := newTenantSets()
	sets.names = h.Tenants
	for i, name := range h.Tenants {
		sets.ids[name] = uint32(i)
	}
	valid := func(id uint32) bool { return int(id) < len(h.Tenants) }
	var rec [32 + 1 + 16]byte
	for i := range h.Hashed {
		if i%(1<<16) == 0 && ctx.Err() != nil {
			return tenantSets{}, h, ctx.Err()
		}
		if _, err := io.ReadFull(r, rec[:]); err != nil {
			return tenantSets{}, h, bad("short")
		}
		var k [32]byte
		copy(k[:], rec[:32])
		s := tenantSet{n: rec[32]}
		if int(s.n) > len(s.ids) {
			return tenantSets{}, h, bad("set size")
		}
		for i := range s.ids {
			s.ids[i] = binary.LittleEndian.Uint32(rec[33+4*i:])
			if i < int(s.n) && !valid(s.ids[i]) {
				return tenantSets{}, h, bad("tenant number")
			}
		}
		sets.byHash[k] = s
	}
	// The sets share backing arrays, a few allocations instead of one a
	// subject; each is capped, so adding a tenant to one copies it.
	var backing []uint32
	var word [4]byte
	var name []byte
	for i := range h.Other {
		if i%(1<<16) == 0 && ctx.Err() != nil {
			return tenantSets{}, h, ctx.Err()
		}
		n, err := binary.ReadUvarint(r)
		if err != nil || n > 1<<16 {
			return tenantSets{}, h, bad("subject")
		}
		if cap(name) < int(n) {
			name = make([]byte, n)
		}
		subject := name[:n]
		if _, err := io.ReadFull(r, subject); err != nil {
			return tenantSets{}, h, bad("short")
		}
		m, err := binary.ReadUvarint(r)
		if err != nil || m > uint64(len(h.Tenants)) {
			return tenantSets{}, h, bad("set size")
		}
		if cap(backing)-len(backing) < int(m) {
			backing = make([]uint32, 0, max(1<<16, int(m)))
		}
		start := len(backing)
		for range m {
			if _, err := io.ReadFull(r, word[:]); err != nil {
				return tenantSets{}, h, bad("short")
			}
			id := binary.LittleEndian.Uint32(word[:])
			if !valid(id) {
				return tenantSets{}, h, bad("tenant number")
			}
			backing = append(backing, id)
		}
		sets.other[string(subject)] = backing[start:len(backing):len(backing)]
	}
	if _, err := r.ReadByte(); err != io.EOF {
		return tenantSets{}, h, bad("trailing bytes")
	}
	if sum.Sum32() != want {
		return tenantSets{}, h, bad("checksum")
	}
	return sets, h, nil
}

// saveDue says whether to save now: after a long catch-up once the head
// is reached, and every saveEvery while events come.
func (x *Index) saveDue(caughtUp bool) bool {
	behind := x.seen.Load() - x.savedAt
	return x.dir != "" && behind > 0 && ((caughtUp && behind >= saveAfter) || time.Since(x.savedWhen) >= max(saveEvery, 20*x.cost))
}

// exitSave says whether to save on the way out: when it is cheap, or the
// next start would otherwise replay many events.
func (x *Index) exitSave() bool {
	behind := x.seen.Load() - x.savedAt
	return x.dir != "" && behind > 0 && (x.cost < time.Second || behind >= saveAfter)
}

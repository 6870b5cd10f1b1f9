package projections

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/gob"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/bits"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/heed/heed/ledger/atomicfile"
)

// ErrNoSnapshot means the directory holds no usable snapshot for these
// rules; the projection starts from position 1.
var ErrNoSnapshot = errors.New("projections: no snapshot")

// ErrSnapshot means a snapshot file exists but is damaged.
var ErrSnapshot = errors.New("projections: damaged snapshot")

const (
	snapshotFile = "projection.snap"
	// snapshotMagic names the format: a header, the record and slot arrays
	// at page-aligned offsets (so a restore maps them instead of reading
	// them), the small remainder, and a trailer of checksums.
	snapshotMagic = "heed-projection-2\n"
	trailerMagic  = "heed-end"
	// byteOrderMark is written in native order; records are raw memory, so
	// a snapshot is only read back on a machine of the same byte order.
	byteOrderMark = uint32(0x01020304)
	// align is the offset alignment of the arrays: a memory page.
	align = 4096
	// trailerSize is the trailer's length: the remainder's length, its
	// checksum, the arrays' checksum and trailerMagic.
	trailerSize = 8 + 4 + 4 + len(trailerMagic)
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// semantics names what the state means beyond its layout; it changes when
// the same log folds into different state (contacts counted when recorded,
// lines judged as events arrive), so an older snapshot is rebuilt, not read.
const semantics = "recorded-time counts, lines judged in order"

// layout names every field of rec and slot with its offset and type, so a build
// that reorders or retypes them never maps an old snapshot's bytes.
var layout = func() string {
	var b strings.Builder
	b.WriteString(semantics + "|")
	for _, t := range []reflect.Type{reflect.TypeFor[rec](), reflect.TypeFor[slot]()} {
		for i := range t.NumField() {
			f := t.Field(i)
			fmt.Fprintf(&b, "%s@%d:%s;", f.Name, f.Offset, f.Type)
		}
		fmt.Fprintf(&b, "%d|", t.Size())
	}
	sum := sha256.Sum256([]byte(b.String()))
	return hex.EncodeToString(sum[:8])
}()

// header describes a snapshot.
type header struct {
	Layout   string
	Position uint64
	// PositionID is the id of the event at Position: a snapshot is used
	// only over a log that holds that event there.
	PositionID   string
	Recorded     time.Time
	RulesVersion string
	RecSize      int
	Recs         int
	Keys         int
	Slots        int
}

// rest is the small, pointer-holding part of the state.
type rest struct {
	More    map[uint32][]contract
	Exps    map[uint32][combos]uint32
	Globals map[uint32]global
	Compl   map[uint32]complaint
	Erased  map[uint32]uint32
	Spill   map[uint32][]spilled
	Tenants intern
	Lists   intern
	Regions intern
	Lines   map[string]map[string]*line
	Skipped uint64
}

const slotSize = int64(unsafe.Sizeof(slot{}))

func roundUp(n int64) int64 { return (n + align - 1) &^ (align - 1) }

// offsets returns where the records, the slots and the remainder start in
// a snapshot whose encoded header is hlen bytes long.
func offsets(hlen int, h *header) (recsAt, slotsAt, restAt int64) {
	recsAt = roundUp(int64(len(snapshotMagic) + 4 + 4 + hlen + 4))
	slotsAt = roundUp(recsAt + int64(h.Recs)*int64(h.RecSize))
	return recsAt, slotsAt, slotsAt + int64(h.Slots)*slotSize
}

// countWriter counts what passes to w.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// writeTo writes the state's snapshot to w and returns the position it
// holds. l is the lock appliers are kept out by: the state is frozen under
// it (see freeze), then read a chunk at a time under it, so that appliers
// wait for a chunk's copy, not for the whole file to be written.
func (s *State) writeTo(w io.Writer, l sync.Locker) (uint64, error) {
	l.Lock()
	h := header{Layout: layout, Position: s.pos, PositionID: s.posID, Recorded: s.recorded, RulesVersion: s.cfg.RulesVersion(),
		RecSize: int(recSize), Recs: s.recs.n, Keys: s.subjects.len(), Slots: len(s.subjects.slots)}
	// The remainder is small and changed in place (its slices and lines),
	// so it is encoded whole at the freeze.
	var rb bytes.Buffer
	err := gob.NewEncoder(&rb).Encode(rest{More: s.more, Exps: s.exps, Globals: s.globals, Compl: s.complaints, Erased: s.erased, Spill: s.spill, Tenants: s.tenants, Lists: s.lists, Regions: s.regions, Lines: s.lines})
	f := newFreeze(s)
	if err == nil {
		s.frozen, s.subjects.frozen = f, f
	}
	l.Unlock()
	if err != nil {
		return 0, err
	}
	defer func() {
		l.Lock()
		s.frozen, s.subjects.frozen = nil, nil
		l.Unlock()
	}()

	cw := &countWriter{w: w}
	bw := bufio.NewWriterSize(cw, 1<<20)
	var hb bytes.Buffer
	if err := gob.NewEncoder(&hb).Encode(h); err != nil {
		return 0, err
	}
	recsAt, slotsAt, restAt := offsets(hb.Len(), &h)
	var head bytes.Buffer
	head.WriteString(snapshotMagic)
	_ = binary.Write(&head, binary.NativeEndian, byteOrderMark)
	_ = binary.Write(&head, binary.NativeEndian, uint32(hb.Len()))
	head.Write(hb.Bytes())
	_ = binary.Write(&head, binary.NativeEndian, crc32.Checksum(head.Bytes(), castagnoli))
	head.Write(make([]byte, recsAt-int64(head.Len())))
	if _, err := bw.Write(head.Bytes()); err != nil {
		return 0, err
	}
	// The arrays' checksum covers every byte from recsAt to restAt.
	sum := crc32.New(castagnoli)
	aw := io.MultiWriter(bw, sum)
	buf := make([]byte, 0, chunkRecs*int(recSize))
	for from := 0; from < f.recs; from += chunkRecs {
		l.Lock()
		buf = s.frozenRecs(f, from, min(from+chunkRecs, f.recs), buf)
		l.Unlock()
		if _, err := aw.Write(buf); err != nil {
			return 0, err
		}
	}
	if _, err := aw.Write(make([]byte, slotsAt-recsAt-int64(f.recs*h.RecSize))); err != nil {
		return 0, err
	}
	for from := 0; from < len(f.slots); from += chunkSlots {
		l.Lock()
		buf = frozenSlots(f, from, min(from+chunkSlots, len(f.slots)), buf)
		l.Unlock()
		if _, err := aw.Write(buf); err != nil {
			return 0, err
		}
	}
	if _, err := bw.Write(rb.Bytes()); err != nil {
		return 0, err
	}
	var tr bytes.Buffer
	_ = binary.Write(&tr, binary.NativeEndian, uint64(rb.Len()))
	_ = binary.Write(&tr, binary.NativeEndian, crc32.Checksum(rb.Bytes(), castagnoli))
	_ = binary.Write(&tr, binary.NativeEndian, sum.Sum32())
	tr.WriteString(trailerMagic)
	if _, err := bw.Write(tr.Bytes()); err != nil {
		return 0, err
	}
	if err := bw.Flush(); err != nil {
		return 0, err
	}
	if want := restAt + int64(rb.Len()+trailerSize); cw.n != want {
		return 0, fmt.Errorf("projections: snapshot of %d bytes, want %d", cw.n, want)
	}
	return h.Position, nil
}

// chunkRecs and chunkSlots are how many records and slots a snapshot copies
// per hold of the lock: about 600 KB and 200 KB, a copy of tens of
// microseconds.
const (
	chunkRecs  = pageSize
	chunkSlots = 8192
)

// Save writes the state to dir, replacing the previous snapshot
// atomically.
func (s *State) Save(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(dir, snapshotFile), 0o600, func(w io.Writer) error {
		_, err := s.writeTo(w, noLock{})
		return err
	})
}

// Restore loads the snapshot in dir taken under cfg, checking every byte of
// it. It returns ErrNoSnapshot when there is none or it was taken under
// other rules, and ErrSnapshot when it is damaged.
func Restore(dir string, cfg *Config) (*State, error) {
	st, sf, err := restore(dir, cfg)
	if err != nil {
		return nil, err
	}
	defer sf.close()
	if err := sf.verify(context.Background()); err != nil {
		return nil, err
	}
	return st, nil
}

// snapFile is a restored snapshot whose arrays are mapped, not yet read:
// verify checks them against the trailer's checksum.
type snapFile struct {
	f            *os.File
	path         string
	from, to     int64 // the arrays' bytes
	sum          uint32
	position     uint64
	ofRecs, ofSl int // records and slots, for the log line
}

func (sf *snapFile) close() {
	if sf != nil && sf.f != nil {
		sf.f.Close()
		sf.f = nil
	}
}

// verify reads the arrays from the file (not from the mapping, which the
// projection may have written to since) and checks their checksum.
func (sf *snapFile) verify(ctx context.Context) error {
	sum := crc32.New(castagnoli)
	buf := make([]byte, 4<<20)
	for off := sf.from; off < sf.to; {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := min(int64(len(buf)), sf.to-off)
		if _, err := sf.f.ReadAt(buf[:n], off); err != nil {
			return fmt.Errorf("%w: %v", ErrSnapshot, err)
		}
		sum.Write(buf[:n])
		off += n
	}
	if sum.Sum32() != sf.sum {
		return fmt.Errorf("%w: the records' checksum does not match", ErrSnapshot)
	}
	return nil
}

// restore maps the snapshot in dir: the header and the remainder are read
// and checked, the records and slots are mapped copy-on-write (see
// mapFile), so a restore reads a few pages whatever the state's size and
// the rest fault in as decisions touch them. The returned snapFile checks
// the arrays later.
func restore(dir string, cfg *Config) (*State, *snapFile, error) {
	path := filepath.Join(dir, snapshotFile)
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, ErrNoSnapshot
	}
	if err != nil {
		return nil, nil, err
	}
	st, sf, err := readFrom(f, cfg)
	if err != nil {
		f.Close()
		if !errors.Is(err, ErrNoSnapshot) && !errors.Is(err, ErrSnapshot) {
			err = fmt.Errorf("%w: %v", ErrSnapshot, err)
		}
		return nil, nil, err
	}
	sf.path = path
	return st, sf, nil
}

func readFrom(f *os.File, cfg *Config) (*State, *snapFile, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	size := fi.Size()
	pre := make([]byte, len(snapshotMagic)+8)
	if _, err := f.ReadAt(pre, 0); err != nil || string(pre[:len(snapshotMagic)]) != snapshotMagic {
		if err == nil && strings.HasPrefix(string(pre), "heed-projection-") {
			// Another format: not damaged, only foreign; rebuilt from the log.
			return nil, nil, fmt.Errorf("%w: written in another format", ErrNoSnapshot)
		}
		return nil, nil, errors.New("not a projection snapshot")
	}
	// A snapshot this build cannot map is not damaged, only foreign: the
	// state is rebuilt from the log.
	switch bom := binary.NativeEndian.Uint32(pre[len(snapshotMagic):]); bom {
	case byteOrderMark:
	case bits.ReverseBytes32(byteOrderMark):
		return nil, nil, fmt.Errorf("%w: written on a machine of another byte order", ErrNoSnapshot)
	default:
		return nil, nil, errors.New("bad byte order mark")
	}
	hlen := int64(binary.NativeEndian.Uint32(pre[len(snapshotMagic)+4:]))
	if hlen > 1<<20 || int64(len(pre))+hlen+4 > size {
		return nil, nil, errors.New("impossible header length")
	}
	head := make([]byte, int64(len(pre))+hlen+4)
	if _, err := f.ReadAt(head, 0); err != nil {
		return nil, nil, err
	}
	body := head[:len(head)-4]
	if crc32.Checksum(body, castagnoli) != binary.NativeEndian.Uint32(head[len(head)-4:]) {
		return nil, nil, errors.New("the header's checksum does not match")
	}
	var h header
	if err := gob.NewDecoder(bytes.NewReader(body[len(pre):])).Decode(&h); err != nil {
		return nil, nil, err
	}
	if h.RulesVersion != cfg.RulesVersion() {
		return nil, nil, fmt.Errorf("%w: snapshot taken under rules %s", ErrNoSnapshot, h.RulesVersion)
	}
	if h.Layout != layout || h.RecSize != int(unsafe.Sizeof(rec{})) {
		return nil, nil, fmt.Errorf("%w: written by a build with another record layout", ErrNoSnapshot)
	}
	if h.Recs < 0 || h.Keys < 0 || h.Keys > h.Recs || h.Slots < 0 || h.Slots&(h.Slots-1) != 0 || h.Keys > h.Slots ||
		int64(h.Recs) > size || int64(h.Slots) > size {
		return nil, nil, errors.New("impossible record counts")
	}
	recsAt, slotsAt, restAt := offsets(int(hlen), &h)
	tr := make([]byte, trailerSize)
	if size < restAt+int64(trailerSize) {
		return nil, nil, errors.New("the file is shorter than its header says")
	}
	if _, err := f.ReadAt(tr, size-int64(trailerSize)); err != nil {
		return nil, nil, err
	}
	restLen := int64(binary.NativeEndian.Uint64(tr))
	if string(tr[16:]) != trailerMagic || restAt+restLen+int64(trailerSize) != size {
		return nil, nil, errors.New("the trailer does not match the header")
	}
	rb := make([]byte, restLen)
	if _, err := f.ReadAt(rb, restAt); err != nil {
		return nil, nil, err
	}
	if crc32.Checksum(rb, castagnoli) != binary.NativeEndian.Uint32(tr[8:]) {
		return nil, nil, errors.New("the remainder's checksum does not match")
	}
	var x rest
	if err := gob.NewDecoder(bytes.NewReader(rb)).Decode(&x); err != nil {
		return nil, nil, err
	}

	s := NewState(cfg)
	s.pos, s.posID, s.recorded = h.Position, h.PositionID, h.Recorded
	var arrays []byte
	if restAt > recsAt {
		if arrays, err = mapFile(f, recsAt, restAt-recsAt); err != nil {
			return nil, nil, err
		}
	}
	for left, off := h.Recs, 0; left > 0; {
		n := min(left, pageSize)
		p := unsafe.Slice((*rec)(unsafe.Pointer(&arrays[off])), n)
		if n < pageSize {
			// The last page grows: it moves to the heap, at its full size.
			p = append(make([]rec, 0, pageSize), p...)
		}
		s.recs.p = append(s.recs.p, p)
		s.recs.n += n
		left -= n
		off += n * h.RecSize
	}
	s.subjects = index{n: h.Keys}
	if h.Slots > 0 {
		s.subjects.slots = unsafe.Slice((*slot)(unsafe.Pointer(&arrays[slotsAt-recsAt])), h.Slots)
	}
	s.tenants, s.lists, s.regions = x.Tenants, x.Lists, x.Regions
	if x.More != nil {
		s.more = x.More
	}
	if x.Exps != nil {
		s.exps = x.Exps
	}
	if x.Spill != nil {
		s.spill = x.Spill
	}
	if x.Compl != nil {
		s.complaints = x.Compl
	}
	if x.Globals != nil {
		s.globals = x.Globals
	}
	if x.Erased != nil {
		s.erased = x.Erased
	}
	if x.Lines != nil {
		s.lines = x.Lines
	}
	var bad bool
	s.eachLine(func(l *line) {
		bad = bad || len(l.Buckets) != cfg.LineSuspension.WindowDays
		if l.Regions == nil {
			l.Regions = map[uint16]burst{}
		}
	})
	if bad {
		return nil, nil, errors.New("line window differs from the rules")
	}
	return s, &snapFile{f: f, from: recsAt, to: restAt, sum: binary.NativeEndian.Uint32(tr[12:]), position: h.Position,
		ofRecs: h.Recs, ofSl: h.Slots}, nil
}

// Snapshot saves the runner's state to its directory, unless the last
// snapshot is at the same position or the state rests on a snapshot not
// yet checked. Appliers go on while the state is written (see freeze):
// they wait only for the copy of one chunk at a time.
func (r *Runner) Snapshot() error {
	// A projection stopped by an event it could not read may hold part of
	// that event: the last snapshot before it stays.
	if r.opt.Dir == "" || r.Err() != nil || r.unverified.Load() != nil {
		return nil
	}
	r.snapMu.Lock()
	defer r.snapMu.Unlock()
	if err := os.MkdirAll(r.opt.Dir, 0o700); err != nil {
		return err
	}
	start := time.Now()
	skipped := false
	var pos uint64
	err := atomicfile.Write(filepath.Join(r.opt.Dir, snapshotFile), 0o600, func(w io.Writer) error {
		r.mu.RLock()
		st := r.st
		skipped = st.pos == r.savedAt.Load() && st.pos > 0
		r.mu.RUnlock()
		if skipped {
			return errSkip
		}
		var err error
		pos, err = st.writeTo(w, r.mu.RLocker())
		return err
	})
	if skipped {
		return nil
	}
	if err == nil {
		r.savedAt.Store(pos)
		r.saved.Store(r.opt.Now().UnixNano())
		r.cost.Store(int64(time.Since(start)))
	}
	return err
}

// errSkip abandons a snapshot that would repeat the last one.
var errSkip = errors.New("projections: snapshot unchanged")

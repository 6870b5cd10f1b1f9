package projections

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"encoding/gob"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"os"
	"path/filepath"
	"reflect"
	"strings"
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
	snapshotFile  = "projection.snap"
	snapshotMagic = "heed-projection-1\n"
	// byteOrderMark is written in native order; records are raw memory, so
	// a snapshot is only read back on a machine of the same byte order.
	byteOrderMark = uint32(0x01020304)
)

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

// header describes a snapshot; records and keys follow as raw arrays.
type header struct {
	Layout       string
	Position     uint64
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

func (s *State) writeTo(w io.Writer) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	if _, err := bw.WriteString(snapshotMagic); err != nil {
		return err
	}
	if err := binary.Write(bw, binary.NativeEndian, byteOrderMark); err != nil {
		return err
	}
	h := header{Layout: layout, Position: s.pos, Recorded: s.recorded, RulesVersion: s.cfg.RulesVersion(),
		RecSize: int(unsafe.Sizeof(rec{})), Recs: s.recs.n, Keys: s.subjects.len(), Slots: len(s.subjects.slots)}
	if err := gob.NewEncoder(bw).Encode(h); err != nil {
		return err
	}
	for _, p := range s.recs.p {
		if len(p) == 0 {
			continue
		}
		raw := unsafe.Slice((*byte)(unsafe.Pointer(&p[0])), len(p)*h.RecSize)
		if _, err := bw.Write(raw); err != nil {
			return err
		}
	}
	if len(s.subjects.slots) > 0 {
		raw := unsafe.Slice((*byte)(unsafe.Pointer(&s.subjects.slots[0])), len(s.subjects.slots)*int(unsafe.Sizeof(slot{})))
		if _, err := bw.Write(raw); err != nil {
			return err
		}
	}
	if err := gob.NewEncoder(bw).Encode(rest{More: s.more, Exps: s.exps, Globals: s.globals, Compl: s.complaints, Erased: s.erased, Spill: s.spill, Tenants: s.tenants, Lists: s.lists, Regions: s.regions, Lines: s.lines}); err != nil {
		return err
	}
	return bw.Flush()
}

// Save writes the state to dir, replacing the previous snapshot
// atomically.
func (s *State) Save(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(dir, snapshotFile), 0o600, s.writeTo)
}

// Restore loads the snapshot in dir taken under cfg. It returns
// ErrNoSnapshot when there is none or it was taken under other rules, and
// ErrSnapshot when it is damaged.
func Restore(dir string, cfg *Config) (*State, error) {
	f, err := os.Open(filepath.Join(dir, snapshotFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNoSnapshot
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := readFrom(bufio.NewReaderSize(f, 1<<20), cfg)
	if err != nil && !errors.Is(err, ErrNoSnapshot) {
		return nil, fmt.Errorf("%w: %v", ErrSnapshot, err)
	}
	return st, err
}

func readFrom(r *bufio.Reader, cfg *Config) (*State, error) {
	magic := make([]byte, len(snapshotMagic))
	if _, err := io.ReadFull(r, magic); err != nil || string(magic) != snapshotMagic {
		return nil, errors.New("not a projection snapshot")
	}
	// A snapshot this build cannot map is not damaged, only foreign: the
	// state is rebuilt from the log.
	var bom uint32
	if err := binary.Read(r, binary.NativeEndian, &bom); err != nil {
		return nil, err
	}
	switch bom {
	case byteOrderMark:
	case bits.ReverseBytes32(byteOrderMark):
		return nil, fmt.Errorf("%w: written on a machine of another byte order", ErrNoSnapshot)
	default:
		return nil, errors.New("bad byte order mark")
	}
	var h header
	if err := gob.NewDecoder(r).Decode(&h); err != nil {
		return nil, err
	}
	if h.RulesVersion != cfg.RulesVersion() {
		return nil, fmt.Errorf("%w: snapshot taken under rules %s", ErrNoSnapshot, h.RulesVersion)
	}
	if h.Layout != layout || h.RecSize != int(unsafe.Sizeof(rec{})) {
		return nil, fmt.Errorf("%w: written by a build with another record layout", ErrNoSnapshot)
	}
	if h.Recs < 0 || h.Keys < 0 || h.Keys > h.Recs {
		return nil, errors.New("impossible record counts")
	}
	s := NewState(cfg)
	s.pos, s.recorded = h.Position, h.Recorded
	for left := h.Recs; left > 0; {
		n := min(left, pageSize)
		p := make([]rec, n, pageSize)
		raw := unsafe.Slice((*byte)(unsafe.Pointer(&p[0])), n*h.RecSize)
		if _, err := io.ReadFull(r, raw); err != nil {
			return nil, err
		}
		s.recs.p = append(s.recs.p, p)
		s.recs.n += n
		left -= n
	}
	if h.Slots&(h.Slots-1) != 0 || h.Keys > h.Slots {
		return nil, errors.New("impossible index size")
	}
	s.subjects = index{slots: make([]slot, h.Slots), n: h.Keys}
	if h.Slots > 0 {
		raw := unsafe.Slice((*byte)(unsafe.Pointer(&s.subjects.slots[0])), h.Slots*int(unsafe.Sizeof(slot{})))
		if _, err := io.ReadFull(r, raw); err != nil {
			return nil, err
		}
	}
	for _, sl := range s.subjects.slots {
		if sl.v > uint32(h.Recs) {
			return nil, errors.New("record index out of range")
		}
	}
	var x rest
	if err := gob.NewDecoder(r).Decode(&x); err != nil {
		return nil, err
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
		return nil, errors.New("line window differs from the rules")
	}
	return s, nil
}

// Snapshot saves the runner's state to its directory. Appliers wait while
// the state is written to the file; the sync and rename happen after.
func (r *Runner) Snapshot() error {
	// A projection stopped by an event it could not read may hold part of
	// that event: the last snapshot before it stays.
	if r.opt.Dir == "" || r.Err() != nil {
		return nil
	}
	if err := os.MkdirAll(r.opt.Dir, 0o700); err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(r.opt.Dir, snapshotFile), 0o600, func(w io.Writer) error {
		r.mu.RLock()
		err := r.st.writeTo(w)
		r.mu.RUnlock()
		if err == nil {
			r.saved.Store(r.opt.Now().UnixNano())
		}
		return err
	})
}

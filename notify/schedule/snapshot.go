package schedule

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"

	"github.com/heed/heed/ledger/atomicfile"
)

// The snapshot is the index as of a log position: a header line (JSON:
// the position and its event's id, the plan versions), the dirty
// streams, the index's arrays in little-endian order, and a CRC-32C of
// all that. It is a cache of a function of the log: one that does not
// match the log (missing, damaged, from another log, ahead of it) is set
// aside and the index is rebuilt from position 1.
// Version 2 keeps a lead in each slot's meta (see leadMask); a version 1
// snapshot is read with none.
const (
	snapshotMagic   = "heed schedule index v2\n"
	snapshotMagicV1 = "heed schedule index v1\n"
)

const snapshotFile = "schedule.snap"

type snapshotHeader struct {
	Position uint64         `json:"position"`
	ID       string         `json:"id"`
	Plans    []*planVersion `json:"plans"`
	Slots    int            `json:"slots"`
	Timers   int            `json:"timers"`
	Dirty    int            `json:"dirty"`
}

// Snapshot saves the index atomically, so that a restart reads it back
// instead of the whole log.
func (s *Scheduler) Snapshot() error {
	if s.cfg.Dir == "" {
		return nil
	}
	if err := os.MkdirAll(s.cfg.Dir, 0o700); err != nil {
		return err
	}
	err := atomicfile.WriteSummed(filepath.Join(s.cfg.Dir, snapshotFile), 0o600, func(w *bufio.Writer) error {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.write(w)
	})
	if err != nil {
		return fmt.Errorf("schedule: snapshot: %w", err)
	}
	return nil
}

// write writes the snapshot's body; s.mu is held.
func (s *Scheduler) write(w *bufio.Writer) error {
	hdr := snapshotHeader{Position: s.pos, ID: s.posID, Plans: s.plans, Slots: len(s.idx.keys), Timers: s.idx.n, Dirty: len(s.dirty)}
	b, err := json.Marshal(hdr)
	if err != nil {
		return err
	}
	w.WriteString(snapshotMagic)
	w.Write(b)
	w.WriteByte('\n')
	var buf [8]byte
	u64 := func(v uint64) {
		binary.LittleEndian.PutUint64(buf[:], v)
		w.Write(buf[:8])
	}
	u32 := func(v uint32) {
		binary.LittleEndian.PutUint32(buf[:], v)
		w.Write(buf[:4])
	}
	for k, p := range s.dirty {
		u64(k)
		u64(p)
	}
	for _, v := range s.idx.keys {
		u64(v)
	}
	for _, v := range s.idx.pos {
		u64(v)
	}
	for _, v := range s.idx.due {
		u32(v)
	}
	for _, v := range s.idx.meta {
		u32(v &^ queued)
	}
	return nil
}

var errSnapshot = errors.New("snapshot does not match")

// load reads the snapshot in cfg.Dir, if there is one that matches the
// log; any other is set aside (renamed .bad) and the index starts empty.
func (s *Scheduler) load(ctx context.Context) error {
	path := filepath.Join(s.cfg.Dir, snapshotFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("schedule: %w", err)
	}
	err = s.decode(ctx, b)
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	s.cfg.Log.Warn("schedule index snapshot set aside; rebuilding from the log", "err", err)
	*s = Scheduler{cfg: s.cfg, idx: newIndex(0), newest: map[string]*planVersion{}, dirty: map[uint64]uint64{},
		busy: map[uint64]bool{}, retry: map[uint64]uint32{}, held: map[uint64]int{}, ready: s.ready, wake: s.wake, derived: s.derived, pace: s.pace}
	return os.Rename(path, path+".bad")
}

func (s *Scheduler) decode(ctx context.Context, b []byte) error {
	v1 := bytes.HasPrefix(b, []byte(snapshotMagicV1))
	if len(b) < len(snapshotMagic)+4 || !bytes.HasPrefix(b, []byte(snapshotMagic)) && !v1 {
		return fmt.Errorf("%w: not a snapshot", errSnapshot)
	}
	body, sum := b[:len(b)-4], binary.LittleEndian.Uint32(b[len(b)-4:])
	if crc32.Checksum(body, atomicfile.Castagnoli) != sum {
		return fmt.Errorf("%w: checksum", errSnapshot)
	}
	body = body[len(snapshotMagic):]
	nl := bytes.IndexByte(body, '\n')
	if nl < 0 {
		return fmt.Errorf("%w: header", errSnapshot)
	}
	var hdr snapshotHeader
	if err := json.Unmarshal(body[:nl], &hdr); err != nil {
		return fmt.Errorf("%w: header: %v", errSnapshot, err)
	}
	body = body[nl+1:]
	if want := hdr.Dirty*16 + hdr.Slots*24; len(body) != want || hdr.Slots < 1 || hdr.Timers >= hdr.Slots {
		return fmt.Errorf("%w: %d bytes of tables, want %d", errSnapshot, len(body), want)
	}
	// The log must hold the event the snapshot ends at.
	if hdr.Position > 0 {
		evs, err := s.cfg.Store.ReadAll(ctx, hdr.Position, 1)
		if err != nil {
			return err
		}
		if len(evs) == 0 || evs[0].ID != hdr.ID {
			return fmt.Errorf("%w: the log has no event %s at %d", errSnapshot, hdr.ID, hdr.Position)
		}
	}
	le := binary.LittleEndian
	for range hdr.Dirty {
		k, p := le.Uint64(body), le.Uint64(body[8:])
		s.dirty[k] = p
		s.queue = append(s.queue, k)
		body = body[16:]
	}
	x := &index{n: hdr.Timers}
	x.alloc(hdr.Slots)
	for i := range x.keys {
		x.keys[i] = le.Uint64(body[8*i:])
	}
	body = body[8*hdr.Slots:]
	for i := range x.pos {
		x.pos[i] = le.Uint64(body[8*i:])
	}
	body = body[8*hdr.Slots:]
	for i := range x.due {
		x.due[i] = le.Uint32(body[4*i:])
	}
	body = body[4*hdr.Slots:]
	for i := range x.meta {
		m := le.Uint32(body[4*i:])
		if v1 {
			// Version 1: the plan index in all 31 bits, no lead.
			m = min(m&(queued-1), noPlan)
		}
		x.meta[i] = m
	}
	s.idx, s.pos, s.posID = x, hdr.Position, hdr.ID
	for _, pv := range hdr.Plans {
		s.addPlan(pv)
	}
	return nil
}

package schedule

import (
	"math"
	"slices"
	"time"

	"github.com/heed/heed/ledger"
)

// epoch is the origin of the index's compact times: seconds since it fit
// a uint32 until 2156.
var epoch = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC).Unix()

// sec returns t as seconds since epoch, clamped to what a uint32 holds.
func sec(t time.Time) uint32 {
	s := t.Unix() - epoch
	if t.Nanosecond() > 0 {
		s++ // never before t
	}
	return uint32(min(max(s, 0), math.MaxUint32))
}

// tick is the index's finest time: 1/128 s.
const tick = time.Second / 128

// ticks returns t in ticks since epoch, rounded down: every timer whose
// due time in ticks (dueTicks) is at or before it is due at t. The
// dispatcher hands out timers by it; by sec(now), which rounds up, it
// would hand out a timer due later in the current second early, and the
// worker would read it, find it not yet due, and release it to be read
// again at the next poll, until it was.
func ticks(t time.Time) uint64 {
	s := t.Unix() - epoch
	if s < 0 {
		return 0
	}
	return uint64(min(s, math.MaxUint32))<<7 | uint64(t.Nanosecond()/int(tick))
}

// leadOf returns how many ticks before sec(t) the time t lies, rounded
// down, so that dueTicks never puts a timer before its due time t.
func leadOf(t time.Time) uint32 {
	if s := t.Unix() - epoch; s < 0 || s >= math.MaxUint32 || t.Nanosecond() == 0 {
		return 0
	}
	return uint32((time.Second - time.Duration(t.Nanosecond())) / tick)
}

// dueTicks is the due time in ticks of a timer whose index slot holds
// due (from sec) and meta (the lead from leadOf).
func dueTicks(due, meta uint32) uint64 {
	return uint64(due)<<7 - uint64(meta&leadMask>>leadShift)
}

// instantTicks is the inverse of ticks.
func instantTicks(x uint64) time.Time {
	return time.Unix(epoch+int64(x>>7), int64(x&127)*int64(tick)).UTC()
}

// reached returns the last whole second at or before t, as sec counts.
func reached(t time.Time) uint32 {
	return uint32(min(max(t.Unix()-epoch, 0), math.MaxUint32))
}

// instant is the inverse of sec.
func instant(s uint32) time.Time { return time.Unix(epoch+int64(s), 0).UTC() }

// window is a plan's daily send window in minutes after local midnight.
type window struct{ start, end int }

func windowOf(p *ledger.ReminderPlanDefined) (window, error) {
	s, e, err := p.Window.Minutes()
	return window{s, e}, err
}

// inside reports whether t is within the window in loc.
func (w window) inside(t time.Time, loc *time.Location) bool {
	lt := t.In(loc)
	m := lt.Hour()*60 + lt.Minute()
	return m >= w.start && m < w.end
}

// opening returns the first opening of the window in loc after t, or t
// itself when t is inside it. Local dates and times are read in loc, so
// a window opening at 10:00 opens at 10:00 on either side of a daylight
// saving change.
func (w window) opening(t time.Time, loc *time.Location) time.Time {
	if w.inside(t, loc) {
		return t
	}
	lt := t.In(loc)
	y, m, d := lt.Date()
	if lt.Hour()*60+lt.Minute() >= w.end {
		d++
	}
	o := time.Date(y, m, d, w.start/60, w.start%60, 0, 0, loc)
	if !o.After(t) {
		// Only when a daylight saving change made the wall clock repeat.
		o = time.Date(y, m, d+1, w.start/60, w.start%60, 0, 0, loc)
	}
	return o
}

// next returns the first moment at or after t that lies inside the window
// in every zone of the number (a number spanning several zones cannot be
// placed in one); if the zones share no such moment within a few tries,
// the first zone alone decides.
func (w window) next(t time.Time, locs []*time.Location) time.Time {
	for range 16 {
		moved := false
		for _, loc := range locs {
			if o := w.opening(t, loc); !o.Equal(t) {
				t, moved = o, true
			}
		}
		if !moved {
			return t
		}
	}
	return w.opening(t, locs[0])
}

// due returns when the reminder planned offset before expires falls due:
// for whole days, the window's opening that many local calendar days
// before the expiry's local date; for hours, that long before the expiry
// instant, moved into the window.
func (w window) due(expires time.Time, offset string, locs []*time.Location) (time.Time, error) {
	d, days, err := ledger.ParseOffset(offset)
	if err != nil {
		return time.Time{}, err
	}
	if !days {
		return w.next(expires.Add(-d), locs), nil
	}
	loc := locs[0]
	y, m, day := expires.In(loc).Date()
	n := int(d / (24 * time.Hour))
	return w.next(time.Date(y, m, day-n, w.start/60, w.start%60, 0, 0, loc), locs), nil
}

// offsets returns a plan's offsets, furthest from the expiry first.
func offsets(p *ledger.ReminderPlanDefined) []string {
	out := slices.Clone(p.Offsets)
	slices.SortFunc(out, func(a, b string) int {
		da, _, _ := ledger.ParseOffset(a)
		db, _, _ := ledger.ParseOffset(b)
		switch {
		case da > db:
			return -1
		case da < db:
			return 1
		}
		return 0
	})
	return out
}

// date writes t as the template's date type reads it, in loc.
func date(t time.Time, loc *time.Location) string { return t.In(loc).Format(time.DateOnly) }

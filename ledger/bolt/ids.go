package bolt

import (
	"encoding/binary"
	"math"

	"go.etcd.io/bbolt"
)

// The id index (event id → position) lives in the stream index, as one
// entry per event under a pseudo-stream of the id: revision 1 of idStream(id)
// holds the event's position. Ids derived from content (an imported
// contract, a timer, an INVITE transaction) are random, and inserting
// random keys into one bucket wrote one random page per event once the
// bucket outgrew memory; in the stream index they take the same path as
// stream entries: memory until a fold, then sorted runs with a filter, so
// an id that was never stored is answered from the filters alone.
//
// The ids bucket of files from before is read as the oldest part of the
// index and never written again.

// entriesPerEvent is how many index entries an event makes: its stream's
// and its id's.
const entriesPerEvent = 2

// idMark starts every pseudo-stream of an id; Append refuses a stream name
// that starts with it.
const idMark = "\x00"

// idStream is the pseudo-stream holding id's position.
func idStream(id string) string { return idMark + id }

// keyTopID (meta) holds an id no less than any stored: with ids no longer
// in a bucket whose last key tells, Open reads it from here.
var keyTopID = []byte("topid")

// position returns the position of the event with id as x and rec see it,
// 0 if none: the unfolded entries first, then the runs whose filter may hold
// it, then the ids bucket of a file from before.
func (x *index) position(rec *recent, ids *bbolt.Bucket, id string, head uint64) uint64 {
	name := idStream(id)
	if _, pos := rec.tail(name, head); len(pos) > 0 {
		return pos[0]
	}
	k, h := streamKey(name, 1), runHash(name)
	for i := len(x.runs) - 1; i >= 0; i-- {
		if f := x.filt[i]; f != nil && !f.has(h) {
			continue
		}
		if b := x.bucket(i); b != nil {
			if v := b.Get(k); len(v) == 8 {
				if p := binary.BigEndian.Uint64(v); p <= head {
					return p
				}
			}
		}
	}
	if ids != nil {
		if v := ids.Get([]byte(id)); len(v) == 8 {
			if p := binary.BigEndian.Uint64(v); p <= head {
				return p
			}
		}
	}
	return 0
}

// anyHead is the head of a reader that takes every entry it finds (one
// below the largest, which recent.tail would overflow).
const anyHead = math.MaxUint64 - 1

package bolt

import (
	"encoding/binary"
	"math"

	"go.etcd.io/bbolt"
)

// The id index (event id → position) has two parts. An id that sorts above
// every id stored before its batch, as time-ordered ids (NewID's) do, goes
// to the right edge of the ids bucket, a page written per page of ids. Any
// other id (one derived from content: an imported contract, a timer, an
// INVITE transaction) joins the stream index, as revision 1 of the
// pseudo-stream idStream(id) holding the event's position: memory until a
// fold, then sorted runs with a filter. Inserted into the bucket, such ids
// landed on random pages, one page written per event once the bucket
// outgrew memory. A lookup reads the unfolded entries, the runs whose
// filter may hold the id, then the bucket; Open rebuilds the unfolded
// entries of every id after the folded position, whichever part it went to.

// entriesPerEvent is how many stream index entries an event makes at most:
// its stream's and, for an id out of order, its id's.
const entriesPerEvent = 2

// idMark starts every pseudo-stream of an id; Append refuses a stream name
// that starts with it.
const idMark = "\x00"

// idStream is the pseudo-stream holding id's position.
func idStream(id string) string { return idMark + id }

// formatV3 marks a file whose ids out of order may be in the stream index:
// code from before would not find them there and would take such an id
// again, so it must not open the file.
var formatV3 = []byte("heed-ledger-3")

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

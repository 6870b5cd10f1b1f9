package smpp

import "testing"

func TestSequenceWraps(t *testing.T) {
	var l link
	l.seq.Store(0x7FFFFFFE)
	for _, want := range []uint32{0x7FFFFFFF, 1, 2} {
		if got := l.nextSeq(); got != want {
			t.Fatalf("nextSeq = %#x, want %#x", got, want)
		}
	}
}

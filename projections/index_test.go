package projections

import (
	"testing"

	"pgregory.net/rapid"
)

func TestIndexAgreesWithAMap(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		var x index
		want := map[key]uint32{}
		for i, s := range rapid.SliceOf(rapid.StringN(0, 70, -1)).Draw(t, "subjects") {
			k := subjectKey(s)
			if _, ok := want[k]; ok {
				continue
			}
			want[k] = uint32(i)
			x.put(k, uint32(i))
		}
		if x.len() != len(want) {
			t.Fatalf("len %d, want %d", x.len(), len(want))
		}
		for k, v := range want {
			if got, ok := x.get(k); !ok || got != v {
				t.Fatalf("get(%x) = %d, %v; want %d", k, got, ok, v)
			}
		}
		for _, s := range rapid.SliceOf(rapid.String()).Draw(t, "others") {
			k := subjectKey(s)
			if _, in := want[k]; in {
				continue
			}
			if _, ok := x.get(k); ok {
				t.Fatalf("found %x, never added", k)
			}
		}
	})
}

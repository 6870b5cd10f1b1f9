package main

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/heed/heed/notify"
)

// TestSIPNumberReadsAsSenderNumber holds the call gate's callee reading to
// the library's: the fast path may only skip work, never read a dialled
// number as another one, nor refuse one the library reads.
func TestSIPNumberReadsAsSenderNumber(t *testing.T) {
	raws := []string{
		"+8613912345678", "13912345678", "8613912345678", "008613912345678", "+8617012345678", "17012345678",
		"02112345678", "+862112345678", "01012345678", "1012345678", "+14155550123", "4155550123", "14155550123",
		"+442079460958", "02079460958", "+390612345678", "0612345678", "+8610000000000", "12345", "+86139123456789",
		"139-1234-5678", "+86 139 1234 5678", "1391234567", "+861391234567", "11912345678", "14012345678",
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 3000 {
		n := 8 + rng.IntN(8)
		d := fmt.Sprintf("%d", rng.Uint64())
		if len(d) > n {
			d = d[:n]
		}
		switch rng.IntN(4) {
		case 0:
			raws = append(raws, "+"+d)
		case 1:
			raws = append(raws, "1"+d[:min(len(d), 10)])
		case 2:
			raws = append(raws, "+861"+d[:min(len(d), 10)])
		default:
			raws = append(raws, d)
		}
	}
	for _, region := range []string{"CN", "US", "GB", "IT"} {
		for _, raw := range raws {
			got, gerr := sipNumber(raw, region)
			want, werr := notify.SenderNumber(raw, 0, 0, region)
			if got != want || (gerr == nil) != (werr == nil) {
				t.Errorf("%q in %s: read as %q (%v), the library reads %q (%v)", raw, region, got, gerr, want, werr)
			}
		}
	}
}

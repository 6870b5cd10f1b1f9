package projections

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/nyaruka/phonenumbers"
)

// TestCNRegionCacheMatchesLibrary: the cached region of a +86 number is
// the library's own answer, for numbers across every three-digit prefix of
// mobile and fixed-line ranges, looked up twice (the second from the
// cache) and in an order that puts numbers sharing a key apart.
func TestCNRegionCacheMatchesLibrary(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var nums []string
	for p := 100; p < 1000; p++ {
		for range 3 {
			nums = append(nums, fmt.Sprintf("+86%d%08d", p, rng.IntN(100_000_000)))
			nums = append(nums, fmt.Sprintf("+86%d%07d", p, rng.IntN(10_000_000)))
		}
	}
	for round := range 2 {
		rng.Shuffle(len(nums), func(i, j int) { nums[i], nums[j] = nums[j], nums[i] })
		for _, num := range nums {
			n, err := parse(num)
			if err != nil {
				continue
			}
			if got, want := region(n), libRegion(n); got != want {
				t.Fatalf("round %d: %s: cached %q, library %q", round, num, got, want)
			}
		}
	}
	if len(cnRegions.ids) < 1000 {
		t.Errorf("only %d keys cached", len(cnRegions.ids))
	}
}

// TestParseTakesOnlyE164: a number the projections are asked about is '+'
// and ASCII digits; looser spellings of the same number are refused rather
// than read as it.
func TestParseTakesOnlyE164(t *testing.T) {
	for _, ok := range []string{"+8613800138000", "+861012345678", "+442079460958", "+390612345678"} {
		if _, err := Region(ok); err != nil {
			t.Errorf("Region(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"++8613800138000", "+86 138 0013 8000", "+8613800138000 ext 99", "＋８６１３８００１３８０００",
		"8613800138000", "13800138000", " +8613800138000", "+86-138-0013-8000", "tel:+8613800138000", ""} {
		if _, err := Region(bad); err == nil {
			t.Errorf("Region(%q) read it", bad)
		}
	}
}

// TestZoneIsTheLibrarysOnlyZone: Zone is the one zone the numbering plan
// names for a number, as phonenumbers.GetTimezonesForNumber gives them,
// or nil when it names several or none.
func TestZoneIsTheLibrarysOnlyZone(t *testing.T) {
	for _, number := range []string{"+8613800138000", "+8617012345678", "+861012345678", "+85291234567", "+12015550123",
		"+14155550123", "+18005550123", "+79161234567", "+442071234567", "+61212345678", "+390612345678", "+80012345678", "+999123"} {
		var want string
		if n, err := phonenumbers.Parse(number, ""); err == nil {
			if z, err := phonenumbers.GetTimezonesForNumber(n); err == nil && len(z) == 1 && z[0] != phonenumbers.UNKNOWN_TIMEZONE {
				want = z[0]
			}
		}
		var got string
		if l := Zone(number); l != nil {
			got = l.String()
		}
		if got != want {
			t.Errorf("Zone(%s) = %q, the library says %q", number, got, want)
		}
	}
}

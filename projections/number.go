package projections

import (
	"errors"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/nyaruka/phonenumbers"
)

// ErrNumber means a query's number is not a usable E.164 number. The
// error never repeats the number.
var ErrNumber = errors.New("projections: number is not a valid E.164 number")

// parse reads an E.164 number: '+' and ASCII digits, nothing else (the API
// hands on only numbers it normalized; anything looser would let two
// spellings of one number be asked about). The common spelling is read
// directly, since phonenumbers.Parse is a large share of a decision's
// cost; the rest goes through phonenumbers.Parse.
func parse(number string) (*phonenumbers.PhoneNumber, error) {
	cc, nsn, ok, err := split(number)
	if err != nil {
		return nil, err
	}
	if ok {
		c32 := int32(cc)
		return &phonenumbers.PhoneNumber{CountryCode: &c32, NationalNumber: &nsn}, nil
	}
	n, err := phonenumbers.Parse(number, "")
	if err != nil {
		return nil, ErrNumber
	}
	return n, nil
}

// split reads number as '+', a country code the library knows and a
// national number without a leading zero: a spelling whose E.164 form is
// the number itself. It reports ok false, with no error, for a number it
// leaves to the library, and ErrNumber for one that is not '+' and digits.
func split(number string) (cc int, nsn uint64, ok bool, err error) {
	if len(number) < 3 || len(number) > 16 || number[0] != '+' {
		return 0, 0, false, ErrNumber
	}
	for i := 1; i < len(number); i++ {
		if number[i] < '0' || number[i] > '9' {
			return 0, 0, false, ErrNumber
		}
	}
	for n := 1; n <= 3 && n < len(number)-1; n++ {
		cc, _ = strconv.Atoi(number[1 : 1+n])
		if phonenumbers.GetRegionCodeForCountryCode(cc) == "ZZ" {
			continue
		}
		rest := number[1+n:]
		if rest[0] == '0' {
			break // Italian leading zeros: let the library handle them
		}
		nsn, _ = strconv.ParseUint(rest, 10, 64)
		return cc, nsn, true, nil
	}
	return 0, 0, false, nil
}

// numberZones returns the time zones of number, read only. A number split
// reads is its own E.164 form, so its prefix is looked up directly, as
// phonenumbers.GetTimezonesForNumber does after formatting a parsed number
// back to E.164, without the allocations of parsing and formatting it on
// every decision.
func numberZones(number string) ([]string, error) {
	_, _, ok, err := split(number)
	if err != nil {
		return nil, err
	}
	if !ok {
		n, err := parse(number)
		if err != nil {
			return nil, err
		}
		return zones(n), nil
	}
	z, err := phonenumbers.GetTimezonesForPrefix(number)
	if err != nil {
		return nil, nil
	}
	if slices.ContainsFunc(z, unknownZone) {
		return slices.DeleteFunc(slices.Clone(z), unknownZone), nil
	}
	return z, nil
}

func unknownZone(name string) bool { return name == "" || name == "Etc/Unknown" }

// Warm loads the tables Region and the quiet-hours rule read, which the
// phone-number library loads on first use under a global lock: a server
// calls it before taking traffic so that its requests do not all queue
// behind a load. Region falls back to the English table for
// numbers the Chinese one lacks, so both are loaded.
func Warm() {
	if n, err := parse("+8613800138000"); err == nil {
		libRegion(n)
		_, _ = phonenumbers.GetGeocodingForNumber(n, "en")
		zones(n)
	}
}

// Region is the area a number was first issued in, as the log records it
// in ContactMade.region: the Chinese geocoding name (北京市), else the
// country's region code. The API fills ContactMade.region with this same
// function so counts and queries agree.
func Region(number string) (string, error) {
	n, err := parse(number)
	if err != nil {
		return "", err
	}
	return region(n), nil
}

func region(n *phonenumbers.PhoneNumber) string {
	key, cacheable := cnRegionKey(n)
	if cacheable {
		if name, ok := cnRegions.get(key); ok {
			return name
		}
	}
	name := libRegion(n)
	if cacheable {
		cnRegions.put(key, name)
	}
	return name
}

func libRegion(n *phonenumbers.PhoneNumber) string {
	if g, err := phonenumbers.GetGeocodingForNumber(n, "zh"); err == nil && g != "" {
		return g
	}
	return phonenumbers.GetRegionCodeForNumber(n)
}

// cnRegions caches the regions of +86 numbers by the part of the number
// the library's answer depends on. The library takes a global mutex on
// every geocoding call and formats and parses the number again, so under
// load every decision and every first contact with a number queued on it.
// Its answer reads only the first ten characters of the E.164 form ("+"
// and nine digits), then falls back on the region of the country code,
// which for 86 is always CN; TestCNRegionCacheMatchesLibrary holds the two
// equal. No pointers: keys are numbers and names are interned.
var cnRegions = regionCache{ids: map[uint64]uint16{}, nameIDs: map[string]uint16{}}

type regionCache struct {
	mu      sync.RWMutex
	ids     map[uint64]uint16
	names   []string
	nameIDs map[string]uint16
}

// cnRegionKey returns the first nine digits of a +86 number, with their
// count, as a cache key; ok is false for any other number.
func cnRegionKey(n *phonenumbers.PhoneNumber) (uint64, bool) {
	if n.GetCountryCode() != 86 || n.GetItalianLeadingZero() || n.GetNationalNumber() == 0 {
		return 0, false
	}
	var buf [24]byte
	d := strconv.AppendUint(append(buf[:0], "86"...), n.GetNationalNumber(), 10)
	d = d[:min(len(d), 9)]
	key, _ := strconv.ParseUint(string(d), 10, 64)
	return key*16 + uint64(len(d)), true
}

func (c *regionCache) get(key uint64) (string, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	i, ok := c.ids[key]
	if !ok {
		return "", false
	}
	return c.names[i], true
}

func (c *regionCache) put(key uint64, name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	i, ok := c.nameIDs[name]
	if !ok {
		if len(c.names) > 0xffff {
			return
		}
		i = uint16(len(c.names))
		c.names = append(c.names, name)
		c.nameIDs[name] = i
	}
	if len(c.ids) >= 1<<20 {
		clear(c.ids) // bounded: about 20 MB
	}
	c.ids[key] = i
}

// Zones returns the time zones of an E.164 number, as the quiet-hours
// rule reads them; a number that gives none has the rules' fallback zone.
func (c *Config) Zones(number string) ([]*time.Location, error) {
	names, err := numberZones(number)
	if err != nil {
		return nil, err
	}
	var out []*time.Location
	for _, name := range names {
		if l := location(name); l != nil {
			out = append(out, l)
		}
	}
	if len(out) == 0 {
		out = append(out, c.fallback)
	}
	return out, nil
}

// Zone returns the time zone in which a date written for an E.164 number
// without a time of day is read (a contract's 2026-12-31 is that day where
// the customer lives): the zone its numbering plan names, or nil when it
// names none or several (a +1 toll-free number) or the number is not
// E.164, for the caller's fallback.
func Zone(number string) *time.Location {
	z, err := numberZones(number)
	if err != nil || len(z) != 1 {
		return nil
	}
	return location(z[0])
}

// zones returns the number's IANA time zones, none when unknown.
func zones(n *phonenumbers.PhoneNumber) []string {
	z, err := phonenumbers.GetTimezonesForNumber(n)
	if err != nil {
		return nil
	}
	return slices.DeleteFunc(slices.Clone(z), unknownZone)
}

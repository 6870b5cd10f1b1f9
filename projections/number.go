package projections

import (
	"errors"
	"strconv"

	"github.com/nyaruka/phonenumbers"
)

// ErrNumber means a query's number is not a usable E.164 number. The
// error never repeats the number.
var ErrNumber = errors.New("projections: number is not a valid E.164 number")

// parse reads an E.164 number. The common "+<digits>" spelling is read
// directly (phonenumbers.Parse costs ~6 µs, a third of a decision's
// budget); anything else goes through phonenumbers.Parse.
func parse(number string) (*phonenumbers.PhoneNumber, error) {
	if len(number) > 3 && len(number) <= 16 && number[0] == '+' {
		if _, err := strconv.ParseUint(number[1:], 10, 64); err == nil {
			for n := 1; n <= 3 && n < len(number)-1; n++ {
				cc, _ := strconv.Atoi(number[1 : 1+n])
				if phonenumbers.GetRegionCodeForCountryCode(cc) == "ZZ" {
					continue
				}
				rest := number[1+n:]
				if rest[0] == '0' {
					break // Italian leading zeros: let the library handle them
				}
				nsn, _ := strconv.ParseUint(rest, 10, 64)
				c32 := int32(cc)
				return &phonenumbers.PhoneNumber{CountryCode: &c32, NationalNumber: &nsn}, nil
			}
		}
	}
	n, err := phonenumbers.Parse(number, "")
	if err != nil {
		return nil, ErrNumber
	}
	return n, nil
}

// Warm loads the tables Region and the quiet-hours rule read, which the
// phone-number library loads on first use under a global lock (~50 ms):
// a server calls it before taking traffic so that its first requests do
// not all queue behind that load.
func Warm() {
	if n, err := parse("+8613800138000"); err == nil {
		region(n)
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
	if g, err := phonenumbers.GetGeocodingForNumber(n, "zh"); err == nil && g != "" {
		return g
	}
	return phonenumbers.GetRegionCodeForNumber(n)
}

// zones returns the number's IANA time zones, none when unknown.
func zones(n *phonenumbers.PhoneNumber) []string {
	z, err := phonenumbers.GetTimezonesForNumber(n)
	if err != nil {
		return nil
	}
	out := z[:0:0]
	for _, name := range z {
		if name != "" && name != "Etc/Unknown" {
			out = append(out, name)
		}
	}
	return out
}

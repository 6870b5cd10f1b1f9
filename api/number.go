package api

import (
	"encoding/json"
	"errors"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/danielgtaylor/huma/v2"
	"github.com/nyaruka/phonenumbers"

	"github.com/heed/heed/projections"
)

// errNumber is the problem for an unusable number. It never repeats the
// number: error bodies end up in logs.
func errNumber(location string) error {
	return huma.Error422UnprocessableEntity("invalid phone number",
		&huma.ErrorDetail{Location: location, Message: "not a valid phone number: give it in E.164 form ('+', the country code and the number, ASCII digits only) or as the national number of the default region in ASCII digits"})
}

var errInvalidNumber = errors.New("api: invalid phone number")

// Normalize returns the E.164 form of a number. It takes exactly two
// spellings, so that a subject has one:
//   - E.164 itself: '+', the country code and the national number, ASCII
//     digits only, as phonenumbers formats it (no trunk prefix after the
//     country code);
//   - the national number of region (none when region is empty) in ASCII
//     digits, with or without its trunk prefix: 13912345678 or 01012345678
//     for CN.
//
// Anything else is refused rather than read: spaces and other separators,
// extensions ("ext 99"), a doubled '+', international prefixes ("0086…")
// or a country code without '+' ("86139…"), full-width digits, letters.
func Normalize(raw, region string) (string, error) {
	if len(raw) < 3 || len(raw) > 17 {
		return "", errInvalidNumber
	}
	if e164, ok := chinaMobile(raw); ok {
		return e164, nil
	}
	if region == "CN" && len(raw) == 11 && raw[0] == '1' {
		// A national mobile number: CN's national prefixes (0, and the
		// carrier codes 11xx, 12xx and 179xx) are none that chinaMobile
		// takes, so the library would read it as exactly this.
		// TestChinaNationalMobileMatchesParse holds the two equal.
		if e164, ok := chinaMobile("+86" + raw); ok {
			return e164, nil
		}
	}
	digits := raw
	if raw[0] == '+' {
		digits = raw[1:]
	}
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return "", errInvalidNumber
		}
	}
	if raw[0] == '+' {
		n, err := phonenumbers.Parse(raw, "")
		if err != nil || !phonenumbers.IsValidNumber(n) {
			return "", errInvalidNumber
		}
		if e164 := phonenumbers.Format(n, phonenumbers.E164); e164 == raw {
			return e164, nil
		}
		return "", errInvalidNumber
	}
	if region == "" {
		return "", errInvalidNumber
	}
	n, err := phonenumbers.ParseAndKeepRawInput(raw, region)
	if err != nil || n.GetCountryCodeSource() != phonenumbers.PhoneNumber_FROM_DEFAULT_COUNTRY || !phonenumbers.IsValidNumber(n) {
		return "", errInvalidNumber
	}
	return phonenumbers.Format(n, phonenumbers.E164), nil
}

// typed removes what a person types between digits (spaces, hyphens,
// dots, parentheses) from a number entered on the customer page, which then
// goes through Normalize like any other. The API takes no such spellings.
func typed(raw string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case ' ', '-', '.', '(', ')':
			return -1
		}
		return r
	}, strings.TrimSpace(raw))
}

// chinaMobile answers for the commonest input, a Chinese mobile number
// already in E.164 form (+861[3-9] and nine digits; +8617 is left to Parse
// because CN's national prefix for parsing names 179xx carrier codes),
// without Parse: its
// regular expressions (extensions, punctuation, national prefixes) are
// costly and cannot change such an input. Validity is still the library's.
// TestChinaMobileMatchesParse holds this equal to the full path.
func chinaMobile(raw string) (string, bool) {
	if len(raw) != 14 || raw[:4] != "+861" || raw[4] < '3' || raw[4] > '9' || raw[4] == '7' {
		return "", false
	}
	var nsn uint64
	for i := 3; i < len(raw); i++ {
		c := raw[i]
		if c < '0' || c > '9' {
			return "", false
		}
		nsn = nsn*10 + uint64(c-'0')
	}
	if d := cnMobile(); d != nil && d.fits(raw[3:]) {
		return raw, true
	}
	cc := int32(86)
	n := phonenumbers.PhoneNumber{CountryCode: &cc, NationalNumber: &nsn}
	if !phonenumbers.IsValidNumber(&n) {
		return "", false
	}
	return raw, true
}

// cnMobile returns CN's general and mobile number descriptions, taken from
// the library's own metadata and compiled once. IsValidNumber builds and
// looks up each type's pattern on every call, costly for a mobile number,
// the commonest input; a national number that fits both the
// general and the mobile description is one it would call valid, as a
// mobile number or a type it tests first. Anything else still goes to it.
var cnMobile = sync.OnceValue(func() *cnDescs {
	coll, err := phonenumbers.MetadataCollection()
	if err != nil {
		return nil
	}
	for _, m := range coll.GetMetadata() {
		if m.GetId() != "CN" {
			continue
		}
		general, mobile := newDesc(m.GetGeneralDesc()), newDesc(m.GetMobile())
		if general == nil || mobile == nil {
			return nil
		}
		return &cnDescs{general: general, mobile: mobile}
	}
	return nil
})

type cnDescs struct{ general, mobile *desc }

func (d *cnDescs) fits(nsn string) bool { return d.general.fits(nsn) && d.mobile.fits(nsn) }

// desc is a number description as the library tests it: a possible length
// (when any are listed) and a full match of the national number pattern.
type desc struct {
	lengths []int32
	re      *regexp.Regexp
}

func newDesc(d *phonenumbers.PhoneNumberDesc) *desc {
	if d == nil || d.GetNationalNumberPattern() == "" {
		return nil
	}
	re, err := regexp.Compile("^(?:" + d.GetNationalNumberPattern() + ")$")
	if err != nil {
		return nil
	}
	return &desc{lengths: d.GetPossibleLength(), re: re}
}

func (d *desc) fits(nsn string) bool {
	if len(d.lengths) > 0 && !slices.Contains(d.lengths, int32(len(nsn))) {
		return false
	}
	return d.re.MatchString(nsn)
}

// person resolves a request's number to its E.164 form and subject,
// through the people cache.
func (s *Server) person(location, raw string) (e164, subject string, err error) {
	if e164, subject, ok := s.people.get(raw); ok {
		return e164, subject, nil
	}
	e164, err = Normalize(raw, s.cfg.Region)
	if err != nil {
		return "", "", errNumber(location)
	}
	subject = s.cfg.Pseudonyms.Pseudonym(e164)
	s.people.put(raw, e164, subject)
	return e164, subject, nil
}

// region returns the callee's region as the projections name it (which
// caches it for +86 numbers).
func (s *Server) region(e164 string) string {
	r, _ := projections.Region(e164)
	return r
}

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }

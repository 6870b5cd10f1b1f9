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
		&huma.ErrorDetail{Location: location, Message: "not a valid phone number (E.164, or national for the default region)"})
}

var errInvalidNumber = errors.New("api: invalid phone number")

// Normalize returns the E.164 form of a number written in international
// form or national form for region.
func Normalize(raw, region string) (string, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" || len(raw) > 32 {
		return "", errInvalidNumber
	}
	if e164, ok := chinaMobile(raw); ok {
		return e164, nil
	}
	n, err := phonenumbers.Parse(raw, region)
	if err != nil || !phonenumbers.IsValidNumber(n) {
		return "", errInvalidNumber
	}
	return phonenumbers.Format(n, phonenumbers.E164), nil
}

// chinaMobile answers for the commonest input, a Chinese mobile number
// already in E.164 form (+861[3-9] and nine digits; +8617 is left to Parse
// because CN's national prefix for parsing names 179xx carrier codes),
// without Parse: its
// regular expressions (extensions, punctuation, national prefixes) cost
// ~10 µs and cannot change such an input. Validity is still the library's.
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
// looks up each type's pattern on every call (~10 µs and 2 KB for a mobile
// number, the commonest input); a national number that fits both the
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

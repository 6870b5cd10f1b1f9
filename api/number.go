package api

import (
	"encoding/json"
	"errors"
	"strings"

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
	cc := int32(86)
	n := phonenumbers.PhoneNumber{CountryCode: &cc, NationalNumber: &nsn}
	if !phonenumbers.IsValidNumber(&n) {
		return "", false
	}
	return raw, true
}

// person resolves a request's number to its E.164 form and subject.
// Parsing a number is regexp-heavy and the pseudonym is an HMAC, so recent
// answers are cached; the cache is dropped whole when it fills.
func (s *Server) person(location, raw string) (e164, subject string, err error) {
	if p, ok := s.people.Load(raw); ok {
		pp := p.(personID)
		return pp.e164, pp.subject, nil
	}
	e164, err = Normalize(raw, s.cfg.Region)
	if err != nil {
		return "", "", errNumber(location)
	}
	subject = s.cfg.Pseudonyms.Pseudonym(e164)
	if s.peopleN.Add(1) > 200_000 {
		s.people.Clear()
		s.peopleN.Store(0)
	}
	s.people.Store(raw, personID{e164, subject})
	return e164, subject, nil
}

type personID struct{ e164, subject string }

// region returns the callee's region as the projections name it. Naming it
// parses the number again and walks the geocoding tables (~15 µs), so
// answers are cached like person's, keyed by the E.164 form.
func (s *Server) region(e164 string) string {
	if r, ok := s.regions.Load(e164); ok {
		return r.(string)
	}
	r, _ := projections.Region(e164)
	if s.regionsN.Add(1) > 200_000 {
		s.regions.Clear()
		s.regionsN.Store(0)
	}
	s.regions.Store(e164, r)
	return r
}

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }

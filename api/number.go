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

// region returns the callee's region as the projections name it, through
// the people cache.
func (s *Server) region(e164 string) string {
	if r, ok := s.people.region(e164); ok {
		return r
	}
	r, _ := projections.Region(e164)
	s.people.putRegion(e164, r)
	return r
}

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }

package api

import (
	"encoding/json"
	"errors"
	"strings"

	"github.com/danielgtaylor/huma/v2"
	"github.com/nyaruka/phonenumbers"
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
	n, err := phonenumbers.Parse(raw, region)
	if err != nil || !phonenumbers.IsValidNumber(n) {
		return "", errInvalidNumber
	}
	return phonenumbers.Format(n, phonenumbers.E164), nil
}

// person resolves a request's number to its E.164 form and subject.
func (s *Server) person(location, raw string) (e164, subject string, err error) {
	e164, err = Normalize(raw, s.cfg.Region)
	if err != nil {
		return "", "", errNumber(location)
	}
	return e164, s.cfg.Pseudonyms.Pseudonym(e164), nil
}

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }

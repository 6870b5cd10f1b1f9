package api

import (
	"errors"
	"regexp"
	"unicode"

	"github.com/danielgtaylor/huma/v2"
)

// Problem details never repeat the offending value: a request body holds
// phone numbers, and error bodies end up in logs. huma's constructor is a
// package variable, so this applies to every problem the API writes: values
// are dropped from details, and quoted text holding a digit (how errors from
// below, such as the ledger's validation, quote a value) is masked.
func init() {
	orig := huma.NewError
	huma.NewError = func(status int, msg string, errs ...error) huma.StatusError {
		for _, err := range errs {
			var d *huma.ErrorDetail
			if errors.As(err, &d) {
				d.Value = nil
				d.Message = mask(d.Message)
			}
		}
		return orig(status, mask(msg), errs...)
	}
}

var quoted = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)

// mask replaces each double-quoted part of msg that holds a digit with
// "…": a quoted value may be a number; a field name or an enum value,
// which the messages also quote, has no digits.
func mask(msg string) string {
	hasDigit := func(s string) bool {
		for _, r := range s {
			if unicode.IsDigit(r) || r == '\\' {
				return true
			}
		}
		return false
	}
	if !hasDigit(msg) {
		return msg
	}
	return quoted.ReplaceAllStringFunc(msg, func(q string) string {
		if hasDigit(q) {
			return `"…"`
		}
		return q
	})
}

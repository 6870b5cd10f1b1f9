package api

import (
	"errors"

	"github.com/danielgtaylor/huma/v2"
)

// Problem details never repeat the offending value: a request body holds
// phone numbers, and error bodies end up in logs. huma's constructor is a
// package variable, so this applies to every problem the API writes.
func init() {
	orig := huma.NewError
	huma.NewError = func(status int, msg string, errs ...error) huma.StatusError {
		for _, err := range errs {
			var d *huma.ErrorDetail
			if errors.As(err, &d) {
				d.Value = nil
			}
		}
		return orig(status, msg, errs...)
	}
}

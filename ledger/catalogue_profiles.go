package ledger

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// TypeTenantProfileSet records how a business is shown to its customers.
// An admin sets it; the latest in ProfileStream(tenant) holds.
const TypeTenantProfileSet = "TenantProfileSet"

// ProfileStream is the stream of one tenant's profile: every version an
// admin set, without a subject.
func ProfileStream(tenant string) string { return "profile-" + tenant }

// Bounds of a profile. Lines are the ones a business places contacts
// from, as a customer sees them on a phone.
const (
	MaxDisplayName  = 100 // characters
	MaxProfileLines = 50
	MaxLineLen      = 64
	MaxServicePhone = 32
)

// TenantProfileSet is a business's profile as its customers see it: the
// name it trades under (in Chinese, and in English if it has one), the
// phone number customers call for service, and the lines it contacts them
// from. A business's own numbers, not personal data.
type TenantProfileSet struct {
	DisplayName   string   `json:"display_name"`
	DisplayNameEN string   `json:"display_name_en,omitempty"`
	ServicePhone  string   `json:"service_phone,omitempty"`
	Lines         []string `json:"lines,omitempty"`
}

func init() {
	register(TypeTenantProfileSet, map[int]func() any{1: func() any { return new(TenantProfileSet) }})
}

func (p *TenantProfileSet) check() error {
	if err := checkName("display_name", p.DisplayName, true); err != nil {
		return err
	}
	if err := checkName("display_name_en", p.DisplayNameEN, false); err != nil {
		return err
	}
	if len(p.ServicePhone) > MaxServicePhone || strings.Trim(p.ServicePhone, "0123456789+- ()") != "" {
		return fmt.Errorf("service_phone must be at most %d digits, spaces, '+', '-' or brackets", MaxServicePhone)
	}
	if len(p.Lines) > MaxProfileLines {
		return fmt.Errorf("at most %d lines", MaxProfileLines)
	}
	for i, l := range p.Lines {
		if l == "" || len(l) > MaxLineLen || strings.ContainsFunc(l, func(r rune) bool { return r <= ' ' || r == utf8.RuneError || unicode.IsControl(r) }) {
			return fmt.Errorf("lines[%d] must be 1-%d bytes without spaces or control characters", i, MaxLineLen)
		}
		if slices.Contains(p.Lines[:i], l) {
			return fmt.Errorf("lines[%d] repeats an earlier line", i)
		}
	}
	return nil
}

// checkName refuses a display name that is empty (when required), too
// long, not UTF-8, or holds control or format characters, which could
// make one business's name look like another's.
func checkName(field, s string, required bool) error {
	switch {
	case s == "" && required:
		return errors.New(field + " is required")
	case !utf8.ValidString(s):
		return errors.New(field + " is not valid UTF-8")
	case utf8.RuneCountInString(s) > MaxDisplayName:
		return fmt.Errorf("%s is longer than %d characters", field, MaxDisplayName)
	case s != strings.TrimSpace(s):
		return errors.New(field + " begins or ends with space")
	case strings.ContainsFunc(s, func(r rune) bool { return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) }):
		return errors.New(field + " holds control or format characters")
	}
	return nil
}

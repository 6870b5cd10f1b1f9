package ledger

import (
	"errors"
	"regexp"
	"unicode/utf8"
)

// Event types of the template review: a business proposes a flash template,
// a reviewer approves or rejects it, and an approved one can be revoked.
// They live in TemplateStream(tenant, template id), without a subject.
const (
	TypeTemplateProposed = "TemplateProposed"
	TypeTemplateApproved = "TemplateApproved"
	TypeTemplateRejected = "TemplateRejected"
	TypeTemplateRevoked  = "TemplateRevoked"
)

// TemplateIDPattern is what a template id may look like. Ids are part of
// stream names.
const TemplateIDPattern = `^[A-Za-z0-9_.-]{1,64}$`

var templateID = regexp.MustCompile(TemplateIDPattern)

// MaxTemplateText bounds a proposed template's text in bytes.
const MaxTemplateText = 2000

// TemplateProposed records a business's proposal of one version of a
// flash template. Text holds typed parameters such as {product} or
// {expires_on:date} (see notify/template); the message sent is
// 【Signature】 followed by the text with the parameters filled in.
type TemplateProposed struct {
	TemplateID string `json:"template_id"`
	Version    int    `json:"version"`
	Purpose    string `json:"purpose"`
	Signature  string `json:"signature"`
	Text       string `json:"text"`
}

// TemplateApproved records a reviewer's approval of a version.
type TemplateApproved struct {
	TemplateID string `json:"template_id"`
	Version    int    `json:"version"`
	Note       string `json:"note,omitempty"`
}

// TemplateRejected records a reviewer's refusal of a version.
type TemplateRejected struct {
	TemplateID string `json:"template_id"`
	Version    int    `json:"version"`
	Reason     string `json:"reason"`
}

// TemplateRevoked withdraws an approved version: no reminder may use it
// from then on.
type TemplateRevoked struct {
	TemplateID string `json:"template_id"`
	Version    int    `json:"version"`
	Reason     string `json:"reason"`
}

func init() {
	register(TypeTemplateProposed, map[int]func() any{1: func() any { return new(TemplateProposed) }})
	register(TypeTemplateApproved, map[int]func() any{1: func() any { return new(TemplateApproved) }})
	register(TypeTemplateRejected, map[int]func() any{1: func() any { return new(TemplateRejected) }})
	register(TypeTemplateRevoked, map[int]func() any{1: func() any { return new(TemplateRevoked) }})
}

func checkTemplateVersion(id string, version int) error {
	if !templateID.MatchString(id) {
		return errors.New("template_id must be 1-64 letters, digits, '_', '.' or '-'")
	}
	if version < 1 {
		return errors.New("version starts at 1")
	}
	return nil
}

func (p *TemplateProposed) check() error {
	if err := checkTemplateVersion(p.TemplateID, p.Version); err != nil {
		return err
	}
	if p.Purpose != PurposeService {
		return errors.New("purpose must be service: flash carries service reminders only")
	}
	if p.Signature == "" || p.Text == "" || len(p.Text) > MaxTemplateText || !utf8.ValidString(p.Text) {
		return errors.New("signature and text are required, text at most 2000 bytes")
	}
	return nil
}

func (p *TemplateApproved) check() error { return checkTemplateVersion(p.TemplateID, p.Version) }

func (p *TemplateRejected) check() error {
	if p.Reason == "" {
		return errors.New("reason is required")
	}
	return checkTemplateVersion(p.TemplateID, p.Version)
}

func (p *TemplateRevoked) check() error {
	if p.Reason == "" {
		return errors.New("reason is required")
	}
	return checkTemplateVersion(p.TemplateID, p.Version)
}

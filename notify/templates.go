package notify

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/heed/heed/ledger"
	"github.com/heed/heed/ledger/pii"
	"github.com/heed/heed/notify/template"
	"github.com/heed/heed/projections"
)

// States of a template version.
const (
	TemplatePending  = "pending"
	TemplateApproved = "approved"
	TemplateRejected = "rejected"
	TemplateRevoked  = "revoked"
)

// Rules a reminder's template adds to its decision.
const (
	// RuleTemplateApproved: a flash reminder names a template version a
	// reviewer approved for its tenant and nobody revoked.
	RuleTemplateApproved = "template-approved"
	// RuleTemplateParams: its parameters type-check and carry no free text.
	RuleTemplateParams = "template-params"
	// RuleFreeText: a reminder sent as free text (only with the dev switch).
	RuleFreeText = "free-text"
)

// TemplateRulesPlain says what each template rule meant to the customer it
// was about, like projections.Rule.Plain for the eligibility rules.
var TemplateRulesPlain = map[string]projections.Plain{
	RuleTemplateApproved: {AllowZH: "短信来自经过人工审核的服务模板。", AllowEN: "The text came from a service template a reviewer approved.",
		DenyZH: "短信模板未经审核批准，或已被撤销。", DenyEN: "The text's template was not approved, or was revoked."},
	RuleTemplateParams: {AllowZH: "模板中填写的内容符合要求（没有夹带其他文字）。", AllowEN: "What the template was filled in with passed its checks (no smuggled text).",
		DenyZH: "模板中填写的内容不符合要求。", DenyEN: "What the template was filled in with failed its checks."},
	RuleFreeText: {AllowZH: "这条短信是测试环境中的自由文本。", AllowEN: "The text was free text, allowed only on a test server.",
		DenyZH: "自由文本不能作为闪信发送。", DenyEN: "Free text may not be sent as a flash message."},
}

// Version is one version of a tenant's flash template and where its
// review stands.
type Version struct {
	ID         string    `json:"id"`
	Version    int       `json:"version"`
	Purpose    string    `json:"purpose"`
	Signature  string    `json:"signature"`
	Text       string    `json:"text"`
	State      string    `json:"state" enum:"pending,approved,rejected,revoked"`
	ProposedAt time.Time `json:"proposed_at"`
	ProposedBy string    `json:"proposed_by"`
	// DecidedAt and DecidedBy are the last review decision's (approval,
	// rejection or revocation); Reason is a rejection's or revocation's.
	DecidedAt *time.Time `json:"decided_at,omitempty"`
	DecidedBy string     `json:"decided_by,omitempty"`
	Reason    string     `json:"reason,omitempty"`
	// Events are the ids of the events that made the state, in order.
	Events []string `json:"events"`
}

// ReadTemplate reads a tenant's template: its versions in order and the
// revision of its stream. A template never proposed has no versions.
func ReadTemplate(ctx context.Context, st ledger.Store, tenant, id string) ([]Version, uint64, error) {
	evs, err := st.ReadStream(ctx, ledger.TemplateStream(tenant, id), 1, 0)
	if errors.Is(err, ledger.ErrNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("notify: read template: %w", err)
	}
	var out []Version
	var rev uint64
	for i := range evs {
		e := &evs[i]
		rev = e.Revision
		if e.Tenant != tenant {
			continue
		}
		p, err := ledger.Decode(e)
		if err != nil {
			continue
		}
		decided := func(version int, state, reason string) {
			// A decision applies to a version in the state it expects
			// (the API appends it at the revision it read).
			for j := range out {
				v := &out[j]
				if v.Version != version {
					continue
				}
				from := TemplatePending
				if state == TemplateRevoked {
					from = TemplateApproved
				}
				if v.State != from {
					return
				}
				at := e.OccurredAt
				v.State, v.DecidedAt, v.DecidedBy, v.Reason = state, &at, e.Actor, reason
				v.Events = append(v.Events, e.ID)
			}
		}
		switch p := p.(type) {
		case *ledger.TemplateProposed:
			if p.Version != len(out)+1 {
				continue
			}
			out = append(out, Version{ID: p.TemplateID, Version: p.Version, Purpose: p.Purpose, Signature: p.Signature,
				Text: p.Text, State: TemplatePending, ProposedAt: e.OccurredAt, ProposedBy: e.Actor, Events: []string{e.ID}})
		case *ledger.TemplateApproved:
			decided(p.Version, TemplateApproved, "")
		case *ledger.TemplateRejected:
			decided(p.Version, TemplateRejected, p.Reason)
		case *ledger.TemplateRevoked:
			decided(p.Version, TemplateRevoked, p.Reason)
		}
	}
	return out, rev, nil
}

// Sealer seals a tenant's personal fields about a subject (ledger/pii's
// Keys does, with owner pii.Owner(tenant, subject)).
type Sealer interface {
	Seal(owner string, fields map[string]string) ([]byte, error)
}

// Sealed fields of a reminder's ReminderRequested event.
const (
	// FieldNonce is random; the content hash covers it, so the hash of a
	// short, guessable text cannot be reversed once the key is erased.
	FieldNonce = "nonce"
	// FieldText is the text of a free-text reminder.
	FieldText = "text"
	// FieldParam prefixes each template parameter's name.
	FieldParam = "param."
)

// ContentHash is the content hash recorded for a message: SHA-256 of the
// sealed nonce followed by the text.
func ContentHash(nonce, text string) string {
	h := sha256.New()
	h.Write([]byte(nonce))
	h.Write([]byte(text))
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// Rebuild returns the text a reminder sent, from its template version and
// its opened sealed fields, and whether it matches the recorded hash.
func Rebuild(v Version, fields map[string]string, hash string) (string, bool, error) {
	text := fields[FieldText]
	if v.Text != "" {
		t, err := template.Parse(v.Signature, v.Text)
		if err != nil {
			return "", false, err
		}
		params := map[string]string{}
		for k, val := range fields {
			if name, ok := strings.CutPrefix(k, FieldParam); ok {
				params[name] = val
			}
		}
		if text, err = t.Render(params); err != nil {
			return "", false, err
		}
	}
	return text, ContentHash(fields[FieldNonce], text) == hash, nil
}

// prepared is what a reminder's template, or free text, contributes.
type prepared struct {
	text    string
	hash    string
	sealed  []byte
	reasons []ledger.Reason // template-approved, template-params, free-text
	ok      bool            // no reason denies
	stream  string          // the template's stream, "" for free text
	rev     uint64          // its revision when read
}

// prepare checks a reminder's template version and parameters (or, with
// FreeText, takes its text) and renders and seals what it will send. A
// template that is not approved, or parameters that fail their checks,
// become denying reasons, not errors: the denial is recorded.
func (n *Notifier) prepare(ctx context.Context, r Request) (prepared, error) {
	var p prepared
	fields := map[string]string{}
	switch {
	case r.TemplateID != "":
		tr, err := n.templates.read(ctx, n.cfg.Store, r.Tenant, r.TemplateID)
		if err != nil {
			return p, err
		}
		p.stream, p.rev = ledger.TemplateStream(r.Tenant, r.TemplateID), tr.rev
		reason, v := tr.approval(r.TemplateID, r.TemplateVersion)
		p.reasons = append(p.reasons, reason)
		if v == nil {
			return p, nil
		}
		t, err := tr.parse(v)
		if err == nil {
			p.text, err = t.Render(r.Params)
		}
		if err != nil {
			p.reasons = append(p.reasons, ledger.Reason{Rule: RuleTemplateParams, Effect: "deny",
				Text:   "The parameters do not fit the template: " + strings.TrimPrefix(err.Error(), "template: ") + ".",
				TextZH: "参数不符合模板的要求，不得发送。"})
			return p, nil
		}
		p.reasons = append(p.reasons, ledger.Reason{Rule: RuleTemplateParams, Effect: "allow",
			Text: "Every parameter has its type and carries no link, number or promotional wording.", TextZH: "参数类型正确，不含链接、号码或营销用语。"})
		for k, val := range r.Params {
			fields[FieldParam+k] = val
		}
	case r.Text != "":
		if !n.cfg.FreeText {
			return p, ErrFreeText
		}
		p.text = r.Text
		fields[FieldText] = r.Text
		p.reasons = append(p.reasons, ledger.Reason{Rule: RuleFreeText, Effect: "info",
			Text: "Sent as free text: the server runs with --dev-free-text, for trials only.", TextZH: "以自由文本发送：服务器开启了 --dev-free-text，仅供试用。"})
	default:
		return p, ErrNoText
	}
	p.ok = true
	nonce := ""
	if n.cfg.Sealer != nil {
		b := make([]byte, 16)
		_, _ = rand.Read(b)
		nonce = hex.EncodeToString(b)
		fields[FieldNonce] = nonce
		sealed, err := n.cfg.Sealer.Seal(pii.Owner(r.Tenant, r.Subject), fields)
		if err != nil {
			return p, fmt.Errorf("notify: seal parameters: %w", err)
		}
		p.sealed = sealed
	}
	p.hash = ContentHash(nonce, p.text)
	return p, nil
}

// approval is the template-approved reason for version of template id,
// and the version when it is approved.
func approval(vs []Version, id string, version int) (ledger.Reason, *Version) {
	deny := func(en, zh string, events []string) (ledger.Reason, *Version) {
		return ledger.Reason{Rule: RuleTemplateApproved, Effect: "deny", Text: en, TextZH: zh, Events: events}, nil
	}
	i := slices.IndexFunc(vs, func(v Version) bool { return v.Version == version })
	if i < 0 {
		return deny(fmt.Sprintf("This business has no version %d of a template %q.", version, id),
			fmt.Sprintf("本企业没有模板 %q 的第%d版。", id, version), nil)
	}
	v := &vs[i]
	switch v.State {
	case TemplateApproved:
		if v.Purpose != ledger.PurposeService {
			return deny("The template is not a service template.", "该模板不是服务类模板。", v.Events)
		}
		return ledger.Reason{Rule: RuleTemplateApproved, Effect: "allow",
			Text:   fmt.Sprintf("Version %d of template %q was approved by a reviewer.", version, id),
			TextZH: fmt.Sprintf("模板 %q 第%d版已通过审核。", id, version), Events: v.Events}, v
	case TemplateRevoked:
		return deny(fmt.Sprintf("Version %d of template %q was revoked.", version, id),
			fmt.Sprintf("模板 %q 第%d版已被撤销。", id, version), v.Events)
	case TemplateRejected:
		return deny(fmt.Sprintf("Version %d of template %q was rejected by a reviewer.", version, id),
			fmt.Sprintf("模板 %q 第%d版未通过审核。", id, version), v.Events)
	}
	return deny(fmt.Sprintf("Version %d of template %q is still awaiting review.", version, id),
		fmt.Sprintf("模板 %q 第%d版尚在审核中。", id, version), v.Events)
}

// stillApproved closes the gap between reading the template and the
// submit: if its stream moved since, the version is read again, and a
// revocation acknowledged before now turns the reminder into a denial.
func (n *Notifier) stillApproved(ctx context.Context, r Request, p prepared, d Decision) (*Decision, error) {
	if p.stream == "" {
		return nil, nil
	}
	rev, err := n.cfg.Store.StreamRevision(ctx, p.stream)
	if err != nil || rev == p.rev {
		return nil, err
	}
	vs, _, err := ReadTemplate(ctx, n.cfg.Store, r.Tenant, r.TemplateID)
	if err != nil {
		return nil, err
	}
	reason, v := approval(vs, r.TemplateID, r.TemplateVersion)
	if v != nil {
		return nil, nil
	}
	return &Decision{Reasons: []ledger.Reason{reason}, RulesVersion: d.RulesVersion, AsOf: d.AsOf}, nil
}

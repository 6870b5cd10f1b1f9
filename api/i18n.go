package api

import (
	"maps"
	"net/http"
	"strconv"
	"strings"

	"github.com/heed/heed/notify"
	"github.com/heed/heed/projections"
)

// Languages of the customer's page.
const (
	langZH = "zh-CN"
	langEN = "en"
)

// langCookie remembers the language a customer chose on /me.
const langCookie = "heed_lang"

// pickLang chooses the page's language: the one the customer chose (the
// cookie), else the first of Chinese and English in the browser's
// Accept-Language, else Chinese.
func pickLang(r *http.Request) string {
	if c, err := r.Cookie(langCookie); err == nil {
		switch c.Value {
		case langZH, langEN:
			return c.Value
		}
	}
	return acceptLang(r.Header.Get("Accept-Language"))
}

// acceptLang reads an Accept-Language header (RFC 9110 §12.5.4): the
// supported language with the highest weight, the first listed on a tie;
// Chinese when neither is acceptable.
func acceptLang(h string) string {
	best, bestQ := langZH, 0.0
	for _, part := range strings.Split(h, ",") {
		tag, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		q := 1.0
		if v, ok := strings.CutPrefix(strings.TrimSpace(params), "q="); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || f < 0 || f > 1 {
				continue
			}
			q = f
		}
		primary, _, _ := strings.Cut(strings.ToLower(strings.TrimSpace(tag)), "-")
		var l string
		switch primary {
		case "zh":
			l = langZH
		case "en":
			l = langEN
		default:
			continue
		}
		if q > bestQ {
			best, bestQ = l, q
		}
	}
	return best
}

// meText is every sentence of /me in one language. Fields ending in F are
// formats for fmt.Sprintf.
type meText struct {
	Lang, Title, Tagline, SwitchTo, SwitchLabel, Main, SignOut, Footer string

	// Signing in.
	Intro, NumberLabel, NumberHint, SendCode, CodeSentF, CodeLabel, CodeHint, Verify, OtherNumber                            string
	ErrNumber, ErrWrongF, ErrUsedUp, ErrExpired, ErrNone, ErrTooManyCodesF, ErrTooManyTriesF, ErrSMS, ErrSession, ErrGeneric string
	InMinutesF, InSecondsF                                                                                                   string

	// The record.
	ZoneF, SummaryF, Empty, ContactsHeading, When, Line, What, Outcome, Why string
	KindCall, KindSMS, KindFlash, KindReminder                              string
	LineRegisteredF, LineUnregisteredF, LineNone                            string
	PurposeService, PurposeMarketing, PurposeF                              string
	Verified, NotVerified, TextGone, NothingSent                            string
	Allowed, Refused, ContactedAnyway                                       string
	StateDelivered, StateSubmitted, StateDispatched, StateFailed            string
	StateUnknown, StateDenied, StateRequested                               string
	BasisContractF, BasisContractSinceF, BasisConsentF, BasisF              string
	SourceWebForm, SourceCall, SourcePaper, SourceSMS, SourceBundled        string
	SourceAPI, SourceOther                                                  string
	RuleAllowedOther, RuleRefusedOther                                      string

	// Complaints.
	Complain, ComplainReasonLabel, ComplainLineF, ComplainNoLine, ComplainSubmit, ComplainedF string

	// Upcoming reminders.
	UpcomingHeading, UpcomingNone, UpcomingF string

	// Who looked at my data.
	AccessHeading, AccessNote, AccessNone, AccessF                                  string
	RoleAuditor, RoleAdmin, RoleBusiness, RoleRegulator, RoleReviewer, RoleStaff    string
	ReadWithdrawal, ReadComplaint, ReadConsent, ReadReminder, ReadContact, ReadList string
	ReadEnded, ReadOther                                                            string

	// Businesses and what the customer can do about them.
	BusinessesHeading, UnnamedF, ServicePhoneF, LinesF, NoLines, StoppedF string
	StopLegend, StopAll, StopMarketing, StopCalls, StopSMS, StopFlash     string
	StopSubmit, StopNote, ScopeBothF                                      string
	EraseHere, EraseKeeps, EraseHereSubmit                                string
	EraseAllHeading, EraseAllSubmit, ErasedAtF                            string

	// After an action.
	NoticeStoppedF, NoticeComplainedF, NoticeComplainedNoLine, NoticeComplainedAgain string
	NoticeErasedF, NoticeErasedAll                                                   string
	ErrNoSuchBusiness, ErrNoSuchContact, ErrNeverSent                                string
}

var textZH = meText{
	Lang: langZH, Title: "我的联系记录", Tagline: "heed · 谁联系过我、为什么可以联系",
	SwitchTo: "English", SwitchLabel: "Switch to English", Main: "跳到正文", SignOut: "退出登录",
	Footer: "heed 把每一次联系都记在签名的日志里，任何人都可以独立核验。",

	Intro:       "查看企业对您号码的每一次联系：谁、什么时候、用哪条线路、说了什么，以及为什么可以联系。我们会先发一条短信验证码，证明号码是您的。",
	NumberLabel: "手机号码", NumberHint: "例如 138 0013 8000。境外号码请以 + 和国家代码开头。",
	SendCode: "发送验证码", CodeSentF: "验证码已通过短信发送，%d 分钟内有效。",
	CodeLabel: "短信验证码", CodeHint: "6 位数字", Verify: "查看我的记录", OtherNumber: "换一个号码",

	ErrNumber:        "无法识别这个号码。请检查后重试；境外号码请以 + 和国家代码开头。",
	ErrWrongF:        "验证码不正确。您还可以再试 %d 次。",
	ErrUsedUp:        "这个验证码已失效：它已经用过，或输错的次数太多。请重新获取验证码。",
	ErrExpired:       "这个验证码已过期。请重新获取验证码。",
	ErrNone:          "这个号码没有待验证的验证码。请先获取验证码。",
	ErrTooManyCodesF: "获取验证码的次数太多。请在 %s（%s后）再试。",
	ErrTooManyTriesF: "尝试次数太多。请在 %s（%s后）再试。",
	ErrSMS:           "短信暂时无法发送，请稍后再试。",
	ErrSession:       "登录已过期，请重新登录。",
	ErrGeneric:       "出了点问题，请稍后再试。",
	InMinutesF:       "%d 分钟", InSecondsF: "%d 秒",

	ZoneF:           "以下时间均为您所在地的时间：%s（%s）。",
	SummaryF:        "共 %d 次联系和提醒，其中 %d 次不被允许。",
	Empty:           "还没有企业记录过对您号码的联系。",
	ContactsHeading: "联系和提醒", When: "时间", Line: "线路", What: "内容", Outcome: "结果", Why: "原因",
	KindCall: "电话", KindSMS: "短信", KindFlash: "闪信", KindReminder: "闪信提醒",
	LineRegisteredF: "%s（该企业登记的线路）", LineUnregisteredF: "%s（不是该企业登记的线路）", LineNone: "未记录",
	PurposeService: "服务（与您的合同或账户有关）", PurposeMarketing: "营销（推销产品或服务）", PurposeF: "用途：%s",
	Verified:    "（与发送时记录的内容一致）",
	NotVerified: "（与发送时记录的内容不一致，请向该企业核实）",
	TextGone:    "短信内容已无法显示：您的信息已删除，或模板已不存在。",
	NothingSent: "没有发送任何内容。",
	Allowed:     "允许", Refused: "不允许",
	ContactedAnyway: "规则不允许这次联系，但该企业仍然联系了您。您可以投诉。",
	StateDelivered:  "已送达", StateSubmitted: "已发出", StateDispatched: "正在发送", StateFailed: "发送失败",
	StateUnknown: "发送结果未知", StateDenied: "被拒绝，未发送", StateRequested: "已申请，尚未处理",
	BasisContractF: "您与该企业的合同 %s", BasisContractSinceF: "您与该企业的合同 %s（%s 起）", BasisConsentF: "您在 %s 给出的同意（%s）", BasisF: "依据：%s",
	SourceWebForm: "网页表单", SourceCall: "通话录音", SourcePaper: "纸质文件", SourceSMS: "短信回复",
	SourceBundled: "应用条款中的捆绑同意", SourceAPI: "企业系统录入", SourceOther: "其他方式",
	RuleAllowedOther: "heed 的规则允许了这次联系。", RuleRefusedOther: "heed 的一条规则不允许这次联系。",

	Complain: "投诉这次联系", ComplainReasonLabel: "发生了什么？（可不填）",
	ComplainLineF:  "投诉会记在线路 %s 上。线路的投诉率过高时会被暂停。",
	ComplainNoLine: "投诉会记在该企业名下。",
	ComplainSubmit: "提交投诉", ComplainedF: "您已于 %s 投诉过这次联系。",

	UpcomingHeading: "即将收到的提醒", UpcomingNone: "目前没有计划发给您的提醒。", UpcomingF: "%s 计划于 %s 提醒您：%s",

	AccessHeading: "谁查看过我的信息",
	AccessNote:    "工作人员每次查看您的个人信息都会留下记录，您都能在这里看到。",
	AccessNone:    "还没有工作人员查看过您的个人信息。",
	AccessF:       "%s，%s查看了%s（%s）。说明的理由：“%s”",
	RoleAuditor:   "审计员", RoleAdmin: "heed 管理员", RoleBusiness: "该企业的工作人员", RoleRegulator: "监管机构",
	RoleReviewer: "模板审核员", RoleStaff: "工作人员",
	ReadWithdrawal: "您退订时的原话", ReadComplaint: "您投诉的内容", ReadConsent: "您同意时的证据", ReadReminder: "提醒中填写的内容",
	ReadContact: "联系的备注", ReadList: "免打扰名单的说明", ReadEnded: "合同终止的原因", ReadOther: "您的个人信息",

	BusinessesHeading: "联系过我的企业", UnnamedF: "未登记名称的企业（编号 %s）",
	ServicePhoneF: "客服电话：%s", LinesF: "登记的线路：%s", NoLines: "该企业没有登记线路。",
	StoppedF:   "您已于 %s 要求它停止：%s。",
	StopLegend: "不要再联系我", StopAll: "所有联系", StopMarketing: "营销", StopCalls: "电话", StopSMS: "短信", StopFlash: "闪信",
	ScopeBothF: "%s（%s）",
	StopSubmit: "确认停止", StopNote: "停止后，除非您再次同意，该企业不能再这样联系您。",
	EraseHere:       "删除我在该企业的信息",
	EraseKeeps:      "删除后，记录中的个人信息（退订原话、投诉内容、提醒内容等）将永远无法再读取。为了让退订继续有效，以下内容会保留：您的退订和免打扰记录，以及每次联系的时间和依据；它们只以号码的加密代号保存，不含您的号码。",
	EraseHereSubmit: "确认删除", EraseAllHeading: "删除我在所有企业的信息", EraseAllSubmit: "删除我在所有企业的信息",
	ErasedAtF: "您的信息已于 %s 删除。",

	NoticeStoppedF: "已记录：%s 不能再联系您（%s）。", NoticeComplainedF: "已记录您的投诉，记在线路 %s 上。",
	NoticeComplainedNoLine: "已记录您的投诉。", NoticeComplainedAgain: "您之前已经投诉过这次联系，投诉仍然有效。",
	NoticeErasedF: "您在 %s 的个人信息已删除。您的退订仍然有效。", NoticeErasedAll: "您在所有企业的个人信息已删除。您的退订仍然有效。",
	ErrNoSuchBusiness: "这个企业没有关于您号码的记录。", ErrNoSuchContact: "找不到这次联系。", ErrNeverSent: "这条提醒没有发送，无需投诉。",
}

var textEN = meText{
	Lang: langEN, Title: "My contact record", Tagline: "heed · who contacted me, and why they could",
	SwitchTo: "中文", SwitchLabel: "切换到中文", Main: "Skip to the content", SignOut: "Sign out",
	Footer: "heed records every contact in a signed log that anyone can check independently.",

	Intro:       "See every contact businesses made to your number: who, when, from which line, what was said, and why it was allowed. We first send a code by text message to prove the number is yours.",
	NumberLabel: "Mobile number", NumberHint: "For example 138 0013 8000. A number outside China starts with + and the country code.",
	SendCode: "Send code", CodeSentF: "A code was sent by text message. It works for %d minutes.",
	CodeLabel: "Code from the text message", CodeHint: "6 digits", Verify: "See my record", OtherNumber: "Use another number",

	ErrNumber:        "That number could not be read. Check it and try again; a number outside China starts with + and the country code.",
	ErrWrongF:        "That code is not right. You can try %d more times.",
	ErrUsedUp:        "That code no longer works: it was used already, or too many wrong codes were tried. Ask for a new code.",
	ErrExpired:       "That code has expired. Ask for a new code.",
	ErrNone:          "No code is waiting for this number. Ask for a code first.",
	ErrTooManyCodesF: "Too many codes were asked for. Try again at %s (in %s).",
	ErrTooManyTriesF: "Too many tries. Try again at %s (in %s).",
	ErrSMS:           "The text message could not be sent just now. Try again later.",
	ErrSession:       "Your session has ended. Sign in again.",
	ErrGeneric:       "Something went wrong. Try again later.",
	InMinutesF:       "%d minutes", InSecondsF: "%d seconds",

	ZoneF:           "Times are in your own time zone: %s (%s).",
	SummaryF:        "%d contacts and reminders, %d of them not allowed.",
	Empty:           "No business has recorded a contact to your number.",
	ContactsHeading: "Contacts and reminders", When: "When", Line: "Line", What: "What", Outcome: "Outcome", Why: "Why",
	KindCall: "Phone call", KindSMS: "Text message", KindFlash: "Flash message", KindReminder: "Flash reminder",
	LineRegisteredF: "%s (a line the business registered)", LineUnregisteredF: "%s (not a line the business registered)", LineNone: "not recorded",
	PurposeService: "service (about your contract or account)", PurposeMarketing: "marketing (selling you something)", PurposeF: "Purpose: %s",
	Verified:    "(matches what was recorded when it was sent)",
	NotVerified: "(does not match what was recorded when it was sent; ask the business)",
	TextGone:    "The text can no longer be shown: your data was erased, or the template is gone.",
	NothingSent: "Nothing was sent.",
	Allowed:     "Allowed", Refused: "Not allowed",
	ContactedAnyway: "The rules did not allow this contact, yet the business made it. You can complain.",
	StateDelivered:  "Delivered", StateSubmitted: "Sent", StateDispatched: "Being sent", StateFailed: "Not delivered",
	StateUnknown: "Delivery unknown", StateDenied: "Refused, not sent", StateRequested: "Requested, not yet handled",
	BasisContractF: "your contract %s with the business", BasisContractSinceF: "your contract %s with the business (since %s)", BasisConsentF: "your consent of %s (%s)", BasisF: "Based on %s",
	SourceWebForm: "web form", SourceCall: "call recording", SourcePaper: "paper form", SourceSMS: "text reply",
	SourceBundled: "consent bundled in app terms", SourceAPI: "entered by the business's systems", SourceOther: "other",
	RuleAllowedOther: "heed's rules allowed this contact.", RuleRefusedOther: "One of heed's rules did not allow this contact.",

	Complain: "Complain about this contact", ComplainReasonLabel: "What happened? (optional)",
	ComplainLineF:  "The complaint is recorded against line %s. A line with too many complaints is suspended.",
	ComplainNoLine: "The complaint is recorded against the business.",
	ComplainSubmit: "Send complaint", ComplainedF: "You complained about this contact on %s.",

	UpcomingHeading: "Upcoming reminders", UpcomingNone: "No reminders are planned for you.", UpcomingF: "%s plans to remind you on %s: %s",

	AccessHeading: "Who looked at my data",
	AccessNote:    "Every time staff read your personal data it is recorded, and you see it here.",
	AccessNone:    "No staff have read your personal data.",
	AccessF:       "%s, %s read %s (%s). Reason given: “%s”",
	RoleAuditor:   "an auditor", RoleAdmin: "a heed administrator", RoleBusiness: "staff of the business", RoleRegulator: "a regulator",
	RoleReviewer: "a template reviewer", RoleStaff: "staff",
	ReadWithdrawal: "the words of your opt-out", ReadComplaint: "the text of your complaint", ReadConsent: "the evidence of your consent",
	ReadReminder: "what a reminder was filled in with", ReadContact: "the notes of a contact", ReadList: "the note on a do-not-contact list",
	ReadEnded: "why a contract ended", ReadOther: "your personal data",

	BusinessesHeading: "Businesses that contacted me", UnnamedF: "A business with no registered name (id %s)",
	ServicePhoneF: "Service phone: %s", LinesF: "Registered lines: %s", NoLines: "The business registered no lines.",
	StoppedF:   "On %s you asked it to stop: %s.",
	StopLegend: "Stop contacting me", StopAll: "All contact", StopMarketing: "Marketing", StopCalls: "Phone calls", StopSMS: "Text messages", StopFlash: "Flash messages",
	ScopeBothF: "%s (%s)",
	StopSubmit: "Stop", StopNote: "Once stopped, the business may not contact you this way unless you agree again.",
	EraseHere:       "Erase my data at this business",
	EraseKeeps:      "Erasing makes the personal data in the record (the words of an opt-out, a complaint's text, what a reminder said) unreadable for ever. So that your opt-outs keep working, this stays: your opt-outs and do-not-contact entries, and when each contact was made and on what basis, kept under a keyed code of the number, never the number itself.",
	EraseHereSubmit: "Erase", EraseAllHeading: "Erase my data at every business", EraseAllSubmit: "Erase my data at every business",
	ErasedAtF: "Your data was erased on %s.",

	NoticeStoppedF: "Recorded: %s may no longer contact you (%s).", NoticeComplainedF: "Your complaint was recorded against line %s.",
	NoticeComplainedNoLine: "Your complaint was recorded.", NoticeComplainedAgain: "You had already complained about this contact; that complaint stands.",
	NoticeErasedF: "Your personal data at %s was erased. Your opt-outs still apply.", NoticeErasedAll: "Your personal data at every business was erased. Your opt-outs still apply.",
	ErrNoSuchBusiness: "That business holds no record of your number.", ErrNoSuchContact: "That contact could not be found.", ErrNeverSent: "That reminder was never sent, so there is nothing to complain about.",
}

func textOf(lang string) *meText {
	if lang == langEN {
		return &textEN
	}
	return &textZH
}

// ruleText says in plain words, in both languages, what each rule means
// for the customer when it allowed a contact and when it refused one: the
// eligibility rules' Plain and the notifier's template rules. The rule ids
// never reach the page.
var ruleText = func() map[string]projections.Plain {
	m := maps.Clone(notify.TemplateRulesPlain)
	for _, r := range projections.Rules {
		m[r.ID] = r.Plain
	}
	return m
}()

// ruleSentence is what a reason means for the customer, in lang.
func ruleSentence(lang, rule, effect string) string {
	t, ok := ruleText[rule]
	s := ""
	switch {
	case effect == "allow" && lang == langEN:
		s = t.AllowEN
	case effect == "allow":
		s = t.AllowZH
	case lang == langEN:
		s = t.DenyEN
	default:
		s = t.DenyZH
	}
	if ok && s != "" {
		return s
	}
	if effect == "allow" {
		return textOf(lang).RuleAllowedOther
	}
	return textOf(lang).RuleRefusedOther
}

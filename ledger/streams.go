package ledger

// Stream names. A decision about one number reads a handful of these short
// streams, never a scan of the log. Each is a prefix naming its kind, then
// the tenant and a dash for a tenant's stream, then its key; ParseStream
// reads them back.

// StreamKind is what a stream holds, as its name says.
type StreamKind uint8

// Stream kinds; StreamOther is any name the functions below do not make.
const (
	StreamOther    StreamKind = iota
	StreamContact             // ContactStream
	StreamLine                // LineStream
	StreamSubject             // SubjectStream
	StreamTemplate            // TemplateStream
	StreamPlan                // PlanStream
)

// streamKinds are the prefixes of the named kinds; tenant says the
// tenant and a dash follow it.
var streamKinds = [...]struct {
	prefix string
	kind   StreamKind
	tenant bool
}{
	{"contact-", StreamContact, true},
	{"line-", StreamLine, true},
	{"subject-", StreamSubject, false},
	{"template-", StreamTemplate, true},
	{"plan-", StreamPlan, true},
}

func streamName(k StreamKind, tenant, key string) string {
	p := streamKinds[k-1].prefix
	if streamKinds[k-1].tenant {
		return p + tenant + "-" + key
	}
	return p + key
}

// ContactStream is the stream of one subject's contact state with one
// tenant: consents, withdrawals, relationships, contacts, complaints,
// reminders and the timers of planned reminders (ReminderScheduled,
// ReminderDeferred, ReminderCancelled), kept beside the opt-outs and ends
// that cancel them. The reminder gate appends ReminderDispatched to it
// with the revision its decision read, so a concurrent opt-out makes that
// append fail.
func ContactStream(tenant, subject string) string { return streamName(StreamContact, tenant, subject) }

// LineStream is the stream of one tenant's line: suspensions and
// reinstatements.
func LineStream(tenant, line string) string { return streamName(StreamLine, tenant, line) }

// SubjectStream is the stream of facts about a subject that hold across
// tenants: global suppression lists and erasure.
func SubjectStream(subject string) string { return streamName(StreamSubject, "", subject) }

// TemplateStream is the stream of one tenant's flash template: its
// proposed versions and the reviewers' decisions on them. A reminder reads
// it to learn whether the version it names is approved.
func TemplateStream(tenant, id string) string { return streamName(StreamTemplate, tenant, id) }

// PlanStream is the stream of one tenant's reminder plan: its versions
// (ReminderPlanDefined), version n at revision n.
func PlanStream(tenant, id string) string { return streamName(StreamPlan, tenant, id) }

// ParseStream reads a stream name made by the functions above: its kind,
// and its key (the subject, line, template or plan id). A tenant's stream
// is read with the tenant of its event, since a tenant's name may hold a
// dash; ok is false when the name is not that tenant's or has no key, and
// for every other name (StreamOther).
func ParseStream[S ~string | ~[]byte](name, tenant S) (kind StreamKind, key S, ok bool) {
	for _, k := range streamKinds {
		p := k.prefix
		if len(name) < len(p) || string(name[:len(p)]) != p {
			continue
		}
		rest := name[len(p):]
		if k.tenant {
			n := len(tenant)
			if len(rest) <= n || string(rest[:n]) != string(tenant) || rest[n] != '-' {
				return k.kind, key, false
			}
			rest = rest[n+1:]
		}
		return k.kind, rest, len(rest) > 0
	}
	return StreamOther, key, false
}

package ledger

// Stream names. A decision about one number reads a handful of these short
// streams, never a scan of the log.

// ContactStream is the stream of one subject's contact state with one
// tenant: consents, withdrawals, relationships, contacts, complaints,
// reminders and the timers of planned reminders (ReminderScheduled,
// ReminderDeferred, ReminderCancelled), kept beside the opt-outs and ends
// that cancel them. The reminder gate appends ReminderDispatched to it
// with the revision its decision read, so a concurrent opt-out makes that
// append fail.
func ContactStream(tenant, subject string) string { return "contact-" + tenant + "-" + subject }

// LineStream is the stream of one tenant's line: suspensions and
// reinstatements.
func LineStream(tenant, line string) string { return "line-" + tenant + "-" + line }

// SubjectStream is the stream of facts about a subject that hold across
// tenants: global suppression lists and erasure.
func SubjectStream(subject string) string { return "subject-" + subject }

// TemplateStream is the stream of one tenant's flash template: its
// proposed versions and the reviewers' decisions on them. A reminder reads
// it to learn whether the version it names is approved.
func TemplateStream(tenant, id string) string { return "template-" + tenant + "-" + id }

// PlanStream is the stream of one tenant's reminder plan: its versions
// (ReminderPlanDefined), version n at revision n.
func PlanStream(tenant, id string) string { return "plan-" + tenant + "-" + id }

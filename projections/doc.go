// Package projections reads heed's log in order into in-memory state and
// answers the eligibility question: may this tenant contact this number,
// on this channel, for this purpose, from this line, now or at a past
// moment, and why.
//
// # Using it
//
// Load the rules with [LoadConfig] (a JSON file, validated at start; see
// testdata/rules.json for every field and DESIGN.md's defaults), build a
// [Runner] over a ledger.Store with [NewRunner], start [Runner.Run] in a
// goroutine, and ask:
//
//	d, err := runner.Decide(ctx, projections.Query{
//		Tenant: "acme", Subject: pseudonym, Number: "+8613800138000",
//		Channel: "flash", Purpose: "service", Line: "pbx-1",
//	})
//
// [Query.Number] is used only to find the callee's region and time zone;
// it is never stored, logged or echoed in an error. [Decision] carries
// Allowed, the [Reason]s (rule id, effect allow/deny/info, an English and
// a Chinese sentence, the ids and positions of the events it rests on),
// the RulesVersion (the file's version plus a hash of its numbers), AsOf
// (the log position reflected) and Revision: the revision of
// ledger.ContactStream(tenant, subject) the decision read. The notifier
// appends ReminderDispatched with ledger.Exact(d.Revision), so an opt-out
// that lands in between makes the append fail (invariant 2).
//
// # Read-your-writes
//
// [Runner.Decide] first reads the store's head and waits until the
// projection has applied it; [Runner.DecideAfter] waits for a position the
// caller already has (its own append's). A runner that cannot catch up
// within [Options.Wait] returns [ErrBehind] rather than a stale answer.
//
// # Point in time
//
// A query whose At lies before the newest event the projection has seen
// is answered as of At: the runner re-reads the (tenant, subject) contact
// stream, the subject stream and the line stream, keeps events recorded at
// or before At, folds them into a scratch state with the same code and
// evaluates the rules at At; its AsOf is the newest position among the
// events it read. Grace and cooldown windows are measured on occurred_at;
// contacts and complaints count for the frequency caps, region bursts and
// line rates when heed recorded them (a backfilled contact, imported by a
// key allowed to, at its occurred_at but never later than recorded), so a
// contact a business dates ahead or back cannot escape a limit; knowledge
// is cut on recorded_at. The daily cap
// across tenants reads the contact streams of the other tenants that know
// the subject (counted, never cited). Regional bursts come from the live
// projection's record of which contact filled each (line, region, hour)
// and when the log learnt of it, so a past question sees a full hour only
// if it was known full then. Line suspension is exact: it is recorded as
// events in the line stream, and a crossing the live projection saw
// before its LineSuspended was recorded refuses from when it was recorded.
//
// # Rules
//
// The rules and their ids are listed in [Rules]; every number is in
// [Config]. Quiet hours use the callee's time zones from
// github.com/nyaruka/phonenumbers; a number that spans several zones is
// refused if any of them is in quiet hours (the caller cannot know where
// the callee is), and a number with no zone uses quiet_hours.fallback_zone.
// Regions are what [Region] returns (the Chinese geocoding name, e.g.
// 北京市, else the region code); the API records the same in
// ContactMade.region so counts and queries agree. Only a dispatched
// reminder counts as a flash contact, once. The daily cap across tenants
// counts UTC calendar days and never names another tenant's events.
//
// # State and snapshots
//
// Each (tenant, subject) is one fixed-size, pointer-free record (~150
// bytes) in pages of 4096, found through a flat open-addressing table of
// 16-byte subject keys (records of one subject with several tenants are
// chained); both are written to a snapshot as raw memory and read back
// without rebuilding anything, so a restart over 10M events is ready in
// well under a second plus the events since the snapshot. Contracts
// beyond the first, grant expiries, complaints, erasures and global facts live in
// side maps because few subjects have them. Positions are stored as
// uint32: the compact state covers logs of up to 4 billion events. The
// ring of recent contacts keeps six per (tenant, subject) and, when full,
// drops first what no limit needs (contacts outside their window, contacts
// older than the newest max of their kind); a contact still needed moves
// to a side map, so frequency limits stay exact for any configuration.
//
// [Runner.Run] saves a snapshot to [Options.Dir] periodically and on exit
// (temporary file, fsync, rename, directory fsync); [NewRunner] resumes
// from it at position+1. A snapshot taken under other rules is ignored
// (the projection starts from position 1); a damaged one is an error.
// [Runner.Rebuild] replays from position 1 and swaps the result in.
// [Replay] builds a separate runner under another configuration — "what
// would these rules have said" — without touching the log.
//
// # Line suspension
//
// Each line's contacts and complaints are counted over the rules' window.
// The contact or complaint that takes complaints/contacts to the rate with
// at least min_contacts contacts marks the line over, in log order: the
// next decision on the line is denied, its reason giving the figures.
// [Suspender] then appends LineSuspended (with the same figures) to the
// line stream, and also suspends lines that cross the threshold as old
// contacts leave the window. The append expects the line stream's
// revision, so one suspension is written however many checkers race.
// Only an admin's LineReinstated lifts it, and the line's window then
// starts afresh. [Runner.Line] reports a line's figures and state.
package projections

package projections

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/heed/heed/ledger"
)

// ErrOrder means an event was applied out of log order.
var ErrOrder = errors.New("projections: event out of order")

// epoch is minute 0 of the compact clock; 0 itself means "never".
var epoch = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)

// seconds converts t to seconds since epoch, clamped like minute.
func seconds(t time.Time) uint32 {
	x := t.Sub(epoch) / time.Second
	switch {
	case t.Before(epoch) || x < 1:
		return 1
	case x > math.MaxUint32:
		return math.MaxUint32
	}
	return uint32(x)
}

// minute converts t to minutes since epoch, clamped to [1, MaxUint32].
func minute(t time.Time) uint32 {
	m := t.Sub(epoch) / time.Minute
	switch {
	case t.Before(epoch) || m < 1:
		return 1
	case m > math.MaxUint32:
		return math.MaxUint32
	}
	return uint32(m)
}

// Channel × purpose combinations, indexed channel*2 + purpose.
const combos = 6

func combo(channel, purpose string) (int, bool) {
	var c, p int
	switch channel {
	case ledger.ChannelCall:
	case ledger.ChannelSMS:
		c = 1
	case ledger.ChannelFlash:
		c = 2
	default:
		return 0, false
	}
	switch purpose {
	case ledger.PurposeService:
	case ledger.PurposeMarketing:
		p = 1
	default:
		return 0, false
	}
	return c*2 + p, true
}

func isMarketing(c int) bool { return c%2 == 1 }

// key identifies a subject compactly: the first 16 bytes of the hex HMAC
// pseudonym, or of a SHA-256 of any other spelling.
type key [16]byte

func subjectKey(s string) key {
	var k key
	if len(s) >= 32 {
		if _, err := hex.Decode(k[:], []byte(s[:32])); err == nil && len(s) == 64 {
			return k
		}
	}
	sum := sha256.Sum256([]byte(s))
	copy(k[:], sum[:])
	return k
}

// contract is one relationship; times in compact minutes.
type contract struct {
	Ref   uint32 // FNV-1a of the contract reference
	Pos   uint32 // RelationshipStarted
	Start uint32
	Exp   uint32 // 0 = open-ended
	End   uint32 // 0 = not ended
}

// complaint is a record's latest complaint.
type complaint struct{ At, Pos uint32 }

// spilled is a contact a full ring still needs for some limit.
type spilled struct {
	At, Pos uint32
	Kind    uint8
}

// contact is one counted contact in a subject's ring.
type contact struct{ at, pos uint32 }

// rec is the state of one (tenant, subject). Records of one subject are
// chained through next; the first (head) also holds the subject's facts
// that hold across tenants. Fixed size and pointer-free, so a million of
// them are one allocation and a snapshot is a memory copy.
type rec struct {
	tenant   uint32
	next     uint32 // index+1 of the subject's next record, 0 = last
	rev      uint32 // revision of the contact stream
	grant    [combos]uint32
	withdraw [combos]uint32
	bundled  uint32 // latest marketing grant from bundled terms
	deal     contract
	ring     [ringSize]contact
	kinds    [ringSize]uint8 // combo+1, 0 = empty
	supMask  uint16          // tenant suppression lists in force
	supPos   uint32
	day      uint16 // head only: UTC day of dayN
	dayN     uint16 // head only: contacts that day, all tenants
}

// global holds a subject's rare facts that hold across tenants.
type global struct {
	Mask   uint16 // global lists in force
	Pos    uint32 // latest listing
	Erased uint32 // SubjectErased
}

// pageSize records share one allocation, so growing the state never copies
// it and wastes at most one page.
const pageSize = 4096

// pages stores records by index.
type pages struct {
	p [][]rec
	n int
}

func (ps *pages) at(i int) *rec { return &ps.p[i/pageSize][i%pageSize] }

func (ps *pages) add(r rec) int {
	if len(ps.p) == 0 || len(ps.p[len(ps.p)-1]) == pageSize {
		// The first page grows gradually: a one-subject state (a past
		// query's) stays small.
		c := pageSize
		if len(ps.p) == 0 {
			c = 8
		}
		ps.p = append(ps.p, make([]rec, 0, c))
	}
	last := &ps.p[len(ps.p)-1]
	*last = append(*last, r)
	ps.n++
	return ps.n - 1
}

// burst is one (line, region) clock hour.
type burst struct {
	Hour  uint32
	Count uint32
}

// trip records the contact that filled a region's hourly allowance.
type trip struct {
	Region uint16
	Hour   uint32
	At     uint32
	Pos    uint32
	// Known is when the log learnt of the filling contact (seconds since
	// epoch): before that, the hour was not full as far as anyone knew.
	Known uint32
}

// bucket counts a line's contacts and complaints on one UTC day.
type bucket struct{ Day, Contacts, Complaints uint32 }

// line is the state of one tenant's line.
type line struct {
	Tenant    string
	Name      string
	Rev       uint32 // revision of the line stream
	Suspended bool
	SuspPos   uint32
	Buckets   []bucket
	Regions   map[uint16]burst
	Trips     []trip
	// Over is set by the contact or complaint that took the line over the
	// complaint-rate threshold, in log order, so decisions deny from the
	// next event on; the LineSuspended the suspender then records replaces
	// its figures with the recorded ones. A reinstatement clears it.
	Over figures
}

// figures are the numbers that suspend a line. Pos is the event they rest
// on (the crossing contact or complaint, then the LineSuspended); Known is
// when the log learnt of it, in seconds since epoch (0 = not over).
type figures struct {
	Contacts, Complaints uint32
	WindowDays           uint16
	Pos, Known           uint32
}

// State is the in-memory projection of the log: contact state per
// (tenant, subject) and per line. Apply events in position order; it is not
// safe for concurrent use (Runner guards it).
type State struct {
	cfg      *Config
	txt      *texts // the decision sentences under cfg
	pos      uint64
	posID    string    // the id of the event at pos, which a snapshot names
	recorded time.Time // latest RecordedAt applied
	subjects index
	recs     pages
	more     map[uint32][]contract     // contracts beyond a record's first
	exps     map[uint32][combos]uint32 // grant expiries, for records with any
	globals  map[uint32]global         // by head record
	// complaints holds each record's latest complaint; few customers
	// complain, so it lives beside the records, not in them.
	complaints map[uint32]complaint
	// erased holds the position of each record's latest SubjectErased: a
	// business's erasure is a fact about its own record only.
	erased map[uint32]uint32
	// spill holds contacts that a full ring still needs: a subject
	// contacted on many channels at once.
	spill   map[uint32][]spilled
	tenants intern
	lists   intern
	regions intern
	lines   map[string]map[string]*line // by tenant, then name
	// partial is set on the scratch state of a past decision, which holds
	// a few streams only: its line figures are not the line's.
	partial bool
	// frozen is set while a snapshot is written (see freeze).
	frozen *freeze
}

// intern maps strings to small ids; id 0 is "".
type intern struct {
	IDs   map[string]uint32
	Names []string
}

func (in *intern) id(s string) uint32 {
	if s == "" {
		return 0
	}
	if in.IDs == nil {
		in.IDs = map[string]uint32{}
		in.Names = []string{""}
	}
	if id, ok := in.IDs[s]; ok {
		return id
	}
	id := uint32(len(in.Names))
	s = strings.Clone(s)
	in.IDs[s] = id
	in.Names = append(in.Names, s)
	return id
}

func (in *intern) lookup(s string) (uint32, bool) {
	if s == "" {
		return 0, true
	}
	id, ok := in.IDs[s]
	return id, ok
}

// NewState returns an empty projection under cfg.
func NewState(cfg *Config) *State {
	return &State{
		cfg:        cfg,
		txt:        newTexts(cfg),
		more:       map[uint32][]contract{},
		exps:       map[uint32][combos]uint32{},
		globals:    map[uint32]global{},
		complaints: map[uint32]complaint{},
		erased:     map[uint32]uint32{},
		spill:      map[uint32][]spilled{},
		lines:      map[string]map[string]*line{},
	}
}

func (s *State) texts() *texts { return s.txt }

// Position is the position of the last applied event.
func (s *State) Position() uint64 { return s.pos }

// Subjects counts tracked (tenant, subject) records.
func (s *State) Subjects() int { return s.recs.n }

// Apply applies the next event of the log; e.Position must follow the last
// applied position.
func (s *State) Apply(e *ledger.Event) error {
	if e.Position != s.pos+1 {
		return fmt.Errorf("%w: got position %d after %d", ErrOrder, e.Position, s.pos)
	}
	if e.Position > math.MaxUint32 {
		return fmt.Errorf("%w: position %d beyond the compact state's range", ErrOrder, e.Position)
	}
	if err := s.apply(e); err != nil {
		return err
	}
	s.pos, s.posID = e.Position, e.ID
	return nil
}

// find returns the record of (tenant, subject), or -1.
func (s *State) find(tenant, subject string) int {
	t, ok := s.tenants.lookup(tenant)
	if !ok {
		return -1
	}
	i, ok := s.subjects.get(subjectKey(subject))
	if !ok {
		return -1
	}
	for {
		r := s.recs.at(int(i))
		if r.tenant == t {
			return int(i)
		}
		if r.next == 0 {
			return -1
		}
		i = r.next - 1
	}
}

// tenantsOf lists the tenants other than but that hold a record of
// subject.
func (s *State) tenantsOf(subject, but string) []string {
	var out []string
	i := s.head(subject)
	for i >= 0 {
		r := s.recs.at(i)
		if name := s.tenants.Names[r.tenant]; name != "" && name != but {
			out = append(out, name)
		}
		i = int(r.next) - 1
	}
	return out
}

// head returns the subject's first record, or -1.
func (s *State) head(subject string) int {
	i, ok := s.subjects.get(subjectKey(subject))
	if !ok {
		return -1
	}
	return int(i)
}

// record returns the record of (tenant, subject) and the subject's head
// record, creating them.
func (s *State) record(tenant, subject string) (int, int) {
	t := s.tenants.id(tenant)
	k := subjectKey(subject)
	h, ok := s.subjects.get(k)
	if !ok {
		i := s.recs.add(rec{tenant: t})
		s.subjects.put(k, uint32(i))
		return i, i
	}
	for i := h; ; i = s.recs.at(int(i)).next - 1 {
		if s.recs.at(int(i)).tenant == t {
			return int(i), int(h)
		}
		if s.recs.at(int(i)).next == 0 {
			n := s.recs.add(rec{tenant: t})
			s.mut(int(i)).next = uint32(n + 1)
			return n, int(h)
		}
	}
}

// line returns the tenant's line, creating it.
func (s *State) line(tenant, name string) *line {
	if l := s.lines[tenant][name]; l != nil {
		return l
	}
	byName := s.lines[tenant]
	if byName == nil {
		byName = map[string]*line{}
		s.lines[strings.Clone(tenant)] = byName
	}
	name = strings.Clone(name)
	l := &line{Tenant: strings.Clone(tenant), Name: name, Buckets: make([]bucket, s.cfg.LineSuspension.WindowDays), Regions: map[uint16]burst{}}
	byName[name] = l
	return l
}

// eachLine calls fn for every line.
func (s *State) eachLine(fn func(*line)) {
	for _, byName := range s.lines {
		for _, l := range byName {
			fn(l)
		}
	}
}

// apply folds e into the state. An event it cannot read fails with
// ErrUndecodable: skipping it would leave decisions that ignore a fact the
// log holds.
func (s *State) apply(e *ledger.Event) error {
	if e.RecordedAt.After(s.recorded) {
		s.recorded = e.RecordedAt
	}
	pos := uint32(e.Position)
	at := minute(e.OccurredAt)
	// Contacts and complaints count for the limits when heed recorded them:
	// a business chooses occurred_at, and a contact dated far ahead or
	// far back would escape every window.
	rec := minute(e.RecordedAt)
	switch kind, _, _ := ledger.ParseStream(e.Stream, e.Tenant); {
	case kind == ledger.StreamContact && e.Subject != "":
		i, h := s.record(e.Tenant, e.Subject)
		s.mut(i).rev = uint32(e.Revision)
		if err := s.applyContact(i, h, e, pos, at, rec); err != nil {
			return undecodable(e, err)
		}
	case kind == ledger.StreamSubject && e.Subject != "":
		h := s.head(e.Subject)
		if h < 0 {
			_, h = s.record("", e.Subject)
		}
		if err := s.applySubject(h, e, pos); err != nil {
			return undecodable(e, err)
		}
	case kind == ledger.StreamLine:
		if err := s.applyLine(e, pos); err != nil {
			return undecodable(e, err)
		}
	}
	return nil
}

// undecodable names the event the projection could not read by its
// position, type and id; the cause says what in it failed, never a value.
func undecodable(e *ledger.Event, err error) error {
	return fmt.Errorf("%w: position %d (%s %s): %v", ErrUndecodable, e.Position, e.Type, e.ID, err)
}

func (s *State) applyContact(i, h int, e *ledger.Event, pos, at, rec uint32) error {
	r := s.mut(i)
	var ok bool
	switch e.Type {
	case ledger.TypeConsentGranted:
		var p ledger.ConsentGranted
		if !fastGrant(e.Data, &p) {
			p = ledger.ConsentGranted{}
			if err := json.Unmarshal(e.Data, &p); err != nil {
				return err
			}
		}
		var exp uint32
		if p.ExpiresAt != nil {
			exp = minute(*p.ExpiresAt)
		}
		for _, ch := range p.Channels {
			for _, pu := range p.Purposes {
				c, ok := combo(ch, pu)
				if !ok {
					continue
				}
				if isMarketing(c) && p.Source == "bundled_terms" && !s.cfg.MarketingConsent.BundledTermsEnough {
					r.bundled = pos
					continue
				}
				r.grant[c] = pos
				s.setExpiry(i, c, exp)
			}
		}
	case ledger.TypeConsentWithdrawn:
		var p ledger.ConsentWithdrawn
		if !fastWithdrawal(e.Data, &p) {
			p = ledger.ConsentWithdrawn{}
			if err := json.Unmarshal(e.Data, &p); err != nil {
				return err
			}
		}
		for c := range combos {
			if p.All || (covers(p.Channels, channelOf(c)) && covers(p.Purposes, purposeOf(c))) {
				r.withdraw[c] = pos
			}
		}
	case ledger.TypeRelationshipStarted:
		var p ledger.RelationshipStarted
		if !fastStarted(e.Data, &p) {
			p = ledger.RelationshipStarted{}
			if err := json.Unmarshal(e.Data, &p); err != nil {
				return err
			}
		}
		k := contract{Ref: refHash(p.ContractRef), Pos: pos, Start: minute(p.StartsAt)}
		if p.StartsAt.IsZero() {
			k.Start = at
		}
		if p.ExpiresAt != nil {
			k.Exp = minute(*p.ExpiresAt)
		}
		s.putContract(i, k)
	case ledger.TypeRelationshipEnded:
		var p ledger.RelationshipEnded
		if !fastEnded(e.Data, &p) {
			p = ledger.RelationshipEnded{}
			if err := json.Unmarshal(e.Data, &p); err != nil {
				return err
			}
		}
		end := minute(p.EndedAt)
		if p.EndedAt.IsZero() {
			end = at
		}
		s.endContract(i, refHash(p.ContractRef), end)
	case ledger.TypeRelationshipRenewed:
		var p ledger.RelationshipRenewed
		if err := json.Unmarshal(e.Data, &p); err != nil {
			return err
		}
		s.renewContract(i, refHash(p.ContractRef), minute(p.ExpiresAt))
	case ledger.TypeSuppressionListed, ledger.TypeSuppressionLifted:
		return s.applySuppression(i, h, e, pos, false)
	case ledger.TypeContactMade:
		var p ledger.ContactMade
		if !fastContact(e.Data, &p) {
			p = ledger.ContactMade{}
			if err := json.Unmarshal(e.Data, &p); err != nil {
				return err
			}
		}
		counted := rec
		if p.Backfill {
			// Imported history counts when it happened, never later than
			// heed learnt of it.
			counted = min(at, rec)
		}
		s.countContact(i, h, e.Tenant, p.Line, p.Channel, p.Purpose, p.Region, pos, counted, seconds(e.RecordedAt))
	case ledger.TypeReminderDispatched:
		var p ledger.ReminderDispatched
		if p.Line, ok = fastLine(e.Data); !ok {
			if err := json.Unmarshal(e.Data, &p); err != nil {
				return err
			}
		}
		s.countContact(i, h, e.Tenant, p.Line, ledger.ChannelFlash, ledger.PurposeService, "", pos, rec, seconds(e.RecordedAt))
	case ledger.TypeSubjectErased:
		s.erased[uint32(i)] = pos
	case ledger.TypeComplaintReceived:
		var p ledger.ComplaintReceived
		if p.Line, ok = fastLine(e.Data); !ok {
			if err := json.Unmarshal(e.Data, &p); err != nil {
				return err
			}
		}
		if last, ok := s.complaints[uint32(i)]; !ok || at >= last.At {
			s.complaints[uint32(i)] = complaint{At: at, Pos: pos}
		}
		if p.Line != "" {
			l := s.line(e.Tenant, p.Line)
			l.bucket(rec).Complaints++
			s.judge(l, pos, seconds(e.RecordedAt))
		}
	}
	return nil
}

func (s *State) applySubject(h int, e *ledger.Event, pos uint32) error {
	switch e.Type {
	case ledger.TypeSuppressionListed, ledger.TypeSuppressionLifted:
		return s.applySuppression(h, h, e, pos, true)
	case ledger.TypeSubjectErased:
		// An erasure here with a tenant (the log may hold them) is that
		// business's; one without a tenant is an erasure everywhere.
		if e.Tenant != "" {
			i, _ := s.record(e.Tenant, e.Subject)
			s.erased[uint32(i)] = pos
			return nil
		}
		g := s.globals[uint32(h)]
		g.Erased = pos
		s.globals[uint32(h)] = g
	}
	return nil
}

func (s *State) applySuppression(i, h int, e *ledger.Event, pos uint32, isGlobal bool) error {
	var list, scope string
	listed := e.Type == ledger.TypeSuppressionListed
	if listed {
		var p ledger.SuppressionListed
		if err := json.Unmarshal(e.Data, &p); err != nil {
			return err
		}
		list, scope = p.List, p.Scope
	} else {
		var p ledger.SuppressionLifted
		if err := json.Unmarshal(e.Data, &p); err != nil {
			return err
		}
		list, scope = p.List, p.Scope
	}
	// A global list is a fact about the subject whichever stream carried it.
	if scope == "global" {
		isGlobal, i = true, h
	}
	// Lists beyond the 16th share the last bit, which a lift never clears:
	// erring towards "still suppressed".
	id := s.lists.id(scope + "/" + list)
	bit, sticky := uint16(1)<<min(id, 15), id >= 15
	r := s.mut(i)
	mask, at := &r.supMask, &r.supPos
	var g global
	if isGlobal {
		g = s.globals[uint32(i)]
		mask, at = &g.Mask, &g.Pos
	}
	if listed {
		*mask |= bit
		*at = pos
	} else if !sticky {
		*mask &^= bit
	}
	if isGlobal {
		s.globals[uint32(i)] = g
	}
	return nil
}

func (s *State) applyLine(e *ledger.Event, pos uint32) error {
	// The line is named by its stream, so the revision a suspender expects
	// is always that stream's.
	_, name, ok := ledger.ParseStream(e.Stream, e.Tenant)
	if !ok {
		return errors.New("line stream of another tenant")
	}
	l := s.line(e.Tenant, name)
	l.Rev = uint32(e.Revision)
	switch e.Type {
	case ledger.TypeLineSuspended:
		var p ledger.LineSuspended
		if err := json.Unmarshal(e.Data, &p); err != nil {
			return err
		}
		l.Suspended, l.SuspPos = true, pos
		l.Over = figures{Contacts: clampU32(p.Contacts), Complaints: clampU32(p.Complaints),
			WindowDays: uint16(min(max(p.WindowDays, 0), math.MaxUint16)), Pos: pos, Known: seconds(e.RecordedAt)}
	case ledger.TypeLineReinstated:
		// A reinstated line starts a fresh window: the figures that tripped
		// it must not trip it again at once.
		l.Suspended, l.SuspPos = false, 0
		l.Over = figures{}
		clear(l.Buckets)
	}
	return nil
}

// countContact records one contact for frequency, line rates and regional
// bursts.
func (s *State) countContact(i, hi int, tenant, lineName, channel, purpose, region string, pos, at, known uint32) {
	if c, ok := combo(channel, purpose); ok {
		s.pushContact(i, c, pos, at)
	}
	h := s.mut(hi)
	d := uint16(min(at/1440, math.MaxUint16))
	switch {
	case d == h.day:
		h.dayN++
	case d > h.day:
		h.day, h.dayN = d, 1
	}
	if lineName == "" {
		return
	}
	l := s.line(tenant, lineName)
	l.bucket(at).Contacts++
	s.judge(l, pos, known)
	if region == "" {
		return
	}
	rid := uint16(min(s.regions.id(region), math.MaxUint16))
	b := l.Regions[rid]
	hour := at / 60
	switch {
	case hour == b.Hour:
	case hour > b.Hour:
		b = burst{Hour: hour}
	default:
		return // a late report for an hour already past
	}
	b.Count++
	if b.Count == uint32(s.cfg.RegionBurst.MaxPerHour) {
		l.Trips = append(l.Trips, trip{Region: rid, Hour: hour, At: at, Pos: pos, Known: known})
	}
	l.Regions[rid] = b
}

// judge marks l over the complaint-rate threshold when the event at pos,
// recorded at second known, takes it there.
func (s *State) judge(l *line, pos, known uint32) {
	if l.Suspended || l.Over.Known != 0 || s.partial {
		return
	}
	contacts, complaints := l.figures(known / 86400)
	if s.cfg.over(contacts, complaints) {
		l.Over = figures{Contacts: contacts, Complaints: complaints, WindowDays: uint16(len(l.Buckets)), Pos: pos, Known: max(known, 1)}
	}
}

func clampU32(n int) uint32 { return uint32(min(max(n, 0), math.MaxUint32)) }

func (l *line) bucket(at uint32) *bucket {
	d := at / 1440
	b := &l.Buckets[int(d)%len(l.Buckets)]
	if b.Day != d {
		if d < b.Day {
			return &bucket{} // older than the window: counts nowhere
		}
		*b = bucket{Day: d}
	}
	return b
}

// figures sums a line's contacts and complaints over the window ending at
// day d.
func (l *line) figures(d uint32) (contacts, complaints uint32) {
	w := uint32(len(l.Buckets))
	for _, b := range l.Buckets {
		if b.Day <= d && b.Day+w > d {
			contacts += b.Contacts
			complaints += b.Complaints
		}
	}
	return contacts, complaints
}

// pushContact adds a contact to the record's ring. When the ring is full it
// drops, in order: a contact outside its own window, a contact its combo
// does not need (only the newest Max of a combo decide a limit), the oldest.
func (s *State) pushContact(i, c int, pos, at uint32) {
	r := s.mut(i)
	slot := -1
	for j := range r.kinds {
		if r.kinds[j] == 0 {
			slot = j
			break
		}
	}
	if slot < 0 {
		var keep bool
		slot, keep = s.victim(r, c, contact{at: at, pos: pos})
		if keep {
			s.spill[uint32(i)] = append(s.spill[uint32(i)], spilled{At: r.ring[slot].at, Pos: r.ring[slot].pos, Kind: r.kinds[slot]})
		}
	}
	r.ring[slot] = contact{at: at, pos: pos}
	r.kinds[slot] = uint8(c + 1)
	if sp, ok := s.spill[uint32(i)]; ok {
		sp = slices.DeleteFunc(sp, func(x spilled) bool {
			return x.At+uint32(s.limit(int(x.Kind)-1).Days)*1440 <= at
		})
		if len(sp) == 0 {
			delete(s.spill, uint32(i))
		} else {
			s.spill[uint32(i)] = sp
		}
	}
}

// victim picks the ring slot to overwrite with incoming (of combo c), and
// whether its contact is still needed (to be kept in the spill).
func (s *State) victim(r *rec, c int, incoming contact) (int, bool) {
	newer := func(a, b contact) bool { return a.at > b.at || (a.at == b.at && a.pos > b.pos) }
	for j, k := range r.kinds {
		if r.ring[j].at+uint32(s.limit(int(k)-1).Days)*1440 <= incoming.at {
			return j, false
		}
	}
	oldest, surplus := 0, -1
	for j, k := range r.kinds {
		if newer(r.ring[oldest], r.ring[j]) {
			oldest = j
		}
		n := 0
		if int(k) == c+1 && newer(incoming, r.ring[j]) {
			n++
		}
		for m, k2 := range r.kinds {
			if k2 == k && m != j && newer(r.ring[m], r.ring[j]) {
				n++
			}
		}
		if n >= s.limit(int(k)-1).Max && (surplus < 0 || newer(r.ring[surplus], r.ring[j])) {
			surplus = j
		}
	}
	if surplus >= 0 {
		return surplus, false
	}
	return oldest, true
}

// setExpiry records the expiry of record i's grant for combo c; most
// grants never expire and cost nothing.
func (s *State) setExpiry(i, c int, exp uint32) {
	x, ok := s.exps[uint32(i)]
	if !ok && exp == 0 {
		return
	}
	x[c] = exp
	if x == ([combos]uint32{}) {
		delete(s.exps, uint32(i))
		return
	}
	s.exps[uint32(i)] = x
}

func (s *State) limit(c int) Limit {
	if isMarketing(c) {
		return s.cfg.Frequency.Marketing
	}
	return s.cfg.Frequency.Service
}

func (s *State) putContract(i int, k contract) {
	r := s.mut(i)
	if r.deal.Pos == 0 || r.deal.Ref == k.Ref {
		r.deal = k
		return
	}
	extra := s.more[uint32(i)]
	for j := range extra {
		if extra[j].Ref == k.Ref {
			extra[j] = k
			return
		}
	}
	s.more[uint32(i)] = append(extra, k)
}

func (s *State) endContract(i int, ref, end uint32) {
	r := s.mut(i)
	if r.deal.Pos != 0 && r.deal.Ref == ref {
		r.deal.End = end
		return
	}
	extra := s.more[uint32(i)]
	for j := range extra {
		if extra[j].Ref == ref {
			extra[j].End = end
		}
	}
}

// renewContract moves a contract's expiry; an ended one stays ended.
func (s *State) renewContract(i int, ref, exp uint32) {
	r := s.mut(i)
	if r.deal.Pos != 0 && r.deal.Ref == ref {
		r.deal.Exp = exp
		return
	}
	extra := s.more[uint32(i)]
	for j := range extra {
		if extra[j].Ref == ref {
			extra[j].Exp = exp
		}
	}
}

func refHash(ref string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(ref))
	return h.Sum32()
}

func covers(list []string, v string) bool {
	if len(list) == 0 {
		return true
	}
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

func channelOf(c int) string { return ledger.Channels[c/2] }
func purposeOf(c int) string { return ledger.Purposes[c%2] }

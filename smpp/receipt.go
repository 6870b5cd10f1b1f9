package smpp

import (
	"strconv"
	"strings"

	"github.com/heed/heed/smpp/pdu"
	"github.com/heed/heed/smpp/text"
)

// State is a message_state (SMPP 3.4 section 5.2.28).
type State byte

// Message states.
const (
	Enroute       State = 1
	Delivered     State = 2
	Expired       State = 3
	Deleted       State = 4
	Undeliverable State = 5
	Accepted      State = 6
	UnknownState  State = 7
	Rejected      State = 8
)

var stateNames = []string{"", "ENROUTE", "DELIVRD", "EXPIRED", "DELETED", "UNDELIV", "ACCEPTD", "UNKNOWN", "REJECTD"}

// String returns the state as the text form of a receipt spells it.
func (s State) String() string {
	if int(s) < len(stateNames) && s != 0 {
		return stateNames[s]
	}
	return "state_" + strconv.Itoa(int(s))
}

// Final reports whether no further receipt will follow this state.
func (s State) Final() bool { return s != 0 && s != Enroute }

func parseStat(s string) State {
	s = strings.ToUpper(s)
	for i, n := range stateNames {
		if n != "" && (s == n || strings.HasPrefix(s, n[:5])) {
			return State(i)
		}
	}
	return 0
}

// Receipt is a delivery receipt.
type Receipt struct {
	// ID is the message id as the receipt gives it.
	ID string
	// SubmitID is the id as submit_sm_resp gave it, when the client could
	// correlate the two (they may differ in base: hex in one, decimal in
	// the other). Empty when unknown.
	SubmitID string
	State    State
	// Err is the error code: network_error_code's code, or the text's err:.
	Err string
}

// Inbound is a deliver_sm (or data_sm) the SMSC sent: a delivery receipt,
// or a mobile-originated message such as a "TD" reply.
type Inbound struct {
	Receipt *Receipt // set for delivery receipts
	From    string   // source_addr
	To      string   // destination_addr
	// FromTON, FromNPI, ToTON and ToNPI are the addresses' type of number
	// (1 international, 2 national, 0 unknown, 3 network specific, 6
	// abbreviated) and numbering plan (1 ISDN/E.164): "13912340002" is a
	// Chinese mobile number with TON 2 and a US one with TON 1.
	FromTON, FromNPI byte
	ToTON, ToNPI     byte
	Text             string // decoded short_message or message_payload
	// Concat is set when the message is one part of a longer one (UDH or
	// sar_* TLVs); the parts of one message share Ref.
	Concat *text.Concat
	PDU    *pdu.PDU
}

// isReceipt reports whether esm_class marks an SMSC delivery receipt or an
// intermediate notification.
func isReceipt(esm byte) bool {
	t := esm & 0x3C
	return t == 0x04 || t == 0x20
}

// ParseInbound reads a deliver_sm or data_sm: receipts come from the TLVs
// first and the text form second.
func ParseInbound(p *pdu.PDU) Inbound {
	in := Inbound{From: p.Source, To: p.Dest, PDU: p,
		FromTON: p.SourceTON, FromNPI: p.SourceNPI, ToTON: p.DestTON, ToNPI: p.DestNPI}
	ud := p.ShortMessage
	if v, ok := p.Get(pdu.TagMessagePayload); ok && len(ud) == 0 {
		ud = v
	}
	if p.ESMClass&0x40 != 0 {
		if c, ok, rest, err := text.ParseUDH(ud); err == nil {
			ud = rest
			if ok {
				in.Concat = &c
			}
		}
	} else if ref, ok := p.Get(pdu.TagSarMsgRefNum); ok {
		tot, _ := p.Get(pdu.TagSarTotalSegments)
		seq, _ := p.Get(pdu.TagSarSegmentSeqnum)
		r, _ := pdu.ParseUint(ref)
		if len(tot) == 1 && len(seq) == 1 {
			in.Concat = &text.Concat{Ref: uint16(r), Total: tot[0], Seq: seq[0]}
		}
	}
	in.Text = text.Decode(p.DataCoding, ud)
	if !isReceipt(p.ESMClass) {
		return in
	}
	r := &Receipt{}
	fields := receiptFields(in.Text)
	if v, ok := p.Get(pdu.TagReceiptedMessageID); ok {
		r.ID = pdu.ParseCString(v)
	} else {
		r.ID = fields["id"]
	}
	if v, ok := p.Get(pdu.TagMessageState); ok && len(v) == 1 {
		r.State = State(v[0])
	} else {
		r.State = parseStat(fields["stat"])
	}
	if v, ok := p.Get(pdu.TagNetworkErrorCode); ok && len(v) == 3 {
		r.Err = strconv.Itoa(int(v[1])<<8 | int(v[2]))
	} else {
		r.Err = fields["err"]
	}
	in.Receipt = r
	return in
}

// receiptFields reads the text form "id:X sub:001 dlvrd:001 submit
// date:... done date:... stat:DELIVRD err:000 text:...". Keys are matched
// without regard to case; "text:" ends the parse since it may hold anything.
func receiptFields(s string) map[string]string {
	f := map[string]string{}
	toks := strings.Fields(s)
	for i := 0; i < len(toks); i++ {
		k, v, ok := strings.Cut(toks[i], ":")
		if !ok {
			// "submit date:..." and "done date:..." are two tokens.
			if j := i + 1; j < len(toks) {
				if k2, v2, ok2 := strings.Cut(toks[j], ":"); ok2 && strings.EqualFold(k2, "date") {
					f[strings.ToLower(k)+" date"] = v2
					i++
				}
			}
			continue
		}
		k = strings.ToLower(k)
		if k == "text" {
			break
		}
		f[k] = v
	}
	return f
}

// SameID reports whether two message ids name the same message, allowing
// for SMSCs that give an id in hex in one place and in decimal in another.
func SameID(a, b string) bool {
	if strings.EqualFold(a, b) {
		return true
	}
	for _, x := range idNumbers(a) {
		for _, y := range idNumbers(b) {
			if x == y {
				return true
			}
		}
	}
	return false
}

// idNumbers returns the values an id may stand for: as decimal, as hex.
func idNumbers(s string) []uint64 {
	var out []uint64
	if s == "" {
		return nil
	}
	if v, err := strconv.ParseUint(s, 10, 64); err == nil {
		out = append(out, v)
	}
	if v, err := strconv.ParseUint(s, 16, 64); err == nil {
		out = append(out, v)
	}
	return out
}

// idTracker remembers recently submitted ids, so a receipt's id can be
// mapped back to the id submit_sm_resp gave, whatever base either used.
// It forgets the oldest beyond its capacity.
type idTracker struct {
	keys map[string]string
	ring []string // the ids in submission order
	next int
}

func newIDTracker(n int) *idTracker {
	return &idTracker{keys: map[string]string{}, ring: make([]string, 0, max(n, 0))}
}

func idKeys(id string) []string {
	keys := []string{"s:" + strings.ToLower(id)}
	for _, n := range idNumbers(id) {
		keys = append(keys, "n:"+strconv.FormatUint(n, 10))
	}
	return keys
}

func (t *idTracker) add(id string) {
	if cap(t.ring) == 0 {
		return
	}
	if len(t.ring) < cap(t.ring) {
		t.ring = append(t.ring, id)
	} else {
		old := t.ring[t.next]
		for _, k := range idKeys(old) {
			if t.keys[k] == old {
				delete(t.keys, k)
			}
		}
		t.ring[t.next] = id
		t.next = (t.next + 1) % cap(t.ring)
	}
	for _, k := range idKeys(id) {
		if _, taken := t.keys[k]; !taken || k[0] == 's' {
			t.keys[k] = id
		}
	}
}

func (t *idTracker) find(id string) string {
	for _, k := range idKeys(id) {
		if v, ok := t.keys[k]; ok {
			return v
		}
	}
	return ""
}

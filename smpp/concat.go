package smpp

import (
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/heed/heed/smpp/text"
)

// Reassembler joins the parts of concatenated mobile-originated messages
// (UDH with an 8- or 16-bit reference, or the sar_* TLVs; see
// [Inbound.Concat]) into whole messages. It holds at most Max messages
// whose parts are still missing and waits Timeout for them; a message given
// up on is handed back with the parts that came, so that it can still be
// recorded. Meta is whatever the caller keeps of a message (taken from its
// first part). The zero value is not ready: use [NewReassembler].
type Reassembler[Meta any] struct {
	max     int
	timeout time.Duration

	mu    sync.Mutex
	held  map[string]*partial[Meta]
	order []*partial[Meta] // by first part's arrival; done ones are skipped
}

type partial[Meta any] struct {
	key   string
	first time.Time
	total int
	parts map[int]string
	meta  Meta
	done  bool
}

// Whole is a message a Reassembler hands back.
type Whole[Meta any] struct {
	Meta Meta
	// Text is the parts received, in order.
	Text string
	// Total is the parts announced, Got those received; Got < Total for a
	// message given up on.
	Total, Got int
	p          *partial[Meta]
}

// Complete reports whether every part came.
func (w Whole[Meta]) Complete() bool { return w.Got == w.Total }

// NewReassembler returns a Reassembler holding at most max incomplete
// messages (zero: 10,000) for at most timeout each (zero: a minute).
func NewReassembler[Meta any](max int, timeout time.Duration) *Reassembler[Meta] {
	if max <= 0 {
		max = 10_000
	}
	if timeout <= 0 {
		timeout = time.Minute
	}
	return &Reassembler[Meta]{max: max, timeout: timeout, held: map[string]*partial[Meta]{}}
}

// Add takes one message or part. key names the conversation the part
// belongs to (typically SMSC, sender and recipient); c is nil for a
// message in one part. It returns the messages now whole: this one if it
// is complete, and any given up on because they timed out or the buffer
// was full.
func (r *Reassembler[Meta]) Add(key string, c *text.Concat, s string, meta Meta, now time.Time) []Whole[Meta] {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.expire(now, nil)
	if c == nil || c.Total <= 1 || c.Seq == 0 || c.Seq > c.Total {
		// One part, or a header that cannot be joined: take it as it is.
		return append(out, Whole[Meta]{Meta: meta, Text: s, Total: 1, Got: 1})
	}
	k := key + "\x00" + strconv.Itoa(int(c.Ref)) + "/" + strconv.Itoa(int(c.Total))
	p := r.held[k]
	if p == nil {
		if len(r.held) >= r.max {
			out = r.giveUp(r.oldest(), out)
		}
		p = &partial[Meta]{key: k, first: now, total: int(c.Total), parts: map[int]string{}, meta: meta}
		r.held[k] = p
		r.order = append(r.order, p)
	}
	if _, dup := p.parts[int(c.Seq)]; !dup {
		p.parts[int(c.Seq)] = s
	}
	if len(p.parts) == p.total {
		out = r.giveUp(p, out)
	}
	return out
}

// Expire hands back the messages whose parts have been awaited longer
// than the timeout, with the parts that came.
func (r *Reassembler[Meta]) Expire(now time.Time) []Whole[Meta] {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.expire(now, nil)
}

// Held is how many messages wait for parts.
func (r *Reassembler[Meta]) Held() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.held)
}

func (r *Reassembler[Meta]) expire(now time.Time, out []Whole[Meta]) []Whole[Meta] {
	for {
		p := r.oldest()
		if p == nil || now.Sub(p.first) < r.timeout {
			return out
		}
		out = r.giveUp(p, out)
	}
}

// oldest returns the message held longest, dropping finished ones from
// the front of the order.
func (r *Reassembler[Meta]) oldest() *partial[Meta] {
	for len(r.order) > 0 && r.order[0].done {
		r.order[0] = nil
		r.order = r.order[1:]
	}
	if len(r.order) == 0 {
		return nil
	}
	return r.order[0]
}

// giveUp removes p and appends it, joined, to out.
func (r *Reassembler[Meta]) giveUp(p *partial[Meta], out []Whole[Meta]) []Whole[Meta] {
	if p == nil || p.done {
		return out
	}
	p.done = true
	delete(r.held, p.key)
	var b strings.Builder
	for i := 1; i <= p.total; i++ {
		b.WriteString(p.parts[i])
	}
	if len(r.order) > 64 && len(r.order) > 2*len(r.held) {
		live := r.order[:0]
		for _, q := range r.order {
			if !q.done {
				live = append(live, q)
			}
		}
		clear(r.order[len(live):])
		r.order = live
	}
	return append(out, Whole[Meta]{Meta: p.meta, Text: b.String(), Total: p.total, Got: len(p.parts), p: p})
}

// Retain holds a message Add handed back whole again, without its part
// seq, as if that part had not come yet: for a caller that could not act
// on the message and has the sender deliver that part again (an SMSC does,
// when deliver_sm is answered with an error), so the earlier parts are
// not lost. It is a no-op for a message in one part or one already held
// again.
func (r *Reassembler[Meta]) Retain(w Whole[Meta], seq byte, now time.Time) {
	p := w.p
	if p == nil || p.total <= 1 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, held := r.held[p.key]; held {
		return
	}
	parts := make(map[int]string, len(p.parts))
	for i, s := range p.parts {
		if i != int(seq) {
			parts[i] = s
		}
	}
	if len(r.held) >= r.max {
		return
	}
	q := &partial[Meta]{key: p.key, first: now, total: p.total, parts: parts, meta: p.meta}
	r.held[q.key] = q
	r.order = append(r.order, q)
}

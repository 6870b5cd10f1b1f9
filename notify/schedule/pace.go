package schedule

import (
	"sync"
	"time"
)

// pacer spaces submits by line and by SMSC: each has a token bucket
// holding a second's worth, and a timer waits for a token of both.
type pacer struct {
	mu               sync.Mutex
	line, smsc       float64
	lineRate, smscOf map[string]float64
	smscName         func(string) string
	buckets          map[string]*bucket
}

type bucket struct {
	rate, tokens float64
	last         time.Time
}

func newPacer(cfg Config) *pacer {
	return &pacer{line: cfg.LineRate, smsc: cfg.SMSCRate, lineRate: cfg.LineRates, smscOf: cfg.SMSCRates,
		smscName: cfg.SMSCOf, buckets: map[string]*bucket{}}
}

// reserve takes a token for a submit on line and returns when it may go.
func (p *pacer) reserve(line string, now time.Time) time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	at := now
	rate := p.line
	if r, ok := p.lineRate[line]; ok {
		rate = r
	}
	if t := p.take("line\x00"+line, rate, now); t.After(at) {
		at = t
	}
	smsc := p.smscName(line)
	rate = p.smsc
	if r, ok := p.smscOf[smsc]; ok {
		rate = r
	}
	if t := p.take("smsc\x00"+smsc, rate, now); t.After(at) {
		at = t
	}
	return at
}

func (p *pacer) take(name string, rate float64, now time.Time) time.Time {
	if rate <= 0 {
		return now
	}
	b := p.buckets[name]
	if b == nil {
		b = &bucket{rate: rate, tokens: rate, last: now}
		p.buckets[name] = b
	}
	if now.After(b.last) {
		b.tokens = min(b.rate, b.tokens+now.Sub(b.last).Seconds()*b.rate)
		b.last = now
	}
	b.tokens--
	if b.tokens >= 0 {
		return now
	}
	return now.Add(time.Duration(-b.tokens / b.rate * float64(time.Second)))
}

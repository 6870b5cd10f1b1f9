package book

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"time"
)

// Synthetic returns a CSV book of n rows, written as it is read (it holds
// one row at a time): row i is the Chinese mobile +86138 followed by
// (first+i) mod 10^8 in eight digits, contract ref SYN-<first+i>, a product, a start a year
// before at and an expiry spread over the 360 days after it, and plan (no
// plan column when empty). Books with first values n apart share no
// number and no ref.
func Synthetic(n int, first uint64, plan string, at time.Time) io.Reader {
	return &synthetic{n: n, first: first, plan: plan, at: at.UTC()}
}

type synthetic struct {
	n, i  int
	first uint64
	plan  string
	at    time.Time
	buf   []byte
	head  bool
}

func (s *synthetic) Read(p []byte) (int, error) {
	for len(s.buf) == 0 {
		switch {
		case !s.head:
			s.head = true
			s.buf = append(s.buf, "number,contract_ref,product,starts_at,expires_at"...)
			if s.plan != "" {
				s.buf = append(s.buf, ",plan"...)
			}
			s.buf = append(s.buf, '\n')
		case s.i < s.n:
			k := s.first + uint64(s.i)
			s.i++
			s.buf = fmt.Appendf(s.buf, "+86138%08d,SYN-%d,car insurance,", k%100_000_000, k)
			s.buf = s.at.AddDate(-1, 0, 0).AppendFormat(s.buf, time.DateOnly)
			s.buf = append(s.buf, ',')
			s.buf = s.at.AddDate(0, 0, int(k%360)+1).AppendFormat(s.buf, time.DateOnly)
			if s.plan != "" {
				s.buf = append(s.buf, ',')
				s.buf = append(s.buf, s.plan...)
			}
			s.buf = append(s.buf, '\n')
		default:
			return 0, io.EOF
		}
	}
	n := copy(p, s.buf)
	s.buf = s.buf[n:]
	if len(s.buf) == 0 {
		s.buf = s.buf[:0:cap(s.buf)]
	}
	return n, nil
}

// Result is what Bench measured.
type Result struct {
	Counts
	Elapsed time.Duration
	// PerSecond is rows recorded per second of the whole run.
	PerSecond float64
}

func (r Result) String() string {
	return "imported_per_s=" + strconv.FormatFloat(r.PerSecond, 'f', 0, 64) +
		fmt.Sprintf(" rows=%d recorded=%d already=%d refused=%d", r.Rows, r.Recorded, r.Already, r.Refused)
}

// Bench imports a synthetic book of n rows (see Synthetic, from first,
// naming plan) with cfg and measures the rate: what `heed bench schedule`
// reports as its import rate.
func Bench(ctx context.Context, cfg Config, n int, first uint64, plan string) (Result, error) {
	im, err := New(cfg)
	if err != nil {
		return Result{}, err
	}
	now := time.Now()
	if cfg.Now != nil {
		now = cfg.Now()
	}
	start := time.Now()
	c, err := im.Run(ctx, Synthetic(n, first, plan, now), CSV)
	el := time.Since(start)
	return Result{Counts: c, Elapsed: el, PerSecond: float64(c.Recorded+c.Already) / el.Seconds()}, err
}

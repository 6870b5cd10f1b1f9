package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/heed/heed/smpp"
)

// SMSCs sends through named SMPP connections: each line's messages
// through the connection that carries it, sign-in codes from their own
// line. It is the [Sender] of a [Notifier] and delivers what the SMSCs
// send back to that notifier (see [SMSCs.Handler]).
type SMSCs struct {
	byLine map[string]string // line → connection
	def    string            // the connection of every other line
	names  []string          // sorted
	verify string            // the line sign-in codes go from
	pool   *smpp.Pool
	n      atomic.Pointer[Notifier]

	// OnSubmit, OnResponse and OnReceipt, if set, count each submit, each
	// answer (its command_status, 0x00000000 for success) and each final
	// receipt (its state), per connection.
	OnSubmit   func(smsc string)
	OnResponse func(smsc, status string)
	OnReceipt  func(smsc, state string)
}

// SMSCRoute is one connection's name and the lines it carries.
type SMSCRoute struct {
	Name  string
	Lines []string
}

// NewSMSCs routes each line to the connection that names it and every
// other line to the first connection. Sign-in codes go from verifyLine.
// Bind the connections with Bind.
func NewSMSCs(routes []SMSCRoute, verifyLine string) *SMSCs {
	s := &SMSCs{byLine: map[string]string{}, verify: verifyLine}
	for i, r := range routes {
		s.names = append(s.names, r.Name)
		if i == 0 {
			s.def = r.Name
		}
		for _, l := range r.Lines {
			s.byLine[l] = r.Name
		}
	}
	slices.Sort(s.names)
	return s
}

// Bind starts a client for each connection (see [smpp.NewPool]); each
// config's Handler should be [SMSCs.Handler] of its name.
func (s *SMSCs) Bind(cfgs map[string]smpp.Config) { s.pool = smpp.NewPool(cfgs) }

// Attach makes n the notifier that receipts and replies go to. Until then
// they are refused, and the SMSC delivers them again later.
func (s *SMSCs) Attach(n *Notifier) { s.n.Store(n) }

// Names returns the connections' names, sorted.
func (s *SMSCs) Names() []string { return s.names }

// Route names the connection a line's messages go through.
func (s *SMSCs) Route(line string) string {
	if name, ok := s.byLine[line]; ok {
		return name
	}
	return s.def
}

// Link is one connection's state, for readiness and metrics.
type Link struct {
	Name  string
	Stats smpp.Stats
}

// Links returns each connection's state, in name order.
func (s *SMSCs) Links() []Link {
	out := make([]Link, 0, len(s.names))
	for _, name := range s.names {
		c, _ := s.pool.Client(name)
		out = append(out, Link{name, c.Stats()})
	}
	return out
}

func (s *SMSCs) submit(ctx context.Context, smsc string, m smpp.Message) (smpp.Result, error) {
	if s.OnSubmit != nil {
		s.OnSubmit(smsc)
	}
	res, err := s.pool.Submit(ctx, smsc, m)
	if s.OnResponse != nil {
		status := "0x00000000"
		var se *smpp.Error
		if errors.As(err, &se) {
			status = fmt.Sprintf("0x%08x", uint32(se.Status))
		}
		s.OnResponse(smsc, status)
	}
	return res, err
}

// Submit sends m through its line's connection, its error wrapping
// [ErrPermanent], [ErrUnavailable] or [ErrNotSent] as [Sender] asks.
func (s *SMSCs) Submit(ctx context.Context, m Message) ([]string, error) {
	res, err := s.submit(ctx, s.Route(m.Line), smpp.Message{To: strings.TrimPrefix(m.Number, "+"), Text: m.Text, Flash: m.Flash,
		RegisteredDelivery: 1, From: m.Line})
	switch smpp.KindOf(err) {
	case 0:
		return res.IDs, err
	case smpp.Permanent:
		return nil, fmt.Errorf("%w: %v", ErrPermanent, err)
	case smpp.NotSent:
		if errors.Is(err, smpp.ErrNotBound) {
			return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		return nil, fmt.Errorf("%w: %v", ErrNotSent, err)
	}
	return res.IDs, err
}

// SendText sends a sign-in code from the verify line.
func (s *SMSCs) SendText(ctx context.Context, e164, text string) error {
	_, err := s.submit(ctx, s.Route(s.verify), smpp.Message{To: strings.TrimPrefix(e164, "+"), Text: text, From: s.verify})
	return err
}

// Handler returns the [smpp.Config] Handler of the connection smsc: it
// hands final receipts and replies to the attached notifier.
func (s *SMSCs) Handler(smsc string) func(smpp.Inbound) error {
	return func(in smpp.Inbound) error {
		n := s.n.Load()
		if n == nil {
			return errors.New("notify: not ready")
		}
		ctx := context.Background()
		if r := in.Receipt; r != nil {
			if !r.State.Final() {
				return nil
			}
			if s.OnReceipt != nil {
				s.OnReceipt(smsc, r.State.String())
			}
			id := r.SubmitID
			if id == "" {
				id = r.ID
			}
			return n.OnReceipt(ctx, Receipt{MessageID: id, Delivered: r.State == smpp.Delivered, Status: r.State.String()})
		}
		// The notifier reads the sender by its TON and NPI and records what
		// it cannot act on; an error makes the SMSC deliver again later.
		_, err := n.OnInbound(ctx, Inbound{From: in.From, FromTON: in.FromTON, FromNPI: in.FromNPI,
			To: in.To, Text: in.Text, SMSC: smsc, Concat: in.Concat})
		return err
	}
}

// Close unbinds every connection, waiting until ctx ends for submits in
// flight and for the SMSC's answers.
func (s *SMSCs) Close(ctx context.Context, log *slog.Logger) {
	if s.pool == nil {
		return
	}
	for _, name := range s.names {
		c, _ := s.pool.Client(name)
		if err := c.Close(ctx); err != nil {
			log.Warn("unbind", "smsc", name, "err", err)
		} else {
			log.Info("smpp unbound", "smsc", name)
		}
	}
}

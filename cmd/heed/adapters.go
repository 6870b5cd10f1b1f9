package main

import (
	"context"
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/heed/heed/api"
	"github.com/heed/heed/ledger"
	"github.com/heed/heed/ledger/bundle"
	"github.com/heed/heed/ledger/merkle"
	"github.com/heed/heed/ledger/pii"
	"github.com/heed/heed/notify"
	"github.com/heed/heed/smpp"
)

// The adapters below connect the parts to the small interfaces api and
// notify define for what they consume.

// pseudonymizer keys numbers with the ledger's pseudonym key.
type pseudonymizer struct{ d *dataDir }

func (p pseudonymizer) Pseudonym(e164 string) string {
	return pii.Pseudonym(p.d.Secrets.PseudonymKey, e164)
}

// decisionKey keys the tags of decision ids. It is derived from the
// pseudonym key, which every instance on one log shares, so an id one
// instance issued verifies on another and no new secret is kept.
func decisionKey(pseudonymKey []byte) []byte {
	k, err := hkdf.Key(sha256.New, pseudonymKey, nil, "heed decision tags v1", 32)
	if err != nil {
		panic(err) // only for a length sha256 cannot give
	}
	return k
}

// smppSender submits through the SMSC that carries each line, and counts
// what happens.
type smppSender struct {
	pool   *smpp.Pool
	names  []string          // of the pool's connections, sorted
	byLine map[string]string // line → SMSC name
	def    string            // the SMSC of every other line
	verify string            // the line sign-in codes go from
	m      *api.Metrics
}

// smscLink is one SMSC connection's state, for readiness and metrics.
type smscLink struct {
	name string
	st   smpp.Stats
}

func (s *smppSender) links() []smscLink {
	out := make([]smscLink, 0, len(s.names))
	for _, name := range s.names {
		c, _ := s.pool.Client(name)
		out = append(out, smscLink{name, c.Stats()})
	}
	return out
}

// route names the SMSC a line's messages go through.
func (s *smppSender) route(line string) string {
	if name, ok := s.byLine[line]; ok {
		return name
	}
	return s.def
}

func (s *smppSender) submit(ctx context.Context, smsc string, m smpp.Message) (smpp.Result, error) {
	s.m.SMPPSubmits.WithLabelValues(smsc).Inc()
	res, err := s.pool.Submit(ctx, smsc, m)
	status := "0x00000000"
	var se *smpp.Error
	if errors.As(err, &se) {
		status = fmt.Sprintf("0x%08x", uint32(se.Status))
	}
	s.m.SMPPResponses.WithLabelValues(smsc, status).Inc()
	return res, err
}

func (s *smppSender) Submit(ctx context.Context, m notify.Message) ([]string, error) {
	res, err := s.submit(ctx, s.route(m.Line), smpp.Message{To: strings.TrimPrefix(m.Number, "+"), Text: m.Text, Flash: m.Flash,
		RegisteredDelivery: 1, From: m.Line})
	switch smpp.KindOf(err) {
	case 0:
		return res.IDs, err
	case smpp.Permanent:
		return nil, fmt.Errorf("%w: %v", notify.ErrPermanent, err)
	case smpp.NotSent:
		if errors.Is(err, smpp.ErrNotBound) {
			return nil, fmt.Errorf("%w: %v", notify.ErrUnavailable, err)
		}
		return nil, fmt.Errorf("%w: %v", notify.ErrNotSent, err)
	}
	return res.IDs, err
}

func (s *smppSender) SendText(ctx context.Context, e164, text string) error {
	_, err := s.submit(ctx, s.route(s.verify), smpp.Message{To: strings.TrimPrefix(e164, "+"), Text: text, From: s.verify})
	return err
}

// inbound routes what the SMSC delivers: receipts and opt-out replies.
func inbound(ctx context.Context, n *notify.Notifier, m *api.Metrics, smsc string, in smpp.Inbound) error {
	if r := in.Receipt; r != nil {
		if !r.State.Final() {
			return nil
		}
		m.SMPPReceipts.WithLabelValues(smsc, r.State.String()).Inc()
		id := r.SubmitID
		if id == "" {
			id = r.ID
		}
		return n.OnReceipt(ctx, notify.Receipt{MessageID: id, Delivered: r.State == smpp.Delivered, Status: r.State.String()})
	}
	// The notifier reads the sender by its TON and NPI and records what it
	// cannot act on; an error makes the SMSC deliver again later.
	_, err := n.OnInbound(ctx, notify.Inbound{From: in.From, FromTON: in.FromTON, FromNPI: in.FromNPI,
		To: in.To, Text: in.Text, SMSC: smsc, Concat: in.Concat})
	return err
}

// ledgerParts are the log and its tree, whichever store holds them.
type ledgerParts struct {
	d      *dataDir
	base   ledger.Store
	hashes tlog.HashReader
	// seal cuts a checkpoint now; nil when another process seals (KurrentDB).
	seal func(context.Context) (merkle.Checkpoint, error)
}

// auditor serves checkpoints, proofs and bundles.
type auditor struct{ l ledgerParts }

func (a auditor) latest(ctx context.Context) (merkle.Checkpoint, error) {
	if a.l.seal != nil {
		// Cover every event acknowledged so far.
		if cp, err := a.l.seal(ctx); err == nil || !errors.Is(err, merkle.ErrNotFound) {
			return cp, err
		}
	}
	// Another instance may hold the sealing lease: wait briefly for a
	// checkpoint that covers the head.
	deadline := time.Now().Add(5 * time.Second)
	for {
		cp, err := a.l.d.Checkpoints.Latest()
		head, herr := a.l.base.Head(ctx)
		if herr != nil {
			return merkle.Checkpoint{}, herr
		}
		if (err == nil && uint64(cp.Size) >= head) || time.Now().After(deadline) {
			return cp, err
		}
		if err := ctx.Err(); err != nil {
			return merkle.Checkpoint{}, err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (a auditor) Checkpoint(ctx context.Context) (api.Checkpoint, error) {
	cp, err := a.latest(ctx)
	if err != nil {
		return api.Checkpoint{}, err
	}
	return api.Checkpoint{Size: cp.Size, Root: cp.Root[:], Note: string(cp.Note)}, nil
}

func (a auditor) Inclusion(_ context.Context, position, size int64) ([][]byte, error) {
	p, err := merkle.Inclusion(a.l.hashes, position, size)
	return hashes(p), err
}

func (a auditor) Consistency(_ context.Context, older, newer int64) ([][]byte, error) {
	p, err := merkle.Consistency(a.l.hashes, older, newer)
	return hashes(p), err
}

func hashes(hs []tlog.Hash) [][]byte {
	out := make([][]byte, len(hs))
	for i := range hs {
		out[i] = hs[i][:]
	}
	return out
}

func (a auditor) Bundle(ctx context.Context, w io.Writer) error {
	cp, err := a.latest(ctx)
	if err != nil && !errors.Is(err, merkle.ErrNotFound) {
		return err
	}
	cps, err := a.l.d.checkpoints(cp.Size)
	if err != nil {
		return err
	}
	return bundle.Export(ctx, w, a.l.base, a.l.d.Origin, a.l.d.Secrets.VerifierKey, cps, bundle.ExportOptions{Size: cp.Size})
}

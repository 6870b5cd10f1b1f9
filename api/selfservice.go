package api

import (
	"context"
	"errors"
	"net/http"
	"slices"

	"github.com/danielgtaylor/huma/v2"
	"github.com/google/uuid"

	"github.com/heed/heed/ledger"
	"github.com/heed/heed/notify"
)

// A customer's own actions, from /me or the API with a customer session:
// stop a business contacting them, complain about one contact. Each is
// recorded via self-service in that business's contact stream, by the
// actor "customer".

const customerActor = "customer"

type meWithdrawalIn struct {
	Body struct {
		Tenant   string    `json:"tenant" minLength:"1" maxLength:"64" pattern:"^[A-Za-z0-9_.]+$" doc:"the business to stop, as GET /v1/me/contacts names it"`
		Channels []channel `json:"channels,omitempty" maxItems:"3" doc:"stop these channels only; empty: every channel"`
		Purposes []purpose `json:"purposes,omitempty" maxItems:"2" doc:"stop these purposes only; empty: every purpose"`
	}
}

type meComplaintIn struct {
	Body struct {
		Tenant  string `json:"tenant" minLength:"1" maxLength:"64" pattern:"^[A-Za-z0-9_.]+$" doc:"the business that made the contact"`
		Contact string `json:"contact" minLength:"1" maxLength:"256" doc:"the contact's id as GET /v1/me/contacts lists it (a contact's event id, or a reminder's id)"`
		Reason  string `json:"reason,omitempty" maxLength:"1000" doc:"what happened, in the customer's words; sealed like every personal field"`
	}
}

func (s *Server) registerCustomerActions() {
	mw := huma.Middlewares{s.requireCustomer}
	sec := []map[string][]string{{"customer": {}}}
	huma.Register(s.api, huma.Operation{OperationID: "customer-withdrawal", Method: http.MethodPost, Path: "/v1/me/withdrawals",
		Summary:     "Stop a business contacting me: every contact, or some channels or purposes",
		Description: "Records ConsentWithdrawn via self-service in that business's contact stream. It holds until the customer agrees again.",
		Tags:        []string{"customer"}, Middlewares: mw, Security: sec, DefaultStatus: http.StatusCreated, Errors: []int{400, 401, 422}},
		func(ctx context.Context, in *meWithdrawalIn) (*writeOutput, error) {
			e, err := s.customerWithdraw(ctx, who(ctx).number, in.Body.Tenant, strs(in.Body.Channels), strs(in.Body.Purposes))
			if err != nil {
				return nil, selfServiceProblem(err)
			}
			return &writeOutput{Status: http.StatusCreated, Body: written(e, false)}, nil
		})
	huma.Register(s.api, huma.Operation{OperationID: "customer-complaint", Method: http.MethodPost, Path: "/v1/me/complaints",
		Summary:     "Complain about one contact or reminder I received",
		Description: "Records ComplaintReceived (source customer, via self-service) against the line the contact came from, which counts toward that line's complaint rate. A second complaint about the same contact records nothing and answers 200 with the first.",
		Tags:        []string{"customer"}, Middlewares: mw, Security: sec, DefaultStatus: http.StatusCreated, Errors: []int{400, 401, 422}},
		func(ctx context.Context, in *meComplaintIn) (*writeOutput, error) {
			e, again, err := s.customerComplain(ctx, who(ctx).number, in.Body.Tenant, in.Body.Contact, in.Body.Reason)
			if err != nil {
				return nil, selfServiceProblem(err)
			}
			out := &writeOutput{Status: http.StatusCreated, Body: written(e, again)}
			if again {
				out.Status = http.StatusOK
			}
			return out, nil
		})
}

// Why a customer's action was refused; selfServiceProblem says it to the
// API, selfServiceError to the page.
var (
	errUnknownBusiness = errors.New("api: no business of that name holds data about the number")
	errUnknownContact  = errors.New("api: no such contact from that business")
	errNeverSent       = errors.New("api: that reminder was never sent")
)

func selfServiceProblem(err error) error {
	switch {
	case errors.Is(err, errUnknownBusiness):
		return huma.Error422UnprocessableEntity("no business of that name holds data about your number",
			&huma.ErrorDetail{Location: "body.tenant", Message: "not a business on your contact list"})
	case errors.Is(err, errUnknownContact):
		return huma.Error422UnprocessableEntity("no such contact from that business",
			&huma.ErrorDetail{Location: "body.contact", Message: "not a contact or reminder of that business to your number"})
	case errors.Is(err, errNeverSent):
		return huma.Error422UnprocessableEntity("that reminder was never sent",
			&huma.ErrorDetail{Location: "body.contact", Message: "nothing was sent, so there is nothing to complain about"})
	}
	return err
}

// knownTo checks that tenant recorded something about subject.
func (s *Server) knownTo(ctx context.Context, subject, tenant string) error {
	tenants, err := s.contacts.Tenants(ctx, subject)
	if err != nil {
		return s.storeError("contacts", err)
	}
	if !slices.Contains(tenants, tenant) {
		return errUnknownBusiness
	}
	return nil
}

// customerWithdraw records a customer's opt-out at one business: of every
// contact when channels and purposes are both empty. It passes the gate,
// so no reminder decided before it is submitted after it.
func (s *Server) customerWithdraw(ctx context.Context, e164, tenant string, channels, purposes []string) (ledger.Event, error) {
	subject := s.cfg.Pseudonyms.Pseudonym(e164)
	if err := s.knownTo(ctx, subject, tenant); err != nil {
		return ledger.Event{}, err
	}
	w := &ledger.ConsentWithdrawn{Channels: dedupe(channels), Purposes: dedupe(purposes), Via: ledger.ViaSelfService}
	w.All = len(w.Channels) == 0 && len(w.Purposes) == 0
	ev, err := ledger.NewEvent(tenant, subject, s.cfg.Now(), w)
	if err != nil {
		return ledger.Event{}, s.storeError("withdraw", err)
	}
	ev.Actor = customerActor
	var e ledger.Event
	err = s.cfg.Gate.Exclusive(subject, func() error {
		var err error
		e, _, err = s.append(ctx, ledger.ContactStream(tenant, subject), ev, nil)
		return err
	})
	return e, err
}

// complaintIDs namespaces the ids of self-service complaints: one per
// contact and subject.
var complaintIDs = uuid.MustParse("0d6f4a8e-3f0e-4a54-9a51-2b7c9d1e6f10")

// customerComplain records a customer's complaint about one contact,
// against the line it came from; again is true when the customer had
// already complained about it, and e is that first complaint.
func (s *Server) customerComplain(ctx context.Context, e164, tenant, contact, reason string) (e ledger.Event, again bool, err error) {
	subject := s.cfg.Pseudonyms.Pseudonym(e164)
	if err := s.knownTo(ctx, subject, tenant); err != nil {
		return ledger.Event{}, false, err
	}
	cs, err := s.contactsOf(ctx, e164)
	if err != nil {
		return ledger.Event{}, false, s.storeError("contacts", err)
	}
	i := slices.IndexFunc(cs, func(c Contact) bool { return c.Tenant == tenant && c.ID == contact && c.Kind != "access" })
	if i < 0 {
		return ledger.Event{}, false, errUnknownContact
	}
	c := cs[i]
	if c.Kind == "reminder" && (c.State == notify.StateDenied || c.State == notify.StateRequested) {
		return ledger.Event{}, false, errNeverSent
	}
	stream := ledger.ContactStream(tenant, subject)
	if prev, ok, err := s.complained(ctx, stream, contact); err != nil || ok {
		return prev, ok, err
	}
	ev, err := ledger.NewEvent(tenant, subject, s.cfg.Now(), &ledger.ComplaintReceived{Line: c.Line, Channel: c.Channel,
		Source: "customer", Reason: reason, Via: ledger.ViaSelfService, Contact: contact})
	if err != nil {
		return ledger.Event{}, false, s.storeError("complain", err)
	}
	ev.ID = uuid.NewSHA1(complaintIDs, []byte(tenant+"\x00"+subject+"\x00"+contact)).String()
	ev.Actor = customerActor
	e, replayed, err := s.append(ctx, stream, ev, nil)
	if err != nil {
		// Two complaints about one contact at once: the other won.
		if prev, ok, rerr := s.complained(ctx, stream, contact); rerr == nil && ok {
			return prev, true, nil
		}
		return ledger.Event{}, false, err
	}
	return e, replayed, nil
}

// complained finds the customer's complaint about contact in stream.
func (s *Server) complained(ctx context.Context, stream, contact string) (ledger.Event, bool, error) {
	evs, err := s.cfg.Store.ReadStream(ctx, stream, 1, 0)
	if err != nil && !errors.Is(err, ledger.ErrNotFound) {
		return ledger.Event{}, false, s.storeError("complain", err)
	}
	for i := range evs {
		if evs[i].Type != ledger.TypeComplaintReceived {
			continue
		}
		if p, err := ledger.Decode(&evs[i]); err == nil {
			if c := p.(*ledger.ComplaintReceived); c.Via == ledger.ViaSelfService && c.Contact == contact {
				return evs[i], true, nil
			}
		}
	}
	return ledger.Event{}, false, nil
}

func dedupe(xs []string) []string {
	var out []string
	for _, x := range xs {
		if !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	return out
}

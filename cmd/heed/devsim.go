package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"

	"github.com/heed/heed/api/auth"
	"github.com/heed/heed/smpp/sim"
	"github.com/heed/heed/smpp/text"
)

// simOutbox keeps what the in-process simulator accepted, for /dev/sim/outbox.
type simOutbox struct {
	mu   sync.Mutex
	msgs []outboxMessage
}

type outboxMessage struct {
	To    string `json:"to"`
	From  string `json:"from"`
	Text  string `json:"text"`
	Flash bool   `json:"flash"`
	ID    string `json:"id"`
}

func (o *simOutbox) add(s sim.Submit) {
	p := s.PDU
	body := p.ShortMessage
	if p.ESMClass&0x40 != 0 && len(body) > 0 && int(body[0])+1 <= len(body) {
		body = body[int(body[0])+1:] // drop the UDH
	}
	m := outboxMessage{To: p.Dest, From: p.Source, Text: text.Decode(p.DataCoding, body), ID: s.ID,
		Flash: p.DataCoding&0x13 == 0x10 || p.DataCoding&0xf3 == 0xf0}
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.msgs) >= 10_000 {
		o.msgs = o.msgs[1:]
	}
	o.msgs = append(o.msgs, m)
}

// routes serves the simulator's outbox and MO injection to admin keys.
func (o *simOutbox) routes(mux *http.ServeMux, keys *auth.Keys, s *sim.Server) {
	admin := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			k, err := keys.Lookup(strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "))
			if err != nil || k.Role != auth.RoleAdmin {
				http.Error(w, "admin key required", http.StatusUnauthorized)
				return
			}
			h(w, r)
		}
	}
	mux.HandleFunc("GET /dev/sim/outbox", admin(func(w http.ResponseWriter, r *http.Request) {
		to := strings.TrimPrefix(r.URL.Query().Get("to"), "+")
		o.mu.Lock()
		out := []outboxMessage{}
		for _, m := range o.msgs {
			if to == "" || m.To == to {
				out = append(out, m)
			}
		}
		o.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(out)
	}))
	mux.HandleFunc("POST /dev/sim/mo", admin(func(w http.ResponseWriter, r *http.Request) {
		var mo sim.MO
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&mo); err != nil {
			http.Error(w, "want {From, To, Text}", http.StatusBadRequest)
			return
		}
		mo.From = strings.TrimPrefix(mo.From, "+")
		if err := s.Inject("", mo); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	}))
}

package api

import (
	"embed"
	"errors"
	"html/template"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"
)

//go:embed templates/*.html
var templateFS embed.FS

var pages = template.Must(template.ParseFS(templateFS, "templates/*.html"))

// customerCookie holds a customer's session token in the browser.
const customerCookie = "heed_customer"

type mePage struct {
	Title, Step, Number, Error, Notice string
	Contacts                           []Contact
}

func (s *Server) registerWeb() {
	s.mux.HandleFunc("GET /me", s.mePage)
	s.mux.HandleFunc("POST /me/challenge", s.meChallenge)
	s.mux.HandleFunc("POST /me/session", s.meSession)
	s.mux.HandleFunc("POST /me/erasure", s.meErasure)
	s.mux.HandleFunc("POST /me/logout", func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: customerCookie, Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
		http.Redirect(w, r, "/me", http.StatusSeeOther)
	})
}

func (s *Server) render(w http.ResponseWriter, status int, name string, data any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if err := pages.ExecuteTemplate(w, name, data); err != nil {
		s.cfg.Log.Error("render", "page", name, "err", err)
	}
}

// problemText turns an API error into a sentence for a page.
func problemText(err error) (int, string) {
	var se huma.StatusError
	if errors.As(err, &se) {
		var m *huma.ErrorModel
		if errors.As(err, &m) {
			return se.GetStatus(), m.Detail
		}
		return se.GetStatus(), http.StatusText(se.GetStatus())
	}
	return http.StatusInternalServerError, "something went wrong"
}

func (s *Server) remoteHost(r *http.Request) string {
	return clientIP(r.RemoteAddr, r.Header.Values("X-Forwarded-For"), s.cfg.TrustedProxies)
}

// signedIn returns the number of the page's customer session; without
// one it renders the sign-in step and returns "".
func (s *Server) signedIn(w http.ResponseWriter, r *http.Request) string {
	c, err := r.Cookie(customerCookie)
	if err != nil {
		s.render(w, http.StatusOK, "me.html", mePage{Title: "My contacts", Step: "number"})
		return ""
	}
	number, err := s.cfg.Sessions.Number(c.Value)
	if err != nil {
		s.render(w, http.StatusOK, "me.html", mePage{Title: "My contacts", Step: "number", Error: "Your session ended; sign in again."})
		return ""
	}
	return number
}

// meErasure erases the customer's personal data at every business; the
// session cookie is SameSite=Strict, so another site cannot post it.
func (s *Server) meErasure(w http.ResponseWriter, r *http.Request) {
	number := s.signedIn(w, r)
	if number == "" {
		return
	}
	notice := "Your personal data was erased at every business that held it. Your opt-outs still apply."
	if _, err := s.customerErase(r.Context(), number, ""); err != nil {
		_, notice = problemText(err)
	}
	s.contactsPage(w, r, number, notice)
}

func (s *Server) mePage(w http.ResponseWriter, r *http.Request) {
	if number := s.signedIn(w, r); number != "" {
		s.contactsPage(w, r, number, "")
	}
}

func (s *Server) contactsPage(w http.ResponseWriter, r *http.Request, number, notice string) {
	cs, err := s.contactsOf(r.Context(), number)
	if err != nil {
		s.cfg.Log.Error("contacts page", "err", err)
		s.render(w, http.StatusInternalServerError, "me.html", mePage{Title: "My contacts", Step: "number", Error: "Could not read your contacts."})
		return
	}
	s.render(w, http.StatusOK, "me.html", mePage{Title: "My contacts", Step: "contacts", Contacts: cs, Notice: notice})
}

func (s *Server) meChallenge(w http.ResponseWriter, r *http.Request) {
	number := typed(r.PostFormValue("number"))
	if err := s.challenge(r.Context(), number, s.remoteHost(r)); err != nil {
		st, msg := problemText(err)
		s.render(w, st, "me.html", mePage{Title: "My contacts", Step: "number", Error: msg})
		return
	}
	s.render(w, http.StatusOK, "me.html", mePage{Title: "My contacts", Step: "code", Number: number})
}

func (s *Server) meSession(w http.ResponseWriter, r *http.Request) {
	number := typed(r.PostFormValue("number"))
	tok, exp, err := s.session(number, r.PostFormValue("code"), s.remoteHost(r))
	if err != nil {
		st, msg := problemText(err)
		s.render(w, st, "me.html", mePage{Title: "My contacts", Step: "code", Number: number, Error: msg})
		return
	}
	http.SetCookie(w, &http.Cookie{Name: customerCookie, Value: tok, Path: "/", Expires: exp, MaxAge: int(time.Until(exp).Seconds()),
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/me", http.StatusSeeOther)
}

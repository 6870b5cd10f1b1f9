package api

import (
	"embed"
	"errors"
	"html/template"
	"io/fs"
	"net/http"
	"strings"

	"github.com/danielgtaylor/huma/v2"
)

//go:embed templates/*.html
var templateFS embed.FS

var pages = template.Must(template.ParseFS(templateFS, "templates/*.html"))

//go:embed static/me
var meStatic embed.FS

func (s *Server) registerWeb() {
	s.mux.Handle("GET /static/me/", staticFiles(meStatic, "static/me"))
	s.registerMe()
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

// staticFiles serves a page's stylesheets from the binary, under the
// page's strict Content-Security-Policy ('self'); no listings.
func staticFiles(files embed.FS, dir string) http.Handler {
	sub, err := fs.Sub(files, dir)
	if err != nil {
		panic(err)
	}
	serve := http.StripPrefix("/"+dir+"/", http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/") {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		serve.ServeHTTP(w, r)
	})
}

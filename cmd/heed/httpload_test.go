package main

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// TestLoadConn posts through the load generator's own HTTP/1.1 client to
// a net/http server that answers with a Content-Length, chunked, or by
// closing the connection, and checks status, body and that the
// connection is reused only when the server keeps it open.
func TestLoadConn(t *testing.T) {
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.Method != "POST" || r.URL.Path != "/v1/echo" || r.Header.Get("Authorization") != "Bearer k" {
			http.Error(w, "bad request line or headers", http.StatusBadRequest)
			return
		}
		switch string(body) {
		case "chunked":
			w.WriteHeader(http.StatusCreated)
			w.(http.Flusher).Flush() // no Content-Length once flushed
			io.WriteString(w, "part one,")
			w.(http.Flusher).Flush()
			io.WriteString(w, "part two")
		case "close":
			w.Header().Set("Connection", "close")
			io.WriteString(w, "bye")
		default:
			w.WriteHeader(http.StatusAccepted)
			w.Write(body)
		}
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()

	lc, err := newLoadConn(srv.URL, "/v1/echo", map[string]string{"Authorization": "Bearer k"})
	if err != nil {
		t.Fatal(err)
	}
	defer lc.close()
	var resp bytes.Buffer
	for _, tc := range []struct {
		body, want string
		status     int
	}{
		{`{"a":1}`, `{"a":1}`, http.StatusAccepted},
		{"chunked", "part one,part two", http.StatusCreated},
		{strings.Repeat("x", 40000), strings.Repeat("x", 40000), http.StatusAccepted},
		{"close", "bye", http.StatusOK},
		{"again", "again", http.StatusAccepted},
	} {
		code, err := lc.post([]byte(tc.body), &resp)
		if err != nil || code != tc.status || resp.String() != tc.want {
			t.Fatalf("post %.20q: %d %.40q %v; want %d %.40q", tc.body, code, resp.String(), err, tc.status, tc.want)
		}
	}
	// One connection until the server closed it, then one more.
	if n := conns.Load(); n != 2 {
		t.Fatalf("%d connections opened, want 2", n)
	}
	if _, err := newLoadConn("https://x", "/", nil); err == nil {
		t.Fatal("an https URL was accepted")
	}
}

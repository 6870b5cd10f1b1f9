package api

import (
	"net/http"
	"strings"
	"testing"
)

func TestAuditPageIsServed(t *testing.T) {
	h := newHarness(t)
	res, err := http.Get(h.srv.URL + "/audit")
	if err != nil || res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("audit page: %v %v", res, err)
	}
	res.Body.Close()
}

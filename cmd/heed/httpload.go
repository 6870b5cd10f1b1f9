package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"time"
)

// errHTTPLoad is wrapped by every failure of a load connection.
var errHTTPLoad = errors.New("bench http")

// loadConn is one keep-alive HTTP/1.1 connection that sends one prepared
// POST over and over with different bodies. The load generator shares the
// machine with the server it measures, and net/http's client spends far
// more CPU on each request than this does, so the figures are the
// server's and not the generator's.
type loadConn struct {
	addr string
	head []byte // request line and headers, up to "Content-Length: "
	c    net.Conn
	r    *bufio.Reader
	out  []byte
	line []byte
}

// newLoadConn prepares POSTs to path at base with the given headers; it
// connects on the first request.
func newLoadConn(base, path string, header map[string]string) (*loadConn, error) {
	u, err := url.Parse(base)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return nil, fmt.Errorf("%w: --url must be http://host:port", errUsage)
	}
	var h bytes.Buffer
	fmt.Fprintf(&h, "POST %s HTTP/1.1\r\nHost: %s\r\n", u.Path+path, u.Host)
	for k, v := range header {
		fmt.Fprintf(&h, "%s: %s\r\n", k, v)
	}
	h.WriteString("Content-Length: ")
	return &loadConn{addr: u.Host, head: h.Bytes()}, nil
}

// post sends body and reads the answer's body into resp. A connection the
// server closed is reopened for the next request.
func (lc *loadConn) post(body []byte, resp *bytes.Buffer) (int, error) {
	if lc.c == nil {
		c, err := net.DialTimeout("tcp", lc.addr, 5*time.Second)
		if err != nil {
			return 0, fmt.Errorf("%w: %v", errHTTPLoad, err)
		}
		lc.c, lc.r = c, bufio.NewReaderSize(c, 16<<10)
	}
	lc.out = append(lc.out[:0], lc.head...)
	lc.out = strconv.AppendInt(lc.out, int64(len(body)), 10)
	lc.out = append(lc.out, "\r\n\r\n"...)
	lc.out = append(lc.out, body...)
	if _, err := lc.c.Write(lc.out); err != nil {
		lc.close()
		return 0, fmt.Errorf("%w: %v", errHTTPLoad, err)
	}
	status, keep, err := lc.read(resp)
	if err != nil || !keep {
		lc.close()
	}
	return status, err
}

func (lc *loadConn) close() {
	if lc.c != nil {
		lc.c.Close()
		lc.c, lc.r = nil, nil
	}
}

// read reads one response: status, headers and a body framed by
// Content-Length or chunked; it reports whether the connection stays open.
func (lc *loadConn) read(resp *bytes.Buffer) (status int, keep bool, err error) {
	line, err := lc.readLine()
	if err != nil {
		return 0, false, err
	}
	// "HTTP/1.1 201 Created"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return 0, false, fmt.Errorf("%w: bad status line", errHTTPLoad)
	}
	status, err = strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, false, fmt.Errorf("%w: bad status line", errHTTPLoad)
	}
	length, chunked, keep := -1, false, true
	for {
		line, err := lc.readLine()
		if err != nil {
			return status, false, err
		}
		if len(line) == 0 {
			break
		}
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		v = bytes.TrimSpace(v)
		switch {
		case bytes.EqualFold(k, []byte("Content-Length")):
			if length, err = strconv.Atoi(string(v)); err != nil || length < 0 {
				return status, false, fmt.Errorf("%w: bad Content-Length", errHTTPLoad)
			}
		case bytes.EqualFold(k, []byte("Transfer-Encoding")):
			chunked = bytes.EqualFold(v, []byte("chunked"))
		case bytes.EqualFold(k, []byte("Connection")):
			keep = !bytes.EqualFold(v, []byte("close"))
		}
	}
	resp.Reset()
	switch {
	case chunked:
		for {
			line, err := lc.readLine()
			if err != nil {
				return status, false, err
			}
			size, _, _ := bytes.Cut(line, []byte(";"))
			n, err := strconv.ParseInt(string(bytes.TrimSpace(size)), 16, 32)
			if err != nil || n < 0 {
				return status, false, fmt.Errorf("%w: bad chunk size", errHTTPLoad)
			}
			if n == 0 {
				for { // trailers, then the blank line
					if line, err = lc.readLine(); err != nil || len(line) == 0 {
						return status, keep && err == nil, err
					}
				}
			}
			if _, err := io.CopyN(resp, lc.r, n); err != nil {
				return status, false, fmt.Errorf("%w: %v", errHTTPLoad, err)
			}
			if _, err := lc.readLine(); err != nil {
				return status, false, err
			}
		}
	case length >= 0:
		if _, err := io.CopyN(resp, lc.r, int64(length)); err != nil {
			return status, false, fmt.Errorf("%w: %v", errHTTPLoad, err)
		}
		return status, keep, nil
	default: // the body runs to the end of the connection
		if _, err := resp.ReadFrom(lc.r); err != nil {
			return status, false, fmt.Errorf("%w: %v", errHTTPLoad, err)
		}
		return status, false, nil
	}
}

// readLine returns the next line without its CRLF; the slice is valid
// until the next read.
func (lc *loadConn) readLine() ([]byte, error) {
	lc.line = lc.line[:0]
	for {
		part, more, err := lc.r.ReadLine()
		if err != nil {
			return nil, fmt.Errorf("%w: %v", errHTTPLoad, err)
		}
		lc.line = append(lc.line, part...)
		if !more {
			return lc.line, nil
		}
	}
}

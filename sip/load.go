package sip

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// LoadConfig drives INVITEs at a gate, as `heed bench sip` does.
type LoadConfig struct {
	// Target is the gate's UDP address.
	Target string
	// Calls is how many INVITEs to send.
	Calls int
	// Rate, when positive, sends at that many INVITEs a second (an open
	// loop: latency counts from when each INVITE was due, so queueing at
	// the gate is charged to it); zero sends as fast as answers come.
	Rate float64
	// Conns is how many INVITEs may be outstanding (and UDP sockets used).
	Conns int
	// Call returns the callee and the calling line of the i-th INVITE.
	Call func(i int) (callee, line string)
}

// LoadResult is what a load run measured.
type LoadResult struct {
	Answered  int
	Lost      int // no final answer within 5 s
	Elapsed   time.Duration
	PerSecond float64
	P50, P99  time.Duration
	Statuses  map[int]int
}

// Load sends cfg.Calls INVITEs over UDP and times each to its final
// answer, acknowledging every final answer as a PBX would (so the gate
// stops retransmitting it).
//
// One goroutine sends every INVITE, on whichever socket has no call
// outstanding, so an INVITE leaves when it is due rather than after a
// hand-over to another goroutine; each socket's reader times the answer.
// In an open loop the time counts from when the INVITE was due, or from
// when the sender's own sleep ended if that was later: Go's timers wake
// up to a millisecond late on an idle machine (the runtime sleeps in
// epoll_wait, which counts milliseconds), and that lateness is the
// client's, not the gate's. Time the sender waits for a free socket
// (every call outstanding) still counts, so queueing at the gate is
// charged to it.
func Load(ctx context.Context, cfg LoadConfig) (LoadResult, error) {
	if cfg.Calls <= 0 || cfg.Conns <= 0 || cfg.Call == nil {
		return LoadResult{}, fmt.Errorf("%w: calls, conns and Call are required", ErrConfig)
	}
	raddr, err := net.ResolveUDPAddr("udp", cfg.Target)
	if err != nil {
		return LoadResult{}, fmt.Errorf("%w: target: %v", ErrConfig, err)
	}
	target := raddr.String()
	var (
		mu       sync.Mutex
		lat      = make([]time.Duration, 0, cfg.Calls)
		statuses = map[int]int{}
		lost     atomic.Int64
	)
	free := make(chan *loadConn, cfg.Conns)
	var wg sync.WaitGroup
	var conns []*loadConn
	defer func() {
		for _, c := range conns {
			close(c.calls)
		}
		wg.Wait()
	}()
	for range cfg.Conns {
		conn, err := net.DialUDP("udp", nil, raddr)
		if err != nil {
			return LoadResult{}, err
		}
		c := &loadConn{conn: conn, local: conn.LocalAddr().String(), calls: make(chan loadCall, 1)}
		conns = append(conns, c)
		free <- c
		wg.Go(func() {
			defer conn.Close()
			buf := make([]byte, 8192)
			var mine []time.Duration
			mystat := map[int]int{}
			for call := range c.calls {
				status, to, err := awaitFinal(conn, buf, call.callID)
				if err != nil {
					lost.Add(1)
					free <- c
					continue
				}
				mine = append(mine, time.Since(call.from))
				mystat[status]++
				_, _ = conn.Write(loadAck(call.callee, call.line, call.callID, call.branch, c.local, target, to))
				free <- c
			}
			mu.Lock()
			lat = append(lat, mine...)
			for k, v := range mystat {
				statuses[k] += v
			}
			mu.Unlock()
		})
	}
	var interval time.Duration
	if cfg.Rate > 0 {
		interval = time.Duration(float64(time.Second) / cfg.Rate)
	}
	start := time.Now()
	var woke time.Time
	for i := range cfg.Calls {
		due := start
		if interval > 0 {
			due = start.Add(time.Duration(i) * interval)
			if d := time.Until(due); d > 0 {
				time.Sleep(d)
				woke = time.Now()
			}
		}
		var c *loadConn
		select {
		case c = <-free:
		case <-ctx.Done():
			return LoadResult{}, ctx.Err()
		}
		call := loadCall{callID: "bench-" + strconv.Itoa(i), branch: "z9hG4bK-b" + strconv.Itoa(i)}
		call.callee, call.line = cfg.Call(i)
		switch {
		case interval == 0:
			call.from = time.Now()
		case woke.After(due):
			call.from = woke
		default:
			call.from = due
		}
		c.calls <- call
		if _, err := c.conn.Write(loadInvite(call.callee, call.line, call.callID, call.branch, c.local, target)); err != nil {
			return LoadResult{}, err
		}
	}
	for _, c := range conns {
		close(c.calls)
	}
	conns = nil
	wg.Wait()
	elapsed := time.Since(start)
	slices.Sort(lat)
	res := LoadResult{Answered: len(lat), Lost: int(lost.Load()), Elapsed: elapsed, Statuses: statuses,
		PerSecond: float64(len(lat)) / elapsed.Seconds()}
	if len(lat) > 0 {
		res.P50 = lat[len(lat)/2]
		res.P99 = lat[min(len(lat)-1, len(lat)*99/100)]
	}
	return res, nil
}

// loadConn is one socket of the load and the call outstanding on it.
type loadConn struct {
	conn  *net.UDPConn
	local string
	calls chan loadCall
}

// loadCall is one INVITE sent, and when its time started.
type loadCall struct {
	callee, line, callID, branch string
	from                         time.Time
}

var errNoAnswer = errors.New("sip: no final answer")

// awaitFinal reads until the final answer for callID; it returns its
// status and its To header (with the gate's tag, for the ACK).
func awaitFinal(conn *net.UDPConn, buf []byte, callID string) (int, []byte, error) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		_ = conn.SetReadDeadline(deadline)
		n, err := conn.Read(buf)
		if err != nil {
			return 0, nil, errNoAnswer
		}
		msg := buf[:n]
		if !bytes.HasPrefix(msg, []byte("SIP/2.0 ")) || len(msg) < 12 || !bytes.Contains(msg, []byte("Call-ID: "+callID+"\r\n")) {
			continue // a late answer to an earlier call
		}
		status, err := strconv.Atoi(string(msg[8:11]))
		if err != nil || status < 200 {
			continue
		}
		var to []byte
		if i := bytes.Index(msg, []byte("\r\nTo: ")); i >= 0 {
			rest := msg[i+2:]
			if j := bytes.Index(rest, []byte("\r\n")); j >= 0 {
				to = append([]byte(nil), rest[:j]...)
			}
		}
		return status, to, nil
	}
}

func loadInvite(callee, line, callID, branch, local, target string) []byte {
	return []byte("INVITE sip:" + callee + "@" + target + " SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP " + local + ";branch=" + branch + "\r\n" +
		"Max-Forwards: 70\r\n" +
		"From: <sip:" + line + "@pbx.bench>;tag=b" + callID + "\r\n" +
		"To: <sip:" + callee + "@" + target + ">\r\n" +
		"Call-ID: " + callID + "\r\n" +
		"CSeq: 1 INVITE\r\n" +
		"Contact: <sip:" + line + "@" + local + ">\r\n" +
		"Content-Length: 0\r\n\r\n")
}

// loadAck acknowledges a non-2xx final answer (RFC 3261 17.1.1.3): the
// INVITE's branch, the answer's To.
func loadAck(callee, line, callID, branch, local, target string, to []byte) []byte {
	if len(to) == 0 {
		to = []byte("To: <sip:" + callee + "@" + target + ">")
	}
	return []byte("ACK sip:" + callee + "@" + target + " SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP " + local + ";branch=" + branch + "\r\n" +
		"Max-Forwards: 70\r\n" +
		"From: <sip:" + line + "@pbx.bench>;tag=b" + callID + "\r\n" +
		string(to) + "\r\n" +
		"Call-ID: " + callID + "\r\n" +
		"CSeq: 1 ACK\r\n" +
		"Content-Length: 0\r\n\r\n")
}

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
func Load(ctx context.Context, cfg LoadConfig) (LoadResult, error) {
	if cfg.Calls <= 0 || cfg.Conns <= 0 || cfg.Call == nil {
		return LoadResult{}, fmt.Errorf("%w: calls, conns and Call are required", ErrConfig)
	}
	raddr, err := net.ResolveUDPAddr("udp", cfg.Target)
	if err != nil {
		return LoadResult{}, fmt.Errorf("%w: target: %v", ErrConfig, err)
	}
	type job struct {
		i   int
		due time.Time
	}
	jobs := make(chan job, cfg.Conns)
	var (
		mu       sync.Mutex
		lat      = make([]time.Duration, 0, cfg.Calls)
		statuses = map[int]int{}
		lost     atomic.Int64
		firstErr error
	)
	var wg sync.WaitGroup
	start := time.Now()
	for w := range cfg.Conns {
		conn, err := net.DialUDP("udp", nil, raddr)
		if err != nil {
			return LoadResult{}, err
		}
		wg.Go(func() {
			defer conn.Close()
			local := conn.LocalAddr().String()
			buf := make([]byte, 8192)
			var mine []time.Duration
			mystat := map[int]int{}
			for j := range jobs {
				callee, line := cfg.Call(j.i)
				callID := "bench-" + strconv.Itoa(w) + "-" + strconv.Itoa(j.i)
				branch := "z9hG4bK-b" + strconv.Itoa(j.i)
				invite := loadInvite(callee, line, callID, branch, local, raddr.String())
				if _, err := conn.Write(invite); err != nil {
					mu.Lock()
					firstErr = cmp(firstErr, err)
					mu.Unlock()
					continue
				}
				status, to, err := awaitFinal(conn, buf, callID)
				if err != nil {
					lost.Add(1)
					continue
				}
				mine = append(mine, time.Since(j.due))
				mystat[status]++
				_, _ = conn.Write(loadAck(callee, line, callID, branch, local, raddr.String(), to))
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
	for i := range cfg.Calls {
		due := time.Now()
		if interval > 0 {
			due = start.Add(time.Duration(i) * interval)
			if d := time.Until(due); d > 0 {
				time.Sleep(d)
			}
		}
		select {
		case jobs <- job{i, due}:
		case <-ctx.Done():
			close(jobs)
			wg.Wait()
			return LoadResult{}, ctx.Err()
		}
	}
	close(jobs)
	wg.Wait()
	elapsed := time.Since(start)
	if firstErr != nil {
		return LoadResult{}, firstErr
	}
	slices.Sort(lat)
	res := LoadResult{Answered: len(lat), Lost: int(lost.Load()), Elapsed: elapsed, Statuses: statuses,
		PerSecond: float64(len(lat)) / elapsed.Seconds()}
	if len(lat) > 0 {
		res.P50 = lat[len(lat)/2]
		res.P99 = lat[min(len(lat)-1, len(lat)*99/100)]
	}
	return res, nil
}

func cmp(a, b error) error {
	if a != nil {
		return a
	}
	return b
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

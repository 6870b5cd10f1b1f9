// Package fake is an in-process KurrentDB for tests: a gRPC server built on
// the client module's own generated service stubs, holding streams and $all
// in memory, with faults a test can inject (a lost append acknowledgement,
// Unavailable, not-leader, a dropped subscription, a message the client
// cannot handle).
//
// It implements the subset of the v1 streams protocol heed uses: appends
// with expected revisions and the server's id-based idempotence, stream and
// $all reads in both directions, and catch-up subscriptions to $all with a
// stream-prefix filter. Every other service answers Unimplemented, which the
// client tolerates at connect.
package fake

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/gossip"
	"github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/shared"
	api "github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v1/streams"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Fault is a failure the server injects into the next matching call.
type Fault int

const (
	// Unavailable fails the call with codes.Unavailable before any write.
	Unavailable Fault = iota + 1
	// LostAck writes an append, then answers Unavailable, as when the
	// connection breaks after the server committed.
	LostAck
	// NotLeader answers an append as a follower would, naming this server
	// as the leader to reconnect to.
	NotLeader
	// BadMessage answers the next stream read with a message kind the
	// client does not expect (last_stream_position), which makes the
	// client panic.
	BadMessage
)

// record is one event in the log.
type record struct {
	id       uuid.UUID
	stream   string
	revision uint64 // 0-based, as on the wire
	meta     map[string]string
	custom   []byte
	data     []byte
	pos      uint64 // commit and prepare position: not gap-free, like a real log
}

// state is what the nodes of one cluster share: the log, and the faults
// to inject, which apply to whichever node serves the call.
type state struct {
	mu      sync.Mutex
	log     []record
	streams map[string][]int // stream -> indexes into log
	changed chan struct{}    // closed and replaced on every write
	drop    chan struct{}    // closed to drop every live subscription
	appendF []Fault
	readF   []Fault
	subs    int  // subscriptions opened so far
	resend  bool // a subscription resumes at its position, not after it
	nopos   bool // stream reads carry no commit position
	appends int  // append calls received
	nodes   []*Server
	leader  *Server
	deleted map[string]bool // tombstoned streams
	allRead int             // events sent by $all reads (not subscriptions)
}

// Server is an in-memory KurrentDB node. A node started with Start is a
// cluster of one; StartCluster starts several that share one log.
type Server struct {
	api.UnimplementedStreamsServer
	*state

	addr string
	srv  *grpc.Server // guarded by mu
	down bool         // guarded by mu
}

// Start listens on 127.0.0.1 with a free port and serves until Close.
func Start() (*Server, error) {
	nodes, err := StartCluster(1)
	if err != nil {
		return nil, err
	}
	return nodes[0], nil
}

// StartCluster starts n nodes sharing one log, the first of them leader.
// They answer gossip, and a node that is not the leader answers an append
// with not-leader, naming the leader, as a real follower does.
func StartCluster(n int) ([]*Server, error) {
	st := &state{streams: map[string][]int{}, deleted: map[string]bool{}, changed: make(chan struct{}), drop: make(chan struct{})}
	for range n {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			for _, s := range st.nodes {
				s.Close()
			}
			return nil, err
		}
		s := &Server{state: st, addr: lis.Addr().String()}
		st.nodes = append(st.nodes, s)
		if st.leader == nil {
			// Before serving: a call may arrive as soon as it listens.
			st.leader = s
		}
		s.serve(lis)
	}
	return st.nodes, nil
}

// ClusterURL is a connection string naming every node as a gossip seed.
func ClusterURL(nodes []*Server) string {
	addrs := make([]string, len(nodes))
	for i, s := range nodes {
		addrs[i] = s.addr
	}
	return "kurrentdb://" + strings.Join(addrs, ",") + "?tls=false"
}

func (s *Server) serve(lis net.Listener) {
	g := grpc.NewServer()
	api.RegisterStreamsServer(g, s)
	gossip.RegisterGossipServer(g, gossiper{s: s})
	s.mu.Lock()
	s.srv, s.down = g, false
	s.mu.Unlock()
	go func() { _ = g.Serve(lis) }()
}

// Addr is the host:port the server listens on.
func (s *Server) Addr() string { return s.addr }

// URL is a connection string for the client.
func (s *Server) URL() string { return "kurrentdb://" + s.Addr() + "?tls=false" }

// Close stops the node and ends every call in progress. The log is kept,
// so Restart brings the same node back, as after a process restart.
func (s *Server) Close() {
	s.mu.Lock()
	g := s.srv
	s.down = true
	s.mu.Unlock()
	g.Stop()
}

// Restart listens again on the same address after Close.
func (s *Server) Restart() error {
	lis, err := net.Listen("tcp", s.addr)
	if err != nil {
		return err
	}
	s.serve(lis)
	return nil
}

// MakeLeader makes s the cluster's leader, as an election would.
func (s *Server) MakeLeader() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.leader = s
}

// gossiper answers the gossip service for one node.
type gossiper struct {
	gossip.UnimplementedGossipServer
	s *Server
}

func (g gossiper) Read(context.Context, *shared.Empty) (*gossip.ClusterInfo, error) {
	g.s.mu.Lock()
	defer g.s.mu.Unlock()
	info := &gossip.ClusterInfo{}
	for _, n := range g.s.nodes {
		host, port, _ := net.SplitHostPort(n.addr)
		p, _ := strconv.Atoi(port)
		st := gossip.MemberInfo_Follower
		if n == g.s.leader {
			st = gossip.MemberInfo_Leader
		}
		info.Members = append(info.Members, &gossip.MemberInfo{
			State: st, IsAlive: !n.down, HttpEndPoint: &gossip.EndPoint{Address: host, Port: uint32(p)},
		})
	}
	return info, nil
}

// FailAppends makes the next appends fail with the given faults, in order.
func (s *Server) FailAppends(f ...Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.appendF = append(s.appendF, f...)
}

// FailReads makes the next stream or $all reads (not subscriptions) fail
// with the given faults, in order.
func (s *Server) FailReads(f ...Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.readF = append(s.readF, f...)
}

// OmitStreamPositions makes stream reads answer without commit positions,
// as some server versions do; $all reads and subscriptions keep them.
func (s *Server) OmitStreamPositions(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nopos = on
}

// PendingFaults returns how many injected append and read faults have not
// yet been used.
func (s *Server) PendingFaults() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.appendF) + len(s.readF)
}

// DropSubscriptions ends every live subscription with Unavailable, as a
// server restart or a slow consumer does.
func (s *Server) DropSubscriptions() {
	s.mu.Lock()
	defer s.mu.Unlock()
	close(s.drop)
	s.drop = make(chan struct{})
}

// ResendOnResume makes subscriptions deliver again the event at the
// position they resume from, as a server that treats the position as
// inclusive would; a subscriber must not hand it on twice.
func (s *Server) ResendOnResume(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.resend = on
}

// Subscriptions returns how many subscriptions have been opened.
func (s *Server) Subscriptions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.subs
}

// Appends returns how many append calls reached the server.
func (s *Server) Appends() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.appends
}

// Events returns how many events the log holds, of every stream.
func (s *Server) Events() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.log)
}

func pop(q *[]Fault) Fault {
	if len(*q) == 0 {
		return 0
	}
	f := (*q)[0]
	*q = (*q)[1:]
	return f
}

// Append implements the streams service.
func (s *Server) Append(stream api.Streams_AppendServer) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	opts := first.GetOptions()
	if opts == nil {
		return status.Error(codes.InvalidArgument, "append must start with options")
	}
	name := string(opts.GetStreamIdentifier().GetStreamName())
	var msgs []*api.AppendReq_ProposedMessage
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if m := req.GetProposedMessage(); m != nil {
			msgs = append(msgs, m)
		}
	}

	s.mu.Lock()
	s.appends++
	if s.leader != s {
		leader := s.leader.addr
		s.mu.Unlock()
		return notLeader(stream, leader)
	}
	fault := pop(&s.appendF)
	switch fault {
	case Unavailable:
		s.mu.Unlock()
		return status.Error(codes.Unavailable, "fake: unavailable")
	case NotLeader:
		s.mu.Unlock()
		return notLeader(stream, s.addr)
	}
	if s.deleted[name] {
		s.mu.Unlock()
		return streamDeleted(stream, name)
	}
	resp, err := s.appendLocked(name, opts, msgs)
	s.mu.Unlock()
	if err != nil {
		return err
	}
	if fault == LostAck {
		return status.Error(codes.Unavailable, "fake: connection lost after commit")
	}
	return stream.SendAndClose(resp)
}

// notLeader answers as a follower does, naming the leader.
func notLeader(stream grpc.ServerStream, leader string) error {
	host, port, _ := net.SplitHostPort(leader)
	stream.SetTrailer(metadata.Pairs("exception", "not-leader",
		"leader-endpoint-host", host, "leader-endpoint-port", port))
	return status.Error(codes.NotFound, "fake: not leader")
}

// streamDeleted answers as the server does for a tombstoned stream.
func streamDeleted(stream grpc.ServerStream, name string) error {
	stream.SetTrailer(metadata.Pairs("exception", "stream-deleted", "stream-name", name))
	return status.Error(codes.FailedPrecondition, "fake: stream deleted")
}

// Tombstone implements the streams service's hard delete. As on a server
// before a scavenge, the stream's events stay in $all (with a
// $streamDeleted record after them), but reading or appending to the
// stream fails with stream-deleted from then on, and so does a second
// tombstone. A stream that was never written cannot be tombstoned (wrong
// expected version, as the server answers even for Any). Only the expected
// revision Any is supported.
func (s *Server) Tombstone(ctx context.Context, req *api.TombstoneReq) (*api.TombstoneResp, error) {
	o := req.GetOptions()
	if o.GetAny() == nil {
		return nil, status.Error(codes.Unimplemented, "fake: tombstone supports only the expected revision Any")
	}
	name := string(o.GetStreamIdentifier().GetStreamName())
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.leader != s {
		host, port, _ := net.SplitHostPort(s.leader.addr)
		_ = grpc.SetTrailer(ctx, metadata.Pairs("exception", "not-leader",
			"leader-endpoint-host", host, "leader-endpoint-port", port))
		return nil, status.Error(codes.NotFound, "fake: not leader")
	}
	if s.deleted[name] {
		_ = grpc.SetTrailer(ctx, metadata.Pairs("exception", "stream-deleted", "stream-name", name))
		return nil, status.Error(codes.FailedPrecondition, "fake: stream deleted")
	}
	if len(s.streams[name]) == 0 {
		// As the server does (even with Any): there is nothing to delete.
		_ = grpc.SetTrailer(ctx, metadata.Pairs("exception", "wrong-expected-version"))
		return nil, status.Error(codes.FailedPrecondition, "fake: delete failed due to WrongExpectedVersion: no stream")
	}
	s.deleted[name] = true
	created := strconv.FormatInt(time.Now().UnixNano()/100, 10)
	s.log = append(s.log, record{
		id:       uuid.New(),
		stream:   name,
		revision: math.MaxInt64,
		meta:     map[string]string{"created": created, "type": "$streamDeleted", "content-type": "application/octet-stream"},
		pos:      s.nextPos(0),
	})
	close(s.changed)
	s.changed = make(chan struct{})
	pos := s.log[len(s.log)-1].pos
	return &api.TombstoneResp{PositionOption: &api.TombstoneResp_Position_{Position: &api.TombstoneResp_Position{
		CommitPosition: pos, PreparePosition: pos,
	}}}, nil
}

// AllReadEvents returns how many events $all reads (not subscriptions)
// have sent so far.
func (s *Server) AllReadEvents() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.allRead
}

// Deleted reports whether stream (the name on the server) was tombstoned.
func (s *Server) Deleted(stream string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.deleted[stream]
}

// Data returns the data of every event ever written to stream (the name on
// the server), tombstoned or not: what a server's disk holds before a
// scavenge.
func (s *Server) Data(stream string) [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out [][]byte
	for _, i := range s.streams[stream] {
		out = append(out, s.log[i].data)
	}
	return out
}

// Bytes returns everything the cluster holds, tombstoned or not: each
// event's stream name, metadata and data, one after the other.
func (s *Server) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []byte
	for _, r := range s.log {
		out = append(out, r.stream...)
		for k, v := range r.meta {
			out = append(out, k...)
			out = append(out, v...)
		}
		out = append(out, r.custom...)
		out = append(out, r.data...)
	}
	return out
}

// appendLocked checks the expected revision the way the server does,
// including its id-based idempotence, and writes.
func (s *Server) appendLocked(name string, opts *api.AppendReq_Options, msgs []*api.AppendReq_ProposedMessage) (*api.AppendResp, error) {
	idx := s.streams[name]
	current := int64(len(idx)) - 1 // -1: no stream
	ids := make([]uuid.UUID, len(msgs))
	for i, m := range msgs {
		st := m.GetId().GetStructured()
		if st == nil {
			return nil, status.Error(codes.InvalidArgument, "fake: event id must be structured")
		}
		var b [16]byte
		putInt64(b[:8], st.MostSignificantBits)
		putInt64(b[8:], st.LeastSignificantBits)
		ids[i] = uuid.UUID(b)
	}
	var expected int64
	switch e := opts.GetExpectedStreamRevision().(type) {
	case *api.AppendReq_Options_Revision:
		expected = int64(e.Revision)
	case *api.AppendReq_Options_NoStream:
		expected = -1
	case *api.AppendReq_Options_StreamExists:
		if current < 0 {
			return wrongVersion(current, opts), nil
		}
		expected = current
	default: // Any: best-effort idempotence on ids already in the stream
		if start, ok := s.findRun(idx, ids); ok {
			return s.success(idx[start+len(ids)-1]), nil
		}
		expected = current
	}
	if expected != current {
		// Idempotence: the same ids already follow the expected revision.
		if expected < current && expected+int64(len(ids)) <= current {
			same := true
			for i, id := range ids {
				if s.log[idx[int(expected)+1+i]].id != id {
					same = false
					break
				}
			}
			if same && len(ids) > 0 {
				return s.success(idx[int(expected)+len(ids)]), nil
			}
		}
		return wrongVersion(current, opts), nil
	}
	created := strconv.FormatInt(time.Now().UnixNano()/100, 10)
	for i, m := range msgs {
		meta := map[string]string{"created": created}
		for k, v := range m.GetMetadata() {
			meta[k] = v
		}
		s.log = append(s.log, record{
			id:       ids[i],
			stream:   name,
			revision: uint64(len(s.streams[name])),
			meta:     meta,
			custom:   m.GetCustomMetadata(),
			data:     m.GetData(),
			pos:      s.nextPos(len(m.GetData())),
		})
		s.streams[name] = append(s.streams[name], len(s.log)-1)
	}
	close(s.changed)
	s.changed = make(chan struct{})
	idx = s.streams[name]
	if len(idx) == 0 {
		return &api.AppendResp{Result: &api.AppendResp_Success_{Success: &api.AppendResp_Success{
			CurrentRevisionOption: &api.AppendResp_Success_NoStream{NoStream: &shared.Empty{}},
			PositionOption:        &api.AppendResp_Success_NoPosition{NoPosition: &shared.Empty{}},
		}}}, nil
	}
	return s.success(idx[len(idx)-1]), nil
}

// nextPos returns a log position after the last one, leaving a gap the size
// of the record as a real transaction file does.
func (s *Server) nextPos(size int) uint64 {
	if len(s.log) == 0 {
		return 128
	}
	return s.log[len(s.log)-1].pos + 64 + uint64(size)
}

func (s *Server) findRun(idx []int, ids []uuid.UUID) (int, bool) {
	if len(ids) == 0 {
		return 0, false
	}
	for start := range idx {
		if s.log[idx[start]].id != ids[0] || start+len(ids) > len(idx) {
			continue
		}
		ok := true
		for i, id := range ids {
			if s.log[idx[start+i]].id != id {
				ok = false
				break
			}
		}
		if ok {
			return start, true
		}
	}
	return 0, false
}

func (s *Server) success(last int) *api.AppendResp {
	r := s.log[last]
	return &api.AppendResp{Result: &api.AppendResp_Success_{Success: &api.AppendResp_Success{
		CurrentRevisionOption: &api.AppendResp_Success_CurrentRevision{CurrentRevision: r.revision},
		PositionOption: &api.AppendResp_Success_Position{Position: &api.AppendResp_Position{
			CommitPosition: r.pos, PreparePosition: r.pos,
		}},
	}}}
}

func wrongVersion(current int64, opts *api.AppendReq_Options) *api.AppendResp {
	w := &api.AppendResp_WrongExpectedVersion{}
	if current < 0 {
		w.CurrentRevisionOption = &api.AppendResp_WrongExpectedVersion_CurrentNoStream{CurrentNoStream: &shared.Empty{}}
	} else {
		w.CurrentRevisionOption = &api.AppendResp_WrongExpectedVersion_CurrentRevision{CurrentRevision: uint64(current)}
	}
	switch e := opts.GetExpectedStreamRevision().(type) {
	case *api.AppendReq_Options_Revision:
		w.ExpectedRevisionOption = &api.AppendResp_WrongExpectedVersion_ExpectedRevision{ExpectedRevision: e.Revision}
	case *api.AppendReq_Options_NoStream:
		w.ExpectedRevisionOption = &api.AppendResp_WrongExpectedVersion_ExpectedNoStream{ExpectedNoStream: &shared.Empty{}}
	case *api.AppendReq_Options_StreamExists:
		w.ExpectedRevisionOption = &api.AppendResp_WrongExpectedVersion_ExpectedStreamExists{ExpectedStreamExists: &shared.Empty{}}
	default:
		w.ExpectedRevisionOption = &api.AppendResp_WrongExpectedVersion_ExpectedAny{ExpectedAny: &shared.Empty{}}
	}
	return &api.AppendResp{Result: &api.AppendResp_WrongExpectedVersion_{WrongExpectedVersion: w}}
}

// Read implements the streams service: stream reads, $all reads and $all
// subscriptions.
func (s *Server) Read(req *api.ReadReq, out api.Streams_ReadServer) error {
	o := req.GetOptions()
	if o.GetSubscription() != nil {
		if o.GetAll() == nil {
			return status.Error(codes.Unimplemented, "fake: only $all subscriptions")
		}
		return s.subscribe(o, out)
	}
	s.mu.Lock()
	fault := pop(&s.readF)
	s.mu.Unlock()
	switch fault {
	case Unavailable, LostAck, NotLeader:
		return status.Error(codes.Unavailable, "fake: unavailable")
	case BadMessage:
		return out.Send(&api.ReadResp{Content: &api.ReadResp_LastStreamPosition{LastStreamPosition: 1}})
	}
	backwards := o.GetReadDirection() == api.ReadReq_Options_Backwards
	count := o.GetCount()
	if st := o.GetStream(); st != nil {
		return s.readStream(st, backwards, count, out)
	}
	return s.readAll(o.GetAll(), backwards, count, out)
}

func (s *Server) readStream(st *api.ReadReq_Options_StreamOptions, backwards bool, count uint64, out api.Streams_ReadServer) error {
	name := string(st.GetStreamIdentifier().GetStreamName())
	s.mu.Lock()
	if s.deleted[name] {
		s.mu.Unlock()
		return streamDeleted(out, name)
	}
	idx := s.streams[name]
	var recs []record
	if len(idx) > 0 {
		var from int
		switch r := st.GetRevisionOption().(type) {
		case *api.ReadReq_Options_StreamOptions_Revision:
			from = int(min(r.Revision, uint64(len(idx))))
			if backwards && from == len(idx) {
				from = len(idx) - 1
			}
		case *api.ReadReq_Options_StreamOptions_End:
			from = len(idx) - 1
			if !backwards {
				from = len(idx)
			}
		}
		for i := from; i >= 0 && i < len(idx) && uint64(len(recs)) < count; {
			recs = append(recs, s.log[idx[i]])
			if backwards {
				i--
			} else {
				i++
			}
		}
	}
	nopos := s.nopos
	s.mu.Unlock()
	if len(idx) == 0 {
		return out.Send(&api.ReadResp{Content: &api.ReadResp_StreamNotFound_{StreamNotFound: &api.ReadResp_StreamNotFound{
			StreamIdentifier: &shared.StreamIdentifier{StreamName: []byte(name)},
		}}})
	}
	for _, r := range recs {
		ev := event(r)
		if nopos {
			ev.GetEvent().Event.CommitPosition = 0
			ev.GetEvent().Position = &api.ReadResp_ReadEvent_NoPosition{NoPosition: &shared.Empty{}}
		}
		if err := out.Send(ev); err != nil {
			return err
		}
	}
	return nil
}

// firstAtOrAfter returns the index of the first record at or after pos.
func (s *Server) firstAtOrAfter(pos uint64) int {
	lo, hi := 0, len(s.log)
	for lo < hi {
		m := (lo + hi) / 2
		if s.log[m].pos < pos {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

func (s *Server) readAll(all *api.ReadReq_Options_AllOptions, backwards bool, count uint64, out api.Streams_ReadServer) error {
	s.mu.Lock()
	var from int
	switch p := all.GetAllOption().(type) {
	case *api.ReadReq_Options_AllOptions_Position:
		from = s.firstAtOrAfter(p.Position.GetCommitPosition())
		if backwards {
			from-- // backwards reads return what is before the position
		}
	case *api.ReadReq_Options_AllOptions_End:
		from = len(s.log)
		if backwards {
			from = len(s.log) - 1
		}
	}
	var recs []record
	for i := from; i >= 0 && i < len(s.log) && uint64(len(recs)) < count; {
		recs = append(recs, s.log[i])
		if backwards {
			i--
		} else {
			i++
		}
	}
	s.allRead += len(recs)
	s.mu.Unlock()
	for _, r := range recs {
		if err := out.Send(event(r)); err != nil {
			return err
		}
	}
	return nil
}

func (s *Server) subscribe(o *api.ReadReq_Options, out api.Streams_ReadServer) error {
	var prefixes []string
	if f := o.GetFilter(); f != nil {
		if e := f.GetStreamIdentifier(); e != nil {
			prefixes = e.GetPrefix()
		}
	}
	match := func(r record) bool {
		if len(prefixes) == 0 {
			return true
		}
		for _, p := range prefixes {
			if strings.HasPrefix(r.stream, p) {
				return true
			}
		}
		return false
	}
	s.mu.Lock()
	s.subs++
	next := 0
	switch p := o.GetAll().GetAllOption().(type) {
	case *api.ReadReq_Options_AllOptions_Position:
		// A subscription position is exclusive.
		next = s.firstAtOrAfter(p.Position.GetCommitPosition() + 1)
		if s.resend {
			next = s.firstAtOrAfter(p.Position.GetCommitPosition())
		}
	case *api.ReadReq_Options_AllOptions_End:
		next = len(s.log)
	}
	drop := s.drop
	s.mu.Unlock()
	if err := out.Send(&api.ReadResp{Content: &api.ReadResp_Confirmation{Confirmation: &api.ReadResp_SubscriptionConfirmation{
		SubscriptionId: fmt.Sprintf("fake-%p", out),
	}}}); err != nil {
		return err
	}
	caughtUp := false
	for {
		s.mu.Lock()
		batch := append([]record(nil), s.log[min(next, len(s.log)):]...)
		changed := s.changed
		s.mu.Unlock()
		for _, r := range batch {
			select {
			case <-drop:
				return status.Error(codes.Unavailable, "fake: subscription dropped")
			default:
			}
			next++
			if !match(r) {
				continue
			}
			if err := out.Send(event(r)); err != nil {
				return err
			}
		}
		if len(batch) > 0 {
			// Checkpoints let a filtered subscriber advance past events
			// it did not receive.
			last := batch[len(batch)-1].pos
			if err := out.Send(&api.ReadResp{Content: &api.ReadResp_Checkpoint_{Checkpoint: &api.ReadResp_Checkpoint{
				CommitPosition: last, PreparePosition: last,
			}}}); err != nil {
				return err
			}
		}
		if !caughtUp {
			caughtUp = true
			if err := out.Send(&api.ReadResp{Content: &api.ReadResp_CaughtUp_{CaughtUp: &api.ReadResp_CaughtUp{}}}); err != nil {
				return err
			}
		}
		select {
		case <-changed:
		case <-drop:
			return status.Error(codes.Unavailable, "fake: subscription dropped")
		case <-out.Context().Done():
			return out.Context().Err()
		}
	}
}

func event(r record) *api.ReadResp {
	most, least := int64From(r.id[:8]), int64From(r.id[8:])
	return &api.ReadResp{Content: &api.ReadResp_Event{Event: &api.ReadResp_ReadEvent{
		Event: &api.ReadResp_ReadEvent_RecordedEvent{
			Id: &shared.UUID{Value: &shared.UUID_Structured_{Structured: &shared.UUID_Structured{
				MostSignificantBits: most, LeastSignificantBits: least,
			}}},
			StreamIdentifier: &shared.StreamIdentifier{StreamName: []byte(r.stream)},
			StreamRevision:   r.revision,
			PreparePosition:  r.pos,
			CommitPosition:   r.pos,
			Metadata:         r.meta,
			CustomMetadata:   r.custom,
			Data:             r.data,
		},
		Position: &api.ReadResp_ReadEvent_CommitPosition{CommitPosition: r.pos},
	}}}
}

func putInt64(b []byte, v int64) {
	for i := 7; i >= 0; i-- {
		b[i] = byte(v)
		v >>= 8
	}
}

func int64From(b []byte) int64 {
	var v int64
	for _, x := range b {
		v = v<<8 | int64(x)
	}
	return v
}

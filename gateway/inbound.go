package gateway

import (
	"net"
	"syscall"

	"github.com/dlsse/dlsse/internal/netwatch"
	"github.com/dlsse/dlsse/internal/wsframe"
	"github.com/dlsse/dlsse/session"
	"github.com/dlsse/dlsse/sse"
)

// A stream hears from its client through one watcher shared by every
// stream (netwatch: one epoll set on Linux), so that a departed client is
// noticed at once, not two heartbeats later when a write fails, and a
// WebSocket client's frames are answered, without a goroutine per stream.

// maxInboundPerStep bounds what one look at a stream reads: a Direct Line
// client sends a few bytes every 20 s, an SSE client nothing at all.
const maxInboundPerStep = 256 << 10

// maxClientMessage bounds a message from a WebSocket client. Direct Line's
// stream carries nothing from the client (keepalives are empty).
const maxClientMessage = 4 << 10

// connInbound watches a raw connection.
type connInbound struct {
	conn     syscall.Conn
	watchers *netwatch.Lazy
}

func newConnInbound(conn net.Conn, ws *netwatch.Lazy) (connInbound, bool) {
	sc, ok := conn.(syscall.Conn)
	return connInbound{conn: sc, watchers: ws}, ok
}

// Watch implements sse.Inbound.
func (in *connInbound) Watch(readable func()) (func(), error) {
	w, err := in.watchers.Get()
	if err != nil {
		return nil, err
	}
	return w.Watch(in.conn, readable)
}

// drain reads what the client sent until there is no more, handing each
// piece to take; it ends the stream when the client left, or sent more
// than a step may read.
func (in *connInbound) drain(scratch []byte, take func([]byte) sse.Reason) sse.Reason {
	for total := 0; total < maxInboundPerStep; {
		n, err := netwatch.ReadNow(in.conn, scratch)
		if n > 0 {
			total += n
			if end := take(scratch[:n]); end != "" {
				return end
			}
		}
		if err != nil {
			return sse.ReasonClientGone
		}
		if n == 0 {
			return ""
		}
	}
	return session.ReasonProtocolError
}

// sseInbound hears an SSE client, which sends nothing after its request:
// what it reads is the client leaving (EOF, reset), or dropped.
type sseInbound struct{ connInbound }

// Read implements sse.Inbound.
func (in *sseInbound) Read(dst []byte) ([]byte, sse.Reason) {
	return dst, in.drain(dst[len(dst):cap(dst)], func([]byte) sse.Reason { return "" })
}

// wsInbound hears a WebSocket client: pings are answered, the closing
// handshake completed, keepalives dropped, and a broken frame ends the
// stream with the close code RFC 6455 gives it.
type wsInbound struct {
	connInbound
	frames wsframe.Reader
}

// Read implements sse.Inbound. The pooled batch buffer is split: its
// second half takes what is read, the first what is answered (never more
// than what was read, so the halves never meet; should they, append
// moves the answer out).
func (in *wsInbound) Read(dst []byte) ([]byte, sse.Reason) {
	if cap(dst) < 4096 {
		dst = make([]byte, 0, 4096)
	}
	half := cap(dst) / 2
	out := dst[:0:half]
	var closing *wsframe.Closing
	end := in.drain(dst[half:cap(dst)], func(b []byte) sse.Reason {
		out, closing = in.frames.Feed(b, out)
		switch {
		case closing == nil:
			return ""
		case closing.ByClient:
			return sse.ReasonClientGone
		default:
			return session.ReasonProtocolError
		}
	})
	if end == session.ReasonProtocolError && closing == nil { // a flood
		out = wsframe.AppendClose(out, wsframe.ClosePolicyViolation, "too much data")
	}
	return out, end
}

package upstream

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"net/url"
	"syscall"
	"time"

	"github.com/dlsse/dlsse/internal/netwatch"
)

// handshaken is a stream's connection once the WebSocket handshake is
// done: fasthttp/websocket dials and checks the handshake, and dlsse reads
// and writes the frames itself (docs/upstream-reads.md says why).
type handshaken struct {
	conn net.Conn     // frames go through this: the TCP connection, or TLS over it
	sock syscall.Conn // the socket under conn, which the watcher watches
	now  *netwatch.NowReader
	nb   *nonblockConn
	rest []byte // what was read past the 101 answer: the first frames
}

// dialStream dials u and does the WebSocket handshake. A ctx that ends
// during the handshake ends it at once: the dialer itself watches ctx only
// until the TCP connection is up, so a session stopped mid-handshake would
// wait for the handshake timeout.
func (c *Client) dialStream(ctx context.Context, u *url.URL) (handshaken, *http.Response, error) {
	proxy, err := c.streamProxy(u)
	if err != nil {
		return handshaken{}, nil, err
	}
	var hs handshaken
	var rec *recorder
	var stop func() bool
	dialTCP := func(dctx context.Context, network, addr string) (net.Conn, error) {
		to := addr
		if proxy != nil {
			to = proxyAddr(proxy)
		}
		conn, err := c.dialer.NetDialContext(dctx, network, to)
		if err != nil {
			return nil, err
		}
		sc, ok := conn.(syscall.Conn)
		if !ok {
			conn.Close()
			return nil, errors.New("upstream: the dialer's connection has no socket to watch")
		}
		if hs.now, err = netwatch.NewNowReader(sc); err != nil {
			conn.Close()
			return nil, err
		}
		hs.sock = sc
		if d, ok := dctx.Deadline(); ok && proxy != nil {
			// The tunnel's deadline; set before the watch below, whose
			// passed one it must not replace.
			_ = conn.SetDeadline(d)
		}
		stop = context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
		if proxy != nil {
			if err := tunnel(conn, proxy, addr); err != nil {
				conn.Close()
				return nil, err
			}
		}
		return conn, nil
	}
	d := *c.dialer
	d.NetDialContext = func(dctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := dialTCP(dctx, network, addr)
		if err != nil {
			return nil, err
		}
		rec = &recorder{Conn: conn}
		return rec, nil
	}
	d.NetDialTLSContext = func(dctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := dialTCP(dctx, network, addr)
		if err != nil {
			return nil, err
		}
		hs.nb = &nonblockConn{Conn: conn, now: hs.now}
		tc := tls.Client(hs.nb, c.streamTLS(addr))
		if err := tc.HandshakeContext(dctx); err != nil {
			conn.Close()
			return nil, err
		}
		rec = &recorder{Conn: tc}
		return rec, nil
	}
	// The library's Conn, with its buffers, is dropped: only the
	// connection under it is kept.
	_, resp, err := d.DialContext(ctx, u.String(), nil)
	if stop != nil {
		stop()
	}
	if err != nil {
		return handshaken{}, resp, err
	}
	hs.conn = rec.Conn
	hs.rest = afterHead(rec.seen)
	return hs, resp, nil
}

// streamTLS is the TLS configuration of a stream to addr: the dialer's,
// for HTTP/1.1 only (a WebSocket handshake cannot go over HTTP/2).
func (c *Client) streamTLS(addr string) *tls.Config {
	cfg := &tls.Config{}
	if c.dialer.TLSClientConfig != nil {
		cfg = c.dialer.TLSClientConfig.Clone()
	}
	cfg.NextProtos = nil
	if cfg.ServerName == "" {
		cfg.ServerName, _, _ = net.SplitHostPort(addr)
	}
	return cfg
}

// recorder keeps a copy of what the handshake reads. The dialer reads the
// 101 answer through a buffered reader of its own, which may take the
// first frames along when Direct Line sends them right behind it; dlsse
// reads the frames itself, so it must have those bytes back.
type recorder struct {
	net.Conn
	seen []byte
}

func (r *recorder) Read(p []byte) (int, error) {
	n, err := r.Conn.Read(p)
	r.seen = append(r.seen, p[:n]...)
	return n, err
}

// afterHead returns what b holds past the end of an HTTP answer's head
// (its first empty line), nil when nothing is. A 101 has no body.
func afterHead(b []byte) []byte {
	for {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			return nil
		}
		line := b[:i]
		b = b[i+1:]
		if len(line) == 0 || len(line) == 1 && line[0] == '\r' {
			if len(b) == 0 {
				return nil
			}
			return b
		}
	}
}

// nonblockConn is the socket under a TLS stream. While nonblock is set, a
// Read returns what the socket has now, or errWouldBlock when it has
// nothing: crypto/tls keeps a connection usable after a temporary error,
// so a stream can ask TLS for whatever it holds decrypted, or whole in its
// buffer, without waiting for the network. Only the stream's reader sets
// nonblock, around its own reads.
type nonblockConn struct {
	net.Conn
	now      *netwatch.NowReader
	nonblock bool
}

func (c *nonblockConn) Read(p []byte) (int, error) {
	if !c.nonblock {
		return c.Conn.Read(p)
	}
	n, err := c.now.Read(p)
	if n == 0 && err == nil {
		return 0, errWouldBlock
	}
	return n, err
}

// errWouldBlock is a nonblocking read that found nothing: temporary.
var errWouldBlock error = wouldBlock{}

type wouldBlock struct{}

func (wouldBlock) Error() string   { return "upstream: nothing to read now" }
func (wouldBlock) Timeout() bool   { return true }
func (wouldBlock) Temporary() bool { return true }

var _ net.Error = wouldBlock{}

package upstream

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/fasthttp/websocket"
)

// writeBufferPool is shared by every stream: a stream writes a few bytes
// every keepalive, so holding a write buffer per socket would waste memory.
var writeBufferPool = &sync.Pool{}

// ErrMessageTooLarge reports a stream message above Config.ReadLimit. The
// stream is then unusable; what the message held can be polled instead.
var ErrMessageTooLarge = websocket.ErrReadLimit

// ClosedError reports that Direct Line closed the stream with a close frame.
type ClosedError struct {
	Code   int
	Reason string
}

func (e *ClosedError) Error() string {
	return fmt.Sprintf("upstream: stream closed (%d %q)", e.Code, e.Reason)
}

// IsCollision reports whether err is Direct Line closing a stream because
// another socket was opened for the same conversation.
func IsCollision(err error) bool {
	var ce *ClosedError
	return errors.As(err, &ce) && ce.Reason == "collision"
}

// Stream is one open Direct Line activity stream. It is read from one
// goroutine, with ReadMessage, then Decode and Release (what the session
// does), or with Next, the three in one; Close may be called from any.
type Stream struct {
	conn        *websocket.Conn
	readTimeout time.Duration
	keepalive   time.Duration
	keepalives  *keepalives

	mu     sync.Mutex // serialises writes (keepalives, close)
	closed bool

	kaBucket, kaIdx int // where the stream is in keepalives (under its lock; -1: left)
}

// Dial opens a stream URL (as returned by start or reconnect), through the
// breaker: the handshake's outcome is what the breaker counts. The URL is
// pre-authorised; https and http are mapped to wss and ws.
func (c *Client) Dial(ctx context.Context, streamURL string) (*Stream, error) {
	u, err := url.Parse(streamURL)
	if err != nil {
		return nil, errors.New("upstream: stream URL does not parse")
	}
	switch u.Scheme {
	case "https":
		u.Scheme = "wss"
	case "http":
		u.Scheme = "ws"
	case "wss", "ws":
	default:
		return nil, fmt.Errorf("upstream: stream URL has scheme %q", u.Scheme)
	}
	done, err := c.allow()
	if err != nil {
		c.observe("dial", statusRefused, 0)
		return nil, err
	}
	start := time.Now()
	conn, resp, err := c.dialWatched(ctx, u.String())
	if err != nil {
		if ctx.Err() == context.Canceled {
			done(context.Canceled)
			return nil, context.Canceled
		}
		if resp != nil {
			// The service answered but refused the upgrade.
			done(statusVerdict("dial", resp.StatusCode))
			c.observe("dial", resp.StatusCode, time.Since(start))
			c.noteStatus("dial", hostPort(u), resp.StatusCode)
			return nil, newAPIError(resp)
		}
		done(err)
		c.observe("dial", statusTransport, time.Since(start))
		c.noteLocalError("dial", err)
		c.noteFailure("dial", hostPort(u), err)
		// err may quote the URL, which holds a token: never wrap it.
		return nil, fmt.Errorf("upstream: dial stream: %w", dialError(err))
	}
	done(nil)
	c.observe("dial", http.StatusSwitchingProtocols, time.Since(start))
	s := &Stream{conn: conn, readTimeout: c.cfg.ReadTimeout, keepalive: c.cfg.Keepalive, keepalives: c.keepalives}
	conn.SetReadLimit(c.cfg.ReadLimit)
	conn.SetPongHandler(func(string) error { return s.extendRead() })
	_ = s.extendRead()
	c.keepalives.join(s)
	return s, nil
}

// dialWatched dials like the WebSocket dialer, but a ctx that ends during
// the handshake ends it at once: the dialer itself watches ctx only until
// the TCP connection is up, so a session stopped mid-handshake would wait
// for the handshake timeout.
func (c *Client) dialWatched(ctx context.Context, u string) (*websocket.Conn, *http.Response, error) {
	d := *c.dialer
	var stop func() bool
	d.NetDialContext = func(dctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := c.dialer.NetDialContext(dctx, network, addr)
		if err == nil {
			stop = context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
		}
		return conn, err
	}
	conn, resp, err := d.DialContext(ctx, u, nil)
	if stop != nil {
		stop()
	}
	return conn, resp, err
}

// dialError strips whatever of err could carry the stream URL.
func dialError(err error) error {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return errDialTimeout
	}
	if errors.Is(err, websocket.ErrBadHandshake) {
		return websocket.ErrBadHandshake
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		return oe
	}
	if errno, ok := localResourceErrno(err); ok {
		// Kept so the caller can tell "out of descriptors here" from
		// Direct Line failing.
		return fmt.Errorf("%w: %w", errDialFailed, errno)
	}
	return errDialFailed
}

var (
	errDialTimeout = errors.New("timed out")
	errDialFailed  = errors.New("connection failed")
)

func (s *Stream) extendRead() error {
	if s.readTimeout > 0 {
		return s.conn.SetReadDeadline(time.Now().Add(s.readTimeout))
	}
	return nil
}

// sendKeepalive sends what the official client sends (an empty message)
// plus a ping, whose pong proves the line works even when the service sends
// nothing.
func (s *Stream) sendKeepalive() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	deadline := time.Now().Add(s.keepalive)
	if s.conn.WriteControl(websocket.PingMessage, nil, deadline) == nil {
		_ = s.conn.SetWriteDeadline(deadline)
		_ = s.conn.WriteMessage(websocket.TextMessage, nil)
	}
}

// Next returns the next ActivitySet: ReadMessage, Decode and Release in
// one call, for readers that need not keep their goroutine shallow (tests,
// tools); the session reads with ReadMessage and decodes on another
// goroutine. Empty keepalive messages and message types it does not know
// are skipped. A close frame yields *ClosedError.
func (s *Stream) Next() (ActivitySet, error) {
	for {
		m, err := s.ReadMessage()
		if err != nil {
			return ActivitySet{}, err
		}
		set, known, err := m.Decode()
		m.Release()
		if err != nil || known {
			return set, err
		}
	}
}

// messageBuffers holds the buffers stream messages are read into: a
// message is decoded (and copied out) as soon as it is read, so a socket
// needs a buffer only for that moment, not for its life.
var messageBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooledMessage keeps one huge message from pinning its buffer.
const maxPooledMessage = 64 << 10

// Message is one stream message as read, not decoded yet. The read path
// is ReadMessage, then Decode, then Release: reading and decoding apart
// let a caller keep its reading goroutine shallow (decoding JSON takes
// stack), as the session does.
type Message struct {
	typ int
	buf *bytes.Buffer
}

// ReadMessage reads the next message whole. Release it when done.
func (s *Stream) ReadMessage() (Message, error) {
	typ, r, err := s.conn.NextReader()
	if err == nil {
		buf := messageBuffers.Get().(*bytes.Buffer)
		if _, err = buf.ReadFrom(r); err == nil {
			_ = s.extendRead()
			return Message{typ: typ, buf: buf}, nil
		}
		Message{buf: buf}.Release()
	}
	var ce *websocket.CloseError
	if errors.As(err, &ce) && ce.Code != websocket.CloseAbnormalClosure { // 1006: no close frame, a drop
		return Message{}, &ClosedError{Code: ce.Code, Reason: ce.Text}
	}
	return Message{}, fmt.Errorf("upstream: stream read: %w", err)
}

// Empty reports a message Next skips without decoding: a keepalive (an
// empty text message) or a binary one.
func (m Message) Empty() bool { return m.typ != websocket.TextMessage || m.buf.Len() == 0 }

// Decode decodes the message. known is false for what Next skips:
// keepalives, binary messages, objects without "activities". The set does
// not refer to the message's buffer; its own goes back with its Release.
func (m Message) Decode() (set ActivitySet, known bool, err error) {
	return decodeMessage(m.typ, m.buf.Bytes())
}

// Release gives the message's buffer back; the message is unusable after.
func (m Message) Release() {
	if m.buf != nil && m.buf.Cap() <= maxPooledMessage {
		m.buf.Reset()
		messageBuffers.Put(m.buf)
	}
}

// decodeMessage decodes a text message's ActivitySet (decodeStreamSet);
// other messages are not known.
func decodeMessage(typ int, msg []byte) (set ActivitySet, known bool, err error) {
	if typ != websocket.TextMessage || len(msg) == 0 {
		return ActivitySet{}, false, nil
	}
	set, known, err = decodeStreamSet(msg)
	if err != nil {
		return ActivitySet{}, true, &FrameError{Err: err}
	}
	return set, known, nil
}

// FrameError reports a stream message that is not valid JSON. The stream
// itself is still usable: the caller may log it and call Next again.
type FrameError struct{ Err error }

func (e *FrameError) Error() string { return "upstream: malformed stream message: " + e.Err.Error() }
func (e *FrameError) Unwrap() error { return e.Err }

// Close closes the stream. It is safe to call more than once and from any
// goroutine; a blocked Next returns.
func (s *Stream) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.keepalives.leave(s)
	_ = s.conn.WriteControl(websocket.CloseMessage,
		websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	s.mu.Unlock()
	return s.conn.Close()
}

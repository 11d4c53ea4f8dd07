package upstream

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/dlsse/dlsse/internal/netwatch"
	"github.com/dlsse/dlsse/internal/wsframe"
	"github.com/fasthttp/websocket"
)

// handshakeWriteBuffers is what the WebSocket dialer writes handshakes
// with; a stream writes its frames itself.
var handshakeWriteBuffers = &sync.Pool{}

// ErrMessageTooLarge reports a stream message above Config.ReadLimit. The
// stream is then unusable; what the message held can be polled instead.
var ErrMessageTooLarge = errors.New("upstream: stream message above the read limit")

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

// Stream is one open Direct Line activity stream. dlsse reads and writes
// its frames itself, after fasthttp/websocket's handshake, so that what
// was read but not parsed is in sight: a stream can then be read when its
// socket becomes readable (Watch, TryMessage), holding no goroutine and
// no buffer while idle. It is read by one reader at a time: ReadMessage
// (waits), TryMessage (never waits) or Next; Close may be called from any
// goroutine.
type Stream struct {
	conn        net.Conn     // frames go through this: TCP, or TLS over it
	sock        syscall.Conn // the socket under conn
	now         *netwatch.NowReader
	nb          *nonblockConn
	readTimeout time.Duration
	keepalive   time.Duration
	readLimit   int64
	keepalives  *keepalives

	frames                // the reader's state (frames.go)
	lastRead atomic.Int64 // since epoch, when a frame last came: liveness
	lastSaid atomic.Int64 // since epoch, when a data frame last came (a message, a keepalive)
	down     atomic.Bool  // closed: the reader returns cause

	mu       sync.Mutex // serialises writes (keepalives, pongs, close) and guards what follows
	closed   bool
	saidBye  bool // a close frame went out
	cause    error
	unwatch  func()
	readable func()

	kaBucket, kaIdx int // where the stream is in keepalives (under its lock; -1: left)
}

// epoch is what a stream's times count from (the monotonic clock).
var epoch = time.Now()

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
	hs, resp, err := c.dialStream(ctx, u)
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
		where := hostPort(u)
		if p, _ := c.streamProxy(u); p != nil {
			where += " via proxy " + proxyAddr(p)
		}
		c.noteFailure("dial", where, err)
		// err may quote the URL, which holds a token: never wrap it.
		return nil, fmt.Errorf("upstream: dial stream: %w", dialError(err))
	}
	done(nil)
	c.observe("dial", http.StatusSwitchingProtocols, time.Since(start))
	s := &Stream{
		conn: hs.conn, sock: hs.sock, now: hs.now, nb: hs.nb,
		readTimeout: c.cfg.ReadTimeout, keepalive: c.cfg.Keepalive, readLimit: c.cfg.ReadLimit,
		keepalives: c.keepalives,
	}
	now := time.Since(epoch)
	s.lastRead.Store(int64(now))
	s.lastSaid.Store(int64(now - s.keepalive)) // the first keepalive pings
	if len(hs.rest) > 0 {
		s.takeIn(len(hs.rest))
		s.in = append(s.in, hs.rest...)
	}
	c.keepalives.join(s)
	return s, nil
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
	var pe *proxyError
	if errors.As(err, &pe) {
		return pe
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

// heard notes that a frame (of opcode op) came: the line works.
func (s *Stream) heard(op byte) {
	now := int64(time.Since(epoch))
	s.lastRead.Store(now)
	if op < wsframe.OpClose {
		s.lastSaid.Store(now)
	}
}

// silentFor is how long the stream has been silent.
func (s *Stream) silentFor() time.Duration {
	return time.Since(epoch) - time.Duration(s.lastRead.Load())
}

// sendKeepalive sends what the official client sends (an empty message),
// and a ping when Direct Line said nothing since the last keepalive: its
// pong proves the line works. (Direct Line's own keepalives prove it as
// well, and a pong is one more wake-up per socket.) One write. A watched
// stream silent past ReadTimeout is closed instead: nobody waits in a read
// with a deadline to notice it.
func (s *Stream) sendKeepalive() {
	if s.watched() && s.readTimeout > 0 && s.silentFor() > s.readTimeout {
		s.fail(errSilent)
		return
	}
	var b [2 * (2 + 4)]byte
	frames := b[:0]
	if time.Since(epoch)-time.Duration(s.lastSaid.Load()) >= s.keepalive {
		frames = wsframe.AppendMasked(frames, wsframe.OpPing, nil, rand.Uint32())
	}
	frames = wsframe.AppendMasked(frames, wsframe.OpText, nil, rand.Uint32())
	_ = s.write(frames, s.keepalive)
}

// write writes frames (whole) within timeout, unless the stream is closed
// or said goodbye (nothing may follow a close frame).
func (s *Stream) write(frames []byte, timeout time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return s.cause
	}
	if s.saidBye {
		return ErrStreamClosed
	}
	_ = s.conn.SetWriteDeadline(time.Now().Add(timeout))
	_, err := s.conn.Write(frames)
	return err
}

// errSilent is a watched stream that heard nothing, not even a pong, for
// ReadTimeout. A timeout, as a read deadline passing is.
var errSilent error = silentError{}

type silentError struct{}

func (silentError) Error() string   { return "upstream: stream silent past its read timeout" }
func (silentError) Timeout() bool   { return true }
func (silentError) Temporary() bool { return false }

// ErrStreamClosed is what reading a stream closed by Close returns.
var ErrStreamClosed = errors.New("upstream: stream closed")

// Next returns the next ActivitySet: ReadMessage, Decode and Release in
// one call, for readers that need not keep their goroutine shallow (tests,
// tools). Empty keepalive messages and message types it does not know
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

// messageBuffers holds the buffers stream messages are copied into: a
// message is decoded (and copied out) as soon as it is read, so a socket
// needs a buffer only for that moment, not for its life.
var messageBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooledMessage keeps one huge message from pinning its buffer.
const maxPooledMessage = 64 << 10

// Message is one stream message as read, not decoded yet. The read path
// is ReadMessage (or TryMessage), then Decode, then Release.
type Message struct {
	typ byte
	buf *bytes.Buffer
}

// Empty reports a message Next skips without decoding: a keepalive (an
// empty text message) or a binary one.
func (m Message) Empty() bool { return m.typ != wsframe.OpText || m.buf.Len() == 0 }

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
func decodeMessage(typ byte, msg []byte) (set ActivitySet, known bool, err error) {
	if typ != wsframe.OpText || len(msg) == 0 {
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

// Watch has w call readable whenever TryMessage may have something new:
// data came, Direct Line closed the stream, or the stream was closed (or
// found silent: see sendKeepalive). readable is called once at once, for
// what was read along with the handshake. readable must not block.
func (s *Stream) Watch(w netwatch.Watcher, readable func()) error {
	unwatch, err := w.Watch(s.sock, readable)
	if err != nil {
		return err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		unwatch()
		return s.cause
	}
	s.unwatch, s.readable = unwatch, readable
	s.mu.Unlock()
	readable()
	return nil
}

func (s *Stream) watched() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.readable != nil
}

// Close closes the stream. It is safe to call more than once and from any
// goroutine; a waiting ReadMessage returns, and a watched stream's
// readable is called.
func (s *Stream) Close() error { return s.fail(ErrStreamClosed) }

// fail closes the stream, which its reader then reports as cause.
func (s *Stream) fail(cause error) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed, s.cause = true, cause
	s.down.Store(true)
	s.keepalives.leave(s)
	s.sayBye(wsframe.CloseNormal)
	unwatch, readable := s.unwatch, s.readable
	s.mu.Unlock()
	err := s.conn.Close()
	if unwatch != nil {
		unwatch()
		readable()
	}
	return err
}

// answerClose answers Direct Line's close frame with one of the same code
// (RFC 6455 §5.5.1), so that it closes the connection at once instead of
// waiting for the answer.
func (s *Stream) answerClose(code int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		if !wsframe.ValidCloseCode(code) { // 1005 (none), or one never sent
			code = wsframe.CloseNormal
		}
		s.sayBye(code)
	}
}

// sayBye writes a close frame with code, once. Under s.mu.
func (s *Stream) sayBye(code int) {
	if s.saidBye {
		return
	}
	s.saidBye = true
	var b [2 + 4 + 2]byte
	_ = s.conn.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = s.conn.Write(wsframe.AppendMasked(b[:0], wsframe.OpClose, []byte{byte(code >> 8), byte(code)}, rand.Uint32()))
}

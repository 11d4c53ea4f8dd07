package directlinetest

import (
	"sync"
	"time"

	"github.com/fasthttp/websocket"
)

const (
	// writeTimeout bounds each frame written to a client, so a client that
	// stops reading is eventually disconnected instead of pinning a writer.
	writeTimeout = 10 * time.Second
	// closeGrace is how long a socket waits for the client's answer to a
	// close frame before dropping the connection.
	closeGrace = 5 * time.Second
	// maxClientMessage bounds what a client may send; clients only send
	// empty keepalives, which are read and ignored.
	maxClientMessage = 1 << 20
)

// outMsg is one entry of a socket's send queue: a text message, or (when
// isClose) a close frame that ends the socket's output.
type outMsg struct {
	data    []byte
	isClose bool
	code    int
	reason  string
}

// socket is one client WebSocket. REST handlers and hooks only append to its
// queue, which never blocks; a dedicated writer goroutine drains it. That is
// what keeps a slow or stuck client from ever blocking the REST API or the
// Server's lock.
type socket struct {
	// conn is set once by the stream handler after the upgrade, before the
	// writer starts; abort reads it under mu because hooks and Close may
	// abort a socket that is still being upgraded.
	conn   *websocket.Conn
	convID string

	// attached is true while this is its conversation's current socket.
	// Guarded by Server.mu, not by mu.
	attached bool

	mu      sync.Mutex
	queue   []outMsg
	closing bool // a close frame is queued; nothing more is accepted
	stopped bool // the writer must exit without sending the rest
	aborted bool // the connection must be (or has been) closed abruptly
	stalled bool // send nothing more, answer no ping: a silently dead path

	wake   chan struct{} // capacity 1: the queue changed
	stopCh chan struct{} // closed when stopped becomes true
	done   chan struct{} // closed when the writer has exited
}

// newSocket returns a socket that is not connected yet: it can be attached
// and queued to before the upgrade completes.
func newSocket(convID string) *socket {
	return &socket{
		convID: convID,
		wake:   make(chan struct{}, 1),
		stopCh: make(chan struct{}),
		done:   make(chan struct{}),
	}
}

// send queues a text message. It never blocks.
func (k *socket) send(data []byte) { k.push(outMsg{data: data}) }

// closeWith queues a close frame after everything already queued. It never
// blocks.
func (k *socket) closeWith(code int, reason string) {
	k.push(outMsg{isClose: true, code: code, reason: reason})
}

func (k *socket) push(m outMsg) {
	k.mu.Lock()
	if k.stopped || k.closing {
		k.mu.Unlock()
		return
	}
	if m.isClose {
		k.closing = true
	}
	k.queue = append(k.queue, m)
	k.mu.Unlock()
	select {
	case k.wake <- struct{}{}:
	default: // a wake-up is already pending; it will see this message too
	}
}

// next pops the oldest queued message.
func (k *socket) next() (outMsg, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.stopped || len(k.queue) == 0 {
		return outMsg{}, false
	}
	m := k.queue[0]
	k.queue[0] = outMsg{} // release the data for the garbage collector
	k.queue = k.queue[1:]
	return m, true
}

// stop makes the writer exit and drops whatever is still queued.
func (k *socket) stop() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if !k.stopped {
		k.stopped = true
		k.queue = nil
		close(k.stopCh)
	}
}

// setConn connects the socket after the upgrade. It reports false if the
// socket was aborted meanwhile; the caller then closes conn.
func (k *socket) setConn(conn *websocket.Conn) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.aborted {
		return false
	}
	k.conn = conn
	return true
}

// abort closes the TCP connection without a close frame (at once, or as
// soon as it exists). Both loops then fail and exit. Safe to call
// concurrently with everything.
func (k *socket) abort() {
	k.mu.Lock()
	k.aborted = true
	conn := k.conn
	k.mu.Unlock()
	if conn != nil {
		_ = conn.Close()
	}
}

// writeLoop drains the queue and sends keepalives until stopped, until a
// close frame has been sent, or until a write fails (then it aborts the
// connection so the read loop ends too).
func (k *socket) writeLoop(keepalive time.Duration) {
	defer close(k.done)
	var tick <-chan time.Time
	if keepalive > 0 {
		t := time.NewTicker(keepalive)
		defer t.Stop()
		tick = t.C
	}
	for {
		if k.isStalled() {
			<-k.stopCh // a dead path: only the end of the socket ends this
			return
		}
		select {
		case <-k.stopCh:
			return
		case <-tick:
			// Direct Line's keepalive is an empty text message.
			if err := k.write(nil); err != nil {
				k.abort()
				return
			}
		case <-k.wake:
			for {
				if k.isStalled() {
					break
				}
				m, ok := k.next()
				if !ok {
					break
				}
				if m.isClose {
					k.sendClose(m.code, m.reason)
					return
				}
				if err := k.write(m.data); err != nil {
					k.abort()
					return
				}
			}
		}
	}
}

func (k *socket) write(data []byte) error {
	if err := k.conn.SetWriteDeadline(time.Now().Add(writeTimeout)); err != nil {
		return err
	}
	if data == nil {
		data = []byte{}
	}
	return k.conn.WriteMessage(websocket.TextMessage, data)
}

// sendClose sends a close frame and leaves the read loop to receive the
// client's answer, bounded by closeGrace, as the close handshake requires.
func (k *socket) sendClose(code int, reason string) {
	msg := websocket.FormatCloseMessage(code, reason)
	if err := k.conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(writeTimeout)); err != nil {
		k.abort()
		return
	}
	_ = k.conn.NetConn().SetReadDeadline(time.Now().Add(closeGrace))
}

// readLoop reads and ignores client messages until the connection fails or
// the client's close frame arrives; that is how a departed client is
// noticed. The library answers pings and close frames by itself.
func (k *socket) readLoop() {
	k.conn.SetReadLimit(maxClientMessage)
	conn := k.conn
	conn.SetPingHandler(func(data string) error {
		if k.isStalled() {
			return nil // no pong: the client must notice on its own
		}
		err := conn.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(writeTimeout))
		if ne, ok := err.(interface{ Timeout() bool }); ok && ne.Timeout() {
			return nil
		}
		return err
	})
	for {
		if _, _, err := k.conn.ReadMessage(); err != nil {
			return
		}
	}
}

// stall makes the socket a silently dead path: it keeps its connection but
// sends nothing more (no activities, no keepalives) and answers no ping.
func (k *socket) stall() {
	k.mu.Lock()
	k.stalled = true
	k.mu.Unlock()
	select {
	case k.wake <- struct{}{}: // let the writer see it
	default:
	}
}

func (k *socket) isStalled() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.stalled
}

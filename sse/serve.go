package sse

import (
	"context"
	"errors"
	"io"
	"os"
	"sync"
	"syscall"
	"time"
)

// Reason says why a stream ended. It is what metrics and logs report.
type Reason string

// The reasons a stream ends.
const (
	// ReasonClientGone: a write failed, the client closed the connection.
	ReasonClientGone Reason = "client_gone"
	// ReasonSlow: the client did not take a write within the write timeout,
	// or fell so far behind that it must resume by cursor.
	ReasonSlow Reason = "slow"
	// ReasonShutdown: the server is shutting down.
	ReasonShutdown Reason = "shutdown"
	// ReasonEnded: the feed ended the stream on purpose (a terminal error
	// event was written, or the conversation ended).
	ReasonEnded Reason = "ended"
)

// A Feed supplies the bytes of one subscriber's stream.
type Feed interface {
	// Ready returns a channel that receives a value whenever Next may
	// have something new. Serve never closes it.
	Ready() <-chan struct{}
	// Next appends the encoded events available now to dst and returns
	// the result. It must not wait for other subscribers; it may wait for
	// work of its own (for example a fetch from upstream). A non-empty
	// Reason ends the stream once the returned bytes are written. A feed
	// that returns less than it has (a batch is full) signals again, as
	// for something new.
	Next(ctx context.Context, dst []byte) ([]byte, Reason)
}

// Options tune Serve. Zero values turn the feature off.
type Options struct {
	// Retry is the reconnection delay hint sent first on every stream.
	Retry time.Duration
	// Heartbeat is the idle time after which a comment line is written so
	// proxies keep the path open and a dead client is noticed.
	Heartbeat time.Duration
	// WriteTimeout bounds each single write (not the stream): a client
	// that does not take a write within it is dropped as slow. It applies
	// only when the Writer has SetWriteDeadline (a net.Conn does).
	WriteTimeout time.Duration
	// OnShutdown, if set, gives the bytes written last when ctx ends
	// (typically a jittered retry hint so a fleet does not come back at
	// once).
	OnShutdown func(dst []byte) []byte
	// Ping is what a heartbeat writes; nil: an SSE comment. (A stream
	// that writes WebSocket frames sets a ping frame.)
	Ping []byte
	// Inbound, if set, lets a Start stream hear from its client.
	Inbound Inbound
	// Heartbeats, if set (made with NewHeartbeats(ctx, Heartbeat)), pings
	// a Start stream from a wheel it shares with others, instead of a
	// timer of its own, and wakes it when ctx ends.
	Heartbeats *Heartbeats
}

// An Inbound lets a stream hear from its client without a goroutine
// waiting on a read: a departure is noticed at once, not at the next
// failed write, and a WebSocket client's frames are answered.
type Inbound interface {
	// Watch arranges for readable to be called (it does not block)
	// whenever the client sent something or hung up. Start calls it
	// before the stream's first write and calls stop before done. An
	// error leaves the stream deaf, as without an Inbound.
	Watch(readable func()) (stop func(), err error)
	// Read takes what the client sent, without waiting, on the stream's
	// goroutine, and appends to dst what must be written back. A
	// non-empty Reason ends the stream once that is written.
	Read(dst []byte) ([]byte, Reason)
}

// Writer is where a stream is written: a raw connection, or a buffered
// writer (whose Flush is then called after every batch).
type Writer = io.Writer

type flusher interface{ Flush() error }

type deadliner interface{ SetWriteDeadline(time.Time) error }

// bufPool holds the batch buffers: a stream holds one only while it writes,
// so an idle stream costs no buffer.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// maxPooledBuffer keeps a single huge batch from pinning its buffer forever.
const maxPooledBuffer = 256 << 10

// pingComment is the heartbeat, encoded once: every idle stream writes it
// every Heartbeat, and writers do not modify what they are given.
var pingComment = AppendComment(nil, "ping")

// Serve writes the retry hint, then everything feed supplies, until the
// client goes away, feed ends the stream, or ctx is done. It returns why the
// stream ended. It never closes w.
func Serve(ctx context.Context, w Writer, feed Feed, opt Options) Reason {
	s := newStream(w, opt)
	s.bind()

	var heartbeat <-chan time.Time
	var timer *time.Timer
	if opt.Heartbeat > 0 {
		timer = time.NewTimer(opt.Heartbeat)
		defer timer.Stop()
		heartbeat = timer.C
	}

	for {
		wrote, end := s.drain(ctx, feed)
		if end != "" {
			return end
		}
		if wrote && timer != nil {
			timer.Reset(opt.Heartbeat)
		}

		select {
		case <-ctx.Done():
			if opt.OnShutdown != nil {
				_ = s.write(opt.OnShutdown(nil))
			}
			return ReasonShutdown
		case <-feed.Ready():
		case <-heartbeat:
			if err := s.write(s.ping()); err != "" {
				return err
			}
			timer.Reset(opt.Heartbeat)
		}
	}
}

type stream struct {
	w        Writer
	flush    flusher
	deadline deadliner
	opt      Options
	first    bool // the retry hint is still to be written

	// A connection's own socket (nil for any other Writer), written
	// without waiting first (tryWrite): most writes need no deadline.
	raw syscall.RawConn
	nonBlocking
}

func newStream(w Writer, opt Options) stream {
	s := stream{w: w, opt: opt, first: true}
	s.flush, _ = w.(flusher)
	s.deadline, _ = w.(deadliner)
	if s.flush == nil { // a buffered writer's bytes must go through it
		s.raw = rawConnOf(w)
	}
	return s
}

// ping is what a heartbeat writes.
func (s *stream) ping() []byte {
	if s.opt.Ping != nil {
		return s.opt.Ping
	}
	return pingComment
}

// drain writes the batch feed has now (the first one starts with the
// retry hint). It reports whether it wrote anything.
func (s *stream) drain(ctx context.Context, feed Feed) (wrote bool, end Reason) {
	bp := bufPool.Get().(*[]byte)
	buf := (*bp)[:0]
	if s.first && s.opt.Retry > 0 {
		buf = AppendRetry(buf, s.opt.Retry)
	}
	s.first = false
	buf, end = feed.Next(ctx, buf)
	*bp = buf
	err := s.write(buf)
	n := len(buf)
	putBuf(bp)
	if err != "" {
		return false, err
	}
	return n > 0, end
}

// write sends b (if any) and maps a failure to the reason the stream ends.
// A socket is tried without waiting first; only what it cannot take at
// once is written under the write timeout, which is then lifted again (a
// deadline left behind would fail a later non-blocking write once it
// passed).
func (s *stream) write(b []byte) Reason {
	if len(b) == 0 {
		return ""
	}
	if s.raw != nil {
		n, err := s.tryWrite(b)
		if err != nil || n == len(b) {
			return reasonOf(err)
		}
		b = b[n:]
	}
	timed := s.deadline != nil && s.opt.WriteTimeout > 0
	if timed {
		_ = s.deadline.SetWriteDeadline(time.Now().Add(s.opt.WriteTimeout))
	}
	_, err := s.w.Write(b)
	if err == nil && s.flush != nil {
		err = s.flush.Flush()
	}
	if timed && err == nil && s.raw != nil {
		_ = s.deadline.SetWriteDeadline(time.Time{})
	}
	return reasonOf(err)
}

// reasonOf maps a write's error to the reason the stream ends ("": none).
func reasonOf(err error) Reason {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, os.ErrDeadlineExceeded):
		return ReasonSlow
	default:
		return ReasonClientGone
	}
}

// putBuf returns a batch buffer to the pool, unless a huge batch grew it.
func putBuf(bp *[]byte) {
	if cap(*bp) <= maxPooledBuffer {
		*bp = (*bp)[:0]
		bufPool.Put(bp)
	}
}

package upstream

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/dlsse/dlsse/internal/wsframe"
)

// frames is what a stream's reader keeps between reads: bytes read and not
// parsed yet, and a fragmented message's fragments so far. Both are held
// only while needed (a frame arrived in pieces, a message in fragments),
// so an idle stream keeps no buffer.
type frames struct {
	in      []byte  // read, not parsed from off on
	inBox   *[]byte // in's buffer when it came from inBufs
	off     int
	readErr error         // what ended the read that brought the last bytes in
	msg     *bytes.Buffer // a fragmented message being put together
	msgOp   byte
}

// inBufs holds the buffers streams read into, for the moment of a read.
var inBufs = sync.Pool{New: func() any { b := make([]byte, 0, inBufSize); return &b }}

const inBufSize = 4 << 10

// takeIn gives the stream a read buffer for at least need bytes.
func (s *Stream) takeIn(need int) {
	if need > inBufSize {
		s.in = make([]byte, 0, need)
		return
	}
	s.inBox = inBufs.Get().(*[]byte)
	s.in = (*s.inBox)[:0]
}

// ReadMessage reads the next message whole, waiting for it up to the read
// timeout. Release it when done.
func (s *Stream) ReadMessage() (Message, error) {
	for {
		if m, ok, err := s.parse(); ok || err != nil {
			return m, err
		}
		if s.readTimeout > 0 {
			_ = s.conn.SetReadDeadline(time.Now().Add(s.readTimeout - s.silentFor()))
		}
		if _, err := s.fill(true); err != nil {
			return Message{}, s.readError(err)
		}
	}
}

// TryMessage returns the next message if the stream has it whole now,
// without waiting: ok is false when it does not (yet). A watched stream's
// reader calls it until then, each time readable is called.
func (s *Stream) TryMessage() (m Message, ok bool, err error) {
	for {
		if m, ok, err := s.parse(); ok || err != nil {
			return m, ok, err
		}
		n, err := s.fill(false)
		if err != nil {
			return Message{}, false, s.readError(err)
		}
		if n == 0 {
			s.releaseIn()
			return Message{}, false, nil
		}
	}
}

// fill reads what comes next into s.in: waiting for it, or only what is
// there now (n is then 0 when nothing is).
func (s *Stream) fill(wait bool) (n int, err error) {
	if s.down.Load() {
		return 0, s.cause
	}
	if s.readErr != nil {
		return 0, s.readErr
	}
	if s.in == nil {
		s.takeIn(0)
	}
	if s.off > 0 {
		s.in = s.in[:copy(s.in, s.in[s.off:])]
		s.off = 0
	}
	if len(s.in) == cap(s.in) {
		s.in = append(s.in, make([]byte, cap(s.in))...)[:len(s.in)]
	}
	space := s.in[len(s.in):cap(s.in)]
	switch {
	case wait:
		n, err = s.conn.Read(space)
	case s.nb != nil:
		// TLS may hold more than the socket shows: ask it, without
		// letting it wait.
		s.nb.nonblock = true
		n, err = s.conn.Read(space)
		s.nb.nonblock = false
		if errors.Is(err, errWouldBlock) {
			err = nil
		}
	default:
		n, err = s.now.Read(space)
	}
	s.in = s.in[:len(s.in)+n]
	if n > 0 && err != nil {
		// Bytes and an error together (TLS returns a close_notify it saw
		// behind the data): the bytes first, the error at the next read.
		s.readErr, err = err, nil
	}
	return n, err
}

// releaseIn gives the read buffer back once everything in it was parsed.
func (s *Stream) releaseIn() {
	if s.off < len(s.in) {
		return
	}
	if s.inBox != nil && cap(s.in) == inBufSize { // not grown past it
		*s.inBox = s.in[:0]
		inBufs.Put(s.inBox)
	}
	s.in, s.inBox, s.off = nil, nil, 0
}

// readError is what a failed read means for the stream's reader.
func (s *Stream) readError(err error) error {
	if s.down.Load() {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.cause
	}
	if err == io.EOF {
		err = io.ErrUnexpectedEOF // no close frame: a drop
	}
	return fmt.Errorf("upstream: stream read: %w", err)
}

// parse takes whole frames from s.in until one completes a message, and
// answers control frames on the way: a pong for a ping; a close ends the
// stream with *ClosedError.
func (s *Stream) parse() (Message, bool, error) {
	for s.off < len(s.in) {
		f, n, bad := wsframe.ParseServerFrame(s.in[s.off:], s.maxPayload())
		if bad != nil {
			if bad.Code == wsframe.CloseMessageTooBig {
				return Message{}, false, ErrMessageTooLarge
			}
			return Message{}, false, fmt.Errorf("upstream: stream protocol error: %s", bad.Reason)
		}
		if n == 0 {
			return Message{}, false, nil
		}
		s.off += n
		s.heard(f.Op)
		if m, ok, err := s.frame(f); ok || err != nil {
			if s.off == len(s.in) {
				s.releaseIn()
			}
			return m, ok, err
		}
	}
	return Message{}, false, nil
}

// maxPayload is the longest data frame the read limit allows now.
func (s *Stream) maxPayload() int {
	limit := int(min(s.readLimit, 1<<40))
	if s.msg != nil {
		limit -= s.msg.Len()
	}
	return max(limit, 0)
}

// frame acts on one whole frame; ok when it completed a message.
func (s *Stream) frame(f wsframe.Frame) (m Message, ok bool, err error) {
	switch f.Op {
	case wsframe.OpPing:
		var b [2 + 4 + 125]byte
		_ = s.write(wsframe.AppendMasked(b[:0], wsframe.OpPong, f.Payload, rand.Uint32()), s.keepalive)
		return Message{}, false, nil
	case wsframe.OpPong:
		return Message{}, false, nil // heard: that was the point
	case wsframe.OpClose:
		code, reason := wsframe.CloseFrom(f.Payload)
		s.answerClose(code)
		return Message{}, false, &ClosedError{Code: code, Reason: reason}
	case wsframe.OpText, wsframe.OpBinary:
		if s.msg != nil {
			return Message{}, false, errors.New("upstream: stream protocol error: a new message inside a fragmented one")
		}
		buf := messageBuffers.Get().(*bytes.Buffer)
		buf.Write(f.Payload)
		if !f.Fin {
			s.msg, s.msgOp = buf, f.Op
			return Message{}, false, nil
		}
		return Message{typ: f.Op, buf: buf}, true, nil
	case wsframe.OpContinuation:
		if s.msg == nil {
			return Message{}, false, errors.New("upstream: stream protocol error: unexpected continuation")
		}
		s.msg.Write(f.Payload)
		if !f.Fin {
			return Message{}, false, nil
		}
		m = Message{typ: s.msgOp, buf: s.msg}
		s.msg = nil
		return m, true, nil
	}
	return Message{}, false, fmt.Errorf("upstream: stream protocol error: opcode %d", f.Op)
}

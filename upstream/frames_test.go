package upstream_test

import (
	"bufio"
	"crypto/sha1"
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/dlsse/dlsse/upstream"
)

// handshakeServer accepts WebSocket connections (over TLS when cfg is
// set) and hands each to script after reading the request: script writes
// the 101 (answer) and the frames, byte for byte as it likes.
func handshakeServer(t *testing.T, cfg *tls.Config, script func(out *segments, br *bufio.Reader, answer []byte)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	scheme := "ws"
	if cfg != nil {
		scheme = "wss"
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			raw, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				out := &segments{raw: raw, conn: raw}
				if cfg != nil {
					out.conn = tls.Server(out, cfg)
				}
				defer out.conn.Close()
				br := bufio.NewReader(out.conn)
				req, err := http.ReadRequest(br)
				if err != nil {
					return
				}
				h := sha1.Sum([]byte(req.Header.Get("Sec-WebSocket-Key") + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
				script(out, br, []byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
					"Sec-WebSocket-Accept: "+base64.StdEncoding.EncodeToString(h[:])+"\r\n\r\n"))
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return scheme + "://" + ln.Addr().String() + "/stream?t=tok"
}

// segments is a server connection whose Send puts several writes (over
// TLS: several records) in one write to the socket, so that the client
// receives them together.
type segments struct {
	raw      net.Conn
	conn     net.Conn // raw, or TLS over the segments
	batching bool
	batch    []byte
}

// Write is what TLS writes its records with.
func (o *segments) Write(p []byte) (int, error) {
	if o.batching {
		o.batch = append(o.batch, p...)
		return len(p), nil
	}
	return o.raw.Write(p)
}

func (o *segments) Read(p []byte) (int, error)         { return o.raw.Read(p) }
func (o *segments) Close() error                       { return o.raw.Close() }
func (o *segments) LocalAddr() net.Addr                { return o.raw.LocalAddr() }
func (o *segments) RemoteAddr() net.Addr               { return o.raw.RemoteAddr() }
func (o *segments) SetDeadline(t time.Time) error      { return o.raw.SetDeadline(t) }
func (o *segments) SetReadDeadline(t time.Time) error  { return o.raw.SetReadDeadline(t) }
func (o *segments) SetWriteDeadline(t time.Time) error { return o.raw.SetWriteDeadline(t) }

// Send writes each part (over TLS, each a record of its own) and sends
// them all in one write.
func (o *segments) Send(parts ...[]byte) error {
	o.batching = true
	for _, p := range parts {
		if _, err := o.conn.Write(p); err != nil {
			o.batching = false
			return err
		}
	}
	o.batching = false
	b := o.batch
	o.batch = nil
	_ = o.raw.SetWriteDeadline(time.Time{}) // TLS's CloseWrite leaves one passed
	_, err := o.raw.Write(b)
	return err
}

// frame is a server frame: b0 is FIN and the opcode.
func frame(b0 byte, payload string) []byte {
	b := []byte{b0}
	switch n := len(payload); {
	case n <= 125:
		b = append(b, byte(n))
	default:
		b = binary.BigEndian.AppendUint16(append(b, 126), uint16(n))
	}
	return append(b, payload...)
}

func textFrame(payload string) []byte { return frame(0x81, payload) }

func activitySet(id string) string {
	return fmt.Sprintf(`{"activities":[{"id":%q,"text":%q}],"watermark":%q}`, id, id, id)
}

// readClientFrame reads one frame the client sent (masked) and unmasks it.
func readClientFrame(br *bufio.Reader) (op byte, payload []byte, err error) {
	var h [2]byte
	if _, err = io.ReadFull(br, h[:]); err != nil {
		return 0, nil, err
	}
	n := int(h[1] & 0x7F)
	if n >= 126 {
		return 0, nil, fmt.Errorf("client frame of %d: not expected", n)
	}
	buf := make([]byte, 4+n)
	if _, err = io.ReadFull(br, buf); err != nil {
		return 0, nil, err
	}
	payload = buf[4:]
	for i := range payload {
		payload[i] ^= buf[i&3]
	}
	return h[0] & 0x0F, payload, nil
}

// TestFramesSentWithTheHandshake: Direct Line's first frames may come in
// the same segment as its 101; the dialer's reader takes them along, and
// the stream must still deliver them, without waiting for more.
func TestFramesSentWithTheHandshake(t *testing.T) {
	eachReadMode(t, func(t *testing.T, read func(*upstream.Stream)) {
		url := handshakeServer(t, nil, func(out *segments, br *bufio.Reader, answer []byte) {
			if out.Send(answer, textFrame(activitySet("1")), textFrame(activitySet("2"))) != nil {
				return
			}
			_, _ = io.Copy(io.Discard, br) // until the client goes
		})
		c, _ := newClient(t, "http://127.0.0.1:1", upstream.Config{})
		s := dialRead(t, c, url, read)
		for _, want := range []string{"1", "2"} {
			if got := texts(t, mustNext(t, s)); len(got) != 1 || got[0] != want {
				t.Fatalf("got %v, want [%s]", got, want)
			}
		}
	})
}

// TestFragmentsPingsAndPieces: a message in fragments with a ping between
// them (answered with its pong; a control frame does not count against
// the read limit, which the message reaches exactly), and a frame written
// a byte at a time.
func TestFragmentsPingsAndPieces(t *testing.T) {
	eachReadMode(t, func(t *testing.T, read func(*upstream.Stream)) {
		pong := make(chan string, 1)
		url := handshakeServer(t, nil, func(out *segments, br *bufio.Reader, answer []byte) {
			msg := activitySet("frag")
			b := append(answer, frame(0x01, msg[:10])...)     // text, not final
			b = append(b, frame(0x00, msg[10:len(msg)-5])...) // continuation
			b = append(b, frame(0x89, "are you there")...)    // ping, longer than what the limit leaves
			b = append(b, frame(0x80, msg[len(msg)-5:])...)   // final continuation
			if out.Send(b) != nil {
				return
			}
			for _, c := range textFrame(activitySet("byte")) {
				if out.Send([]byte{c}) != nil {
					return
				}
			}
			for {
				op, payload, err := readClientFrame(br)
				if err != nil {
					return
				}
				if op == 0xA {
					pong <- string(payload)
				}
			}
		})
		c, _ := newClient(t, "http://127.0.0.1:1", upstream.Config{ReadLimit: int64(len(activitySet("frag")))})
		s := dialRead(t, c, url, read)
		for _, want := range []string{"frag", "byte"} {
			if got := texts(t, mustNext(t, s)); len(got) != 1 || got[0] != want {
				t.Fatalf("got %v, want [%s]", got, want)
			}
		}
		if got := <-pong; got != "are you there" {
			t.Errorf("pong %q, want the ping's payload", got)
		}
	})
}

// TestTLSRecordsAheadOfTheReader: over TLS, crypto/tls holds what it
// read and the stream has not asked for yet (several records that came in
// one segment, several frames in one record), where the watcher cannot see
// it: a watched stream must deliver all of it without more bytes coming.
func TestTLSRecordsAheadOfTheReader(t *testing.T) {
	srv := httptest.NewTLSServer(http.NotFoundHandler()) // for its certificate and a client trusting it
	defer srv.Close()
	eachReadMode(t, func(t *testing.T, read func(*upstream.Stream)) {
		more := make(chan struct{})
		url := handshakeServer(t, srv.TLS, func(out *segments, br *bufio.Reader, answer []byte) {
			// The 101 and two frames, three records in one segment.
			if out.Send(answer, textFrame(activitySet("1")), textFrame(activitySet("2"))) != nil {
				return
			}
			<-more
			// Three frames in one record, then two records: one segment.
			three := append(append(textFrame(activitySet("3")), textFrame(activitySet("4"))...), textFrame(activitySet("5"))...)
			if out.Send(three, textFrame(activitySet("6")), textFrame(activitySet("7"))) != nil {
				return
			}
			_, _ = io.Copy(io.Discard, br)
		})
		var once sync.Once
		release := func() { once.Do(func() { close(more) }) }
		t.Cleanup(release) // a failed test must not leave the server waiting
		c := tlsClient(t, srv)
		s := dialRead(t, c, url, read)
		for i, want := range []string{"1", "2", "3", "4", "5", "6", "7"} {
			if i == 2 {
				release()
			}
			if got := texts(t, mustNext(t, s)); len(got) != 1 || got[0] != want {
				t.Fatalf("got %v, want [%s]", got, want)
			}
		}
	})
}

// TestTLSCloseThenCloseNotify: Direct Line closing with a close frame and
// TLS's close_notify in one segment. Over TLS 1.2, crypto/tls hands the
// frame over together with io.EOF (it looks ahead for the alert): the
// frame must still count, so a collision is seen as one.
func TestTLSCloseThenCloseNotify(t *testing.T) {
	srv := httptest.NewTLSServer(http.NotFoundHandler())
	defer srv.Close()
	cfg := srv.TLS.Clone()
	cfg.MaxVersion = tls.VersionTLS12
	eachReadMode(t, func(t *testing.T, read func(*upstream.Stream)) {
		url := handshakeServer(t, cfg, func(out *segments, br *bufio.Reader, answer []byte) {
			if out.Send(answer, textFrame(activitySet("1"))) != nil {
				return
			}
			out.batching = true
			_, _ = out.conn.Write(frame(0x88, "\x03\xf0collision")) // 1008
			_ = out.conn.(*tls.Conn).CloseWrite()
			_ = out.Send()
			_, _ = io.Copy(io.Discard, br)
		})
		c := tlsClient(t, srv)
		s := dialRead(t, c, url, read)
		if got := texts(t, mustNext(t, s)); len(got) != 1 || got[0] != "1" {
			t.Fatalf("got %v", got)
		}
		if _, err := next(t, s); !upstream.IsCollision(err) {
			t.Fatalf("got %v, want the collision close", err)
		}
	})
}

// dialRead dials url with c and has the stream read in the mode read sets.
func dialRead(t *testing.T, c *upstream.Client, url string, read func(*upstream.Stream)) *upstream.Stream {
	t.Helper()
	s, err := c.Dial(testCtx(t), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	read(s)
	return s
}

// tlsClient is a client that trusts srv's certificate (for its streams
// too: they trust what the REST transport trusts).
func tlsClient(t *testing.T, srv *httptest.Server) *upstream.Client {
	t.Helper()
	c, err := upstream.New(upstream.Config{BaseURL: srv.URL, Transport: srv.Client().Transport})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestCloseAnswered: Direct Line's close frame is answered with one of the
// same code at once (RFC 6455 §5.5.1), not when the stream is closed:
// until then Direct Line would hold the connection, waiting. Nothing
// follows the answer, though keepalives fall due meanwhile.
func TestCloseAnswered(t *testing.T) {
	eachReadMode(t, func(t *testing.T, read func(*upstream.Stream)) {
		answer := make(chan []byte, 1)
		after := make(chan string, 1)
		url := handshakeServer(t, nil, func(out *segments, br *bufio.Reader, head []byte) {
			if out.Send(head, frame(0x88, "\x0f\xa1bye")) != nil { // 4001
				return
			}
			for {
				op, payload, err := readClientFrame(br)
				if err != nil {
					return
				}
				if op == 0x8 {
					answer <- payload
					break
				}
			}
			// Ten keepalives' time: nothing may come.
			_ = out.raw.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			if op, _, err := readClientFrame(br); err == nil {
				after <- fmt.Sprintf("a frame of opcode %d", op)
			} else {
				after <- ""
			}
		})
		c, _ := newClient(t, "http://127.0.0.1:1", upstream.Config{Keepalive: 10 * time.Millisecond})
		s := dialRead(t, c, url, read)
		var ce *upstream.ClosedError
		if _, err := next(t, s); !errors.As(err, &ce) || ce.Code != 4001 || ce.Reason != "bye" {
			t.Fatalf("got %v, want ClosedError 4001 bye", err)
		}
		select {
		case p := <-answer:
			if len(p) < 2 || int(p[0])<<8|int(p[1]) != 4001 {
				t.Errorf("answered with %q, want code 4001", p)
			}
		case <-time.After(testTimeout):
			t.Fatal("the close frame was not answered")
		}
		if got := <-after; got != "" {
			t.Errorf("%s after the close frame", got)
		}
	})
}

package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"time"
)

// dlwsClient is one benchmark subscriber of dlsse's WebSocket streams, as
// DirectLineJS opens them: the stream URL upgraded to a WebSocket, each
// text frame an ActivitySet whose watermark is kept. Like sseClient it is
// a raw connection with one buffered reader and no allocation per event:
// the handshake and the frames are read by hand (server frames are
// unmasked and simple), so the comparison with SSE measures dlsse, not
// two client libraries.
//
// When the stream ends it comes back after a second or so with
// lastEventId set to the last watermark, which is what DirectLineJS's
// reconnect route returns, without the REST call.
type dlwsClient struct {
	rec     *recorder
	dialer  net.Dialer
	redial         // dlsse's host:port, or the replicas' in turn
	path    string // the stream's path, without its query
	query   url.Values
	bufSize int

	began     time.Time // when run started
	watermark []byte    // the last watermark received
	msg       []byte    // a message that arrived in fragments, or longer than the buffer
}

func newDLWSClient(rec *recorder, src net.IP, addr, target string, bufSize int) (*dlwsClient, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	return &dlwsClient{
		rec:     rec,
		dialer:  net.Dialer{LocalAddr: &net.TCPAddr{IP: src}, Timeout: 10 * time.Second},
		redial:  redial{addr: addr},
		path:    u.Path,
		query:   u.Query(),
		bufSize: bufSize,
	}, nil
}

// rotate is sseClient.rotate.
func (c *dlwsClient) rotate(addrs []string) *dlwsClient {
	c.redial.addrs = addrs
	return c
}

// run streams until ctx ends (keepStreaming), coming back a second after
// each end.
func (c *dlwsClient) run(ctx context.Context, connected func(error)) {
	c.began = time.Now()
	keepStreaming(ctx, c.rec, &c.redial, connected, c.stream, func() time.Duration { return time.Second })
}

// stream makes one upgrade and reads frames until the stream ends.
func (c *dlwsClient) stream(ctx context.Context, headDone func(error)) error {
	conn, err := c.dialer.DialContext(ctx, "tcp", c.addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	q := c.query
	if len(c.watermark) > 0 {
		q = cloneValues(c.query)
		q.Del("watermark")
		q.Set("lastEventId", string(c.watermark))
	}
	var key [16]byte
	_, _ = rand.Read(key[:])
	req := "GET " + c.path + "?" + q.Encode() + " HTTP/1.1\r\nHost: " + c.addr +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " +
		base64.StdEncoding.EncodeToString(key[:]) + "\r\n\r\n"
	_ = conn.SetDeadline(time.Now().Add(headTimeout))
	if _, err := conn.Write([]byte(req)); err != nil {
		return err
	}
	br := bufio.NewReaderSize(conn, c.bufSize)
	err = readUpgrade(br)
	headDone(err)
	if err != nil {
		return err
	}
	_ = conn.SetWriteDeadline(time.Time{})
	c.rec.online.Store(true)
	if c.rec.onlineIn.Load() == 0 {
		c.rec.onlineIn.Store(int64(max(time.Since(c.began), 1)))
	}
	return c.read(conn, br)
}

// readUpgrade reads the answer's head and wants a 101.
func readUpgrade(br *bufio.Reader) error {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return fmt.Errorf("reading status line: %w", err)
	}
	if !bytes.HasPrefix(line, []byte("HTTP/1.1 101 ")) {
		return fmt.Errorf("upgrade answered %q", bytes.TrimSpace(line))
	}
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return fmt.Errorf("reading headers: %w", err)
		}
		if len(bytes.TrimRight(line, "\r\n")) == 0 {
			return nil
		}
	}
}

// errClosed is a close frame from dlsse.
var errClosed = errors.New("closed by dlsse")

// pongFrame answers dlsse's heartbeat pings: a masked, empty pong (a
// client's frames are masked; the mask of an empty payload is moot).
var pongFrame = []byte{0x8A, 0x80, 0, 0, 0, 0}

// read parses server frames until the stream ends.
func (c *dlwsClient) read(conn net.Conn, br *bufio.Reader) error {
	var head [10]byte
	var idle idleDeadline
	for {
		if br.Buffered() == 0 {
			idle.extend(conn)
		}
		if _, err := io.ReadFull(br, head[:2]); err != nil {
			return err
		}
		n := int(head[1] & 0x7F)
		switch n {
		case 126:
			if _, err := io.ReadFull(br, head[2:4]); err != nil {
				return err
			}
			n = int(binary.BigEndian.Uint16(head[2:4]))
		case 127:
			if _, err := io.ReadFull(br, head[2:10]); err != nil {
				return err
			}
			n = int(binary.BigEndian.Uint64(head[2:10]))
		}
		payload, err := c.payload(br, n)
		if err != nil {
			return err
		}
		switch op := head[0] & 0x0F; op {
		case 0x1, 0x0:
			if head[0]&0x80 == 0 { // a fragment: keep it
				c.msg = append(c.msg, payload...)
				continue
			}
			if len(c.msg) > 0 {
				payload = append(c.msg, payload...)
				c.msg = c.msg[:0]
			}
			c.set(payload)
		case 0x8:
			return errClosed
		case 0x9:
			if _, err := conn.Write(pongFrame); err != nil {
				return err
			}
		}
	}
}

// payload returns the next n bytes: a view into the reader's buffer when
// they fit, else a copy in c.msg's spare room.
func (c *dlwsClient) payload(br *bufio.Reader, n int) ([]byte, error) {
	if n <= br.Size() {
		b, err := br.Peek(n)
		if err != nil {
			return nil, err
		}
		_, _ = br.Discard(n)
		return b, nil
	}
	at := len(c.msg)
	buf := append(c.msg, make([]byte, n)...)
	if _, err := io.ReadFull(br, buf[at:]); err != nil {
		return nil, err
	}
	c.msg = buf[:at]
	return buf[at:], nil
}

var watermarkKey = []byte(`"watermark":"`)

// set records an ActivitySet's activities and keeps its watermark.
func (c *dlwsClient) set(b []byte) {
	if len(b) == 0 {
		return
	}
	c.rec.record(b, time.Now().UnixNano())
	if i := bytes.LastIndex(b, watermarkKey); i >= 0 {
		w := b[i+len(watermarkKey):]
		if j := bytes.IndexByte(w, '"'); j >= 0 {
			c.watermark = append(c.watermark[:0], w[:j]...)
		}
	}
}

func cloneValues(v url.Values) url.Values {
	out := make(url.Values, len(v))
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	return out
}

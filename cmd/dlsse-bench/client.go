package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"
)

// sseClient is one benchmark subscriber of dlsse: a raw TCP connection
// from a chosen loopback source address, an HTTP/1.1 GET for the stream,
// and an SSE parser that records each activity's stamp the moment the
// event is complete. One goroutine, one buffered reader, no JSON decoding
// and no allocation per event: the clients share two cores with dlsse and
// the fake, and must cost as little as possible.
//
// Like a browser's EventSource it resumes with Last-Event-ID after the
// retry hint when the stream ends, so a disconnect costs nothing and the
// exactly-once accounting spans it.
type sseClient struct {
	rec     *recorder
	dialer  net.Dialer
	redial         // dlsse's host:port, or the replicas' in turn
	target  string // request target: path and query
	bufSize int

	began  time.Time     // when run started
	lastID []byte        // the last id: field, sent as Last-Event-ID on resume
	retry  time.Duration // the last retry: hint
	data   []byte        // the event being parsed
	event  []byte
	long   []byte // a line longer than the read buffer, being assembled
}

func newSSEClient(rec *recorder, src net.IP, addr, target string, bufSize int) *sseClient {
	return &sseClient{
		rec:     rec,
		dialer:  net.Dialer{LocalAddr: &net.TCPAddr{IP: src}, Timeout: 10 * time.Second},
		redial:  redial{addr: addr},
		target:  target,
		bufSize: bufSize,
		retry:   time.Second,
	}
}

// rotate makes the client reconnect to addrs in turn (addrs[0] is the
// address it was made with): what a round-robin load balancer does with a
// browser's reconnects, so a client whose replica went away comes back on
// another.
func (c *sseClient) rotate(addrs []string) *sseClient {
	c.redial.addrs = addrs
	return c
}

// headTimeout bounds the wait for the answer's head: dlsse answers once
// the session has subscribed, which may wait for Direct Line.
const headTimeout = 60 * time.Second

// idleTimeout ends a stream that says nothing for this long; dlsse sends a
// heartbeat every 15 s, so only a dead stream goes that quiet.
const idleTimeout = 60 * time.Second

// idleDeadline keeps a connection's read deadline between idleTimeout/2
// and idleTimeout ahead. Moving it before every read costs a timer update
// per event, which at chat rates was a tenth of a client's CPU: the
// clients share the cores with dlsse, so their cost is dlsse's latency.
type idleDeadline struct{ set time.Time }

func (d *idleDeadline) extend(conn net.Conn) {
	if now := time.Now(); now.Sub(d.set) > idleTimeout/2 {
		_ = conn.SetReadDeadline(now.Add(idleTimeout))
		d.set = now
	}
}

// run streams until ctx ends (keepStreaming), after each end waiting the
// last retry hint, as EventSource does.
func (c *sseClient) run(ctx context.Context, connected func(error)) {
	c.began = time.Now()
	keepStreaming(ctx, c.rec, &c.redial, connected, c.stream, func() time.Duration { return c.retry })
}

// stream makes one request and parses its stream until it ends.
func (c *sseClient) stream(ctx context.Context, headDone func(error)) error {
	conn, err := c.dialer.DialContext(ctx, "tcp", c.addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	req := make([]byte, 0, 256+len(c.target))
	req = append(req, "GET "...)
	req = append(req, c.target...)
	req = append(req, " HTTP/1.1\r\nHost: "...)
	req = append(req, c.addr...)
	req = append(req, "\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n"...)
	if len(c.lastID) > 0 {
		req = append(req, "Last-Event-ID: "...)
		req = append(req, c.lastID...)
		req = append(req, "\r\n"...)
	}
	req = append(req, "\r\n"...)
	_ = conn.SetDeadline(time.Now().Add(headTimeout))
	if _, err := conn.Write(req); err != nil {
		return err
	}
	br := bufio.NewReaderSize(conn, c.bufSize)
	length, err := readHead(br)
	headDone(err)
	if err != nil {
		return err
	}
	_ = conn.SetWriteDeadline(time.Time{})
	body := br
	if length >= 0 {
		// A short answer with a body (a refusal dlsse still sends as
		// an event stream): parse it, then it has ended.
		body = bufio.NewReader(io.LimitReader(br, length))
	}
	return c.parse(conn, body)
}

// readHead reads the status line and headers. It returns the body's
// Content-Length, or -1 when the body lasts until the connection ends (an
// SSE stream).
func readHead(br *bufio.Reader) (int64, error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return 0, fmt.Errorf("reading status line: %w", err)
	}
	if !bytes.HasPrefix(line, []byte("HTTP/1.1 200 ")) {
		return 0, fmt.Errorf("stream answered %q", bytes.TrimSpace(line))
	}
	length := int64(-1)
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return 0, fmt.Errorf("reading headers: %w", err)
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			return length, nil
		}
		name, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			n, err := strconv.ParseInt(string(value), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("bad Content-Length %q", value)
			}
			length = n
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			return 0, fmt.Errorf("unexpected Transfer-Encoding %q on a stream", value)
		}
	}
}

var (
	eventActivity = []byte("activity")
	eventStatus   = []byte("status")
	eventError    = []byte("error")
)

// parse reads events as the HTML standard says a browser does, until the
// stream fails or ends.
func (c *sseClient) parse(conn net.Conn, br *bufio.Reader) error {
	c.data, c.event = c.data[:0], c.event[:0]
	hasData := false
	var idle idleDeadline
	for {
		if br.Buffered() == 0 {
			idle.extend(conn) // only when a read will reach the socket
		}
		line, err := c.readLine(br)
		if err != nil {
			return err
		}
		if len(line) == 0 {
			if hasData {
				c.dispatch()
			}
			c.data, c.event, hasData = c.data[:0], c.event[:0], false
			continue
		}
		if line[0] == ':' {
			continue // a comment: the heartbeat
		}
		field, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimPrefix(value, []byte(" "))
		switch string(field) { // no allocation: the compiler compares in place
		case "data":
			if hasData {
				c.data = append(c.data, '\n')
			}
			c.data = append(c.data, value...)
			hasData = true
		case "event":
			c.event = append(c.event[:0], value...)
		case "id":
			c.lastID = append(c.lastID[:0], value...)
		case "retry":
			if ms, err := strconv.Atoi(string(value)); err == nil {
				c.retry = time.Duration(ms) * time.Millisecond
			}
		}
	}
}

// readLine returns the next line without its end of line. The slice is
// valid until the next call.
func (c *sseClient) readLine(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		c.long = append(c.long[:0], line...)
		for errors.Is(err, bufio.ErrBufferFull) {
			line, err = br.ReadSlice('\n')
			c.long = append(c.long, line...)
		}
		line = c.long
	}
	if err != nil {
		return nil, err
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}

// dispatch handles a complete event.
func (c *sseClient) dispatch() {
	switch {
	case bytes.Equal(c.event, eventActivity):
		c.rec.record(c.data, time.Now().UnixNano())
	case bytes.Equal(c.event, eventStatus):
		switch {
		case bytes.Contains(c.data, []byte(`"state":"online"`)):
			if c.rec.onlineIn.Load() == 0 {
				c.rec.onlineIn.Store(int64(max(time.Since(c.began), 1)))
			}
			c.rec.online.Store(true)
		case bytes.Contains(c.data, []byte(`"state":"reconnecting"`)), bytes.Contains(c.data, []byte(`"state":"unavailable"`)):
			c.rec.reconnState.Add(1)
		}
	case bytes.Equal(c.event, eventError):
		c.rec.errorEvents.Add(1)
	}
}

package upstream_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/dlsse/dlsse/upstream"
	"github.com/dlsse/dlsse/upstream/directlinetest"
)

// openStream starts a conversation on fake and dials a fresh stream URL for
// it (watermark "" means from now). The stream is closed when the test ends.
func openStream(t *testing.T, fake *directlinetest.Server, c *upstream.Client, conv, tok, watermark string) *upstream.Stream {
	t.Helper()
	info, err := c.Reconnect(testCtx(t), tok, conv, watermark)
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.Dial(testCtx(t), info.StreamURL)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// next calls Next (or, for a stream readWatched, what the session does)
// with a deadline, so a test that is wrong fails instead of hanging. The Next call itself is left to finish when the stream is
// closed at the end of the test.
func next(t *testing.T, s *upstream.Stream) (upstream.ActivitySet, error) {
	t.Helper()
	type result struct {
		set upstream.ActivitySet
		err error
	}
	read := readerOf(s)
	ch := make(chan result, 1)
	go func() {
		set, err := read()
		ch <- result{set, err}
	}()
	select {
	case r := <-ch:
		return r.set, r.err
	case <-time.After(testTimeout):
		t.Fatal("Next did not return")
		return upstream.ActivitySet{}, nil
	}
}

func mustNext(t *testing.T, s *upstream.Stream) upstream.ActivitySet {
	t.Helper()
	set, err := next(t, s)
	if err != nil {
		t.Fatalf("Next: %v", err)
	}
	return set
}

func TestDialSchemes(t *testing.T) {
	fake := newFake(t)
	c, _ := newClient(t, fake.URL, upstream.Config{DialTimeout: 2 * time.Second})
	conv, tok := fake.NewConversation()

	// Each case gets the fake's fresh ws://127.0.0.1:port/... stream URL,
	// its part after the scheme, and its token.
	tests := []struct {
		name     string
		url      func(ws, rest, token string) string
		wantOpen bool
		wantText string // in the error, when the dial must fail
	}{
		{"ws", func(ws, _, _ string) string { return ws }, true, ""},
		{"http is ws", func(_, rest, _ string) string { return "http://" + rest }, true, ""},
		{"upper-case HTTP", func(_, rest, _ string) string { return "HTTP://" + rest }, true, ""},
		// The fake speaks no TLS: that these fail shows TLS was attempted.
		{"https is wss", func(_, rest, _ string) string { return "https://" + rest }, false, ""},
		{"wss", func(_, rest, _ string) string { return "wss://" + rest }, false, ""},
		{"ftp", func(_, rest, _ string) string { return "ftp://" + rest }, false, `scheme "ftp"`},
		{"file", func(_, _, token string) string { return "file:///stream?t=" + token }, false, `scheme "file"`},
		{"no scheme", func(_, rest, _ string) string { return "//" + rest }, false, `scheme ""`},
		{"relative", func(_, _, token string) string { return "/v3/directline/stream?t=" + token }, false, `scheme ""`},
		{"unparsable", func(_, rest, _ string) string { return "ws://[::1" + rest }, false, "does not parse"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			info, err := c.Reconnect(testCtx(t), tok, conv, "")
			if err != nil {
				t.Fatal(err)
			}
			ticket, err := url.Parse(info.StreamURL)
			if err != nil || ticket.Scheme != "ws" {
				t.Fatalf("streamUrl %q", info.StreamURL)
			}
			token := ticket.Query().Get("t")
			before := fake.Stats().SocketsOpened
			s, err := c.Dial(testCtx(t), tt.url(info.StreamURL, strings.TrimPrefix(info.StreamURL, "ws://"), token))
			if tt.wantOpen {
				if err != nil {
					t.Fatalf("Dial: %v", err)
				}
				defer s.Close()
				if err := fake.PushSet(conv, tt.name); err != nil {
					t.Fatal(err)
				}
				if got := texts(t, mustNext(t, s)); len(got) != 1 || got[0] != tt.name {
					t.Errorf("got %v", got)
				}
				return
			}
			if err == nil {
				_ = s.Close()
				t.Fatal("Dial succeeded")
			}
			if tt.wantText != "" && !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("error %q does not say %q", err, tt.wantText)
			}
			var apiErr *upstream.APIError
			if errors.As(err, &apiErr) || errors.Is(err, upstream.ErrUnavailable) {
				t.Errorf("error %v: neither an answer nor the breaker", err)
			}
			if strings.Contains(err.Error(), token) {
				t.Errorf("error %q quotes the stream token", err)
			}
			if n := fake.Stats().SocketsOpened; n != before {
				t.Errorf("a socket was opened")
			}
		})
	}
}

func TestDialRefused(t *testing.T) {
	tests := []struct {
		name     string
		opts     []directlinetest.Option
		dials    int // FailNextDials(dials, status) when > 0
		status   int
		code     string
		terminal bool
		retryOK  bool // the same URL works on the next dial
	}{
		{"service unavailable", nil, 1, http.StatusServiceUnavailable, "ServiceError", false, true},
		{"internal error", nil, 2, http.StatusInternalServerError, "ServiceError", false, false},
		{"too many requests", nil, 1, http.StatusTooManyRequests, "ServiceError", false, true},
		{"stale stream URL", []directlinetest.Option{directlinetest.WithStreamURLWindow(time.Nanosecond)}, 0, http.StatusForbidden, "Forbidden", true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := newFake(t, tt.opts...)
			c, _ := newClient(t, fake.URL, upstream.Config{})
			conv, tok := fake.NewConversation()
			info, err := c.Reconnect(testCtx(t), tok, conv, "")
			if err != nil {
				t.Fatal(err)
			}
			if tt.dials > 0 {
				fake.FailNextDials(tt.dials, tt.status)
			}
			_, err = c.Dial(testCtx(t), info.StreamURL)
			var apiErr *upstream.APIError
			if !errors.As(err, &apiErr) {
				t.Fatalf("Dial: %v (%T), want *APIError", err, err)
			}
			if apiErr.Status != tt.status || apiErr.Code != tt.code || apiErr.Terminal() != tt.terminal {
				t.Errorf("got %+v (terminal %v), want %d %s terminal %v", apiErr, apiErr.Terminal(), tt.status, tt.code, tt.terminal)
			}
			if n := fake.Stats().SocketsOpened; n != 0 {
				t.Errorf("SocketsOpened = %d after a refused dial", n)
			}
			s, err := c.Dial(testCtx(t), info.StreamURL)
			if (err == nil) != tt.retryOK {
				t.Fatalf("second dial: %v, want success %v", err, tt.retryOK)
			}
			if err == nil {
				_ = s.Close()
			}
		})
	}
}

// TestDialErrorsNeverQuoteToken: a stream URL carries its credential in t=,
// and dial errors end up in logs. Whatever goes wrong, the error must not
// quote it.
func TestDialErrorsNeverQuoteToken(t *testing.T) {
	const token = "SEKRET-t0ken_value-0123456789"
	fake := newFake(t, directlinetest.WithStreamURLWindow(time.Nanosecond))
	conv, _ := fake.NewConversation()
	fakeURL := strings.Replace(fake.URL, "http://", "ws://", 1) + "/v3/directline/conversations/" + conv + "/stream?t=" + token

	closedPort := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		return addr
	}()
	garbage := rawServer(t, func(conn net.Conn) {
		_, _ = conn.Write([]byte("this is not HTTP at all\r\n\r\n"))
	})
	redirect := rawServer(t, func(conn net.Conn) {
		_, _ = conn.Write([]byte("HTTP/1.1 302 Found\r\nLocation: ws://elsewhere/?t=" + token + "\r\nContent-Length: 0\r\n\r\n"))
	})
	hang := rawServer(t, nil)

	tests := []struct {
		name string
		url  string
		fail func()
	}{
		{"refused: stale URL", fakeURL, nil},
		{"refused: 503", fakeURL, func() { fake.FailNextDials(1, http.StatusServiceUnavailable) }},
		{"refused as http URL", strings.Replace(fakeURL, "ws://", "http://", 1), nil},
		{"closed port", "ws://" + closedPort + "/v3/directline/conversations/c/stream?t=" + token, nil},
		{"closed port, https", "https://" + closedPort + "/stream?t=" + token, nil},
		{"not HTTP", "ws://" + garbage + "/stream?t=" + token, nil},
		{"redirect", "ws://" + redirect + "/stream?t=" + token, nil},
		{"handshake timeout", "ws://" + hang + "/stream?t=" + token, nil},
		{"TLS to a plain server", "wss://" + strings.TrimPrefix(fake.URL, "http://") + "/stream?t=" + token, nil},
		{"unknown host", "ws://no-such-host.invalid/stream?t=" + token, nil},
		{"bad scheme", "gopher://x/stream?t=" + token, nil},
		{"bad URL", "ws://%zz/stream?t=" + token, nil},
	}
	c, _ := newClient(t, fake.URL, upstream.Config{DialTimeout: 300 * time.Millisecond})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.fail != nil {
				tt.fail()
			}
			s, err := c.Dial(testCtx(t), tt.url)
			if err == nil {
				_ = s.Close()
				t.Fatal("Dial succeeded")
			}
			for e := err; e != nil; e = errors.Unwrap(e) {
				for _, text := range []string{e.Error(), fmt.Sprintf("%+v", e), fmt.Sprintf("%#v", e)} {
					if strings.Contains(text, token) || strings.Contains(text, "t=") {
						t.Errorf("error quotes the stream URL: %s", text)
					}
				}
			}
		})
	}
}

// rawServer accepts TCP connections on loopback and hands each to handle
// (nil: hold it open without a word) until the test ends.
func rawServer(t *testing.T, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, conn)
			mu.Unlock()
			if handle != nil {
				handle(conn)
				conn.Close()
			}
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

func TestNextDeliversSetsInOrder(t *testing.T) {
	fake := newFake(t)
	c, _ := newClient(t, fake.URL, upstream.Config{})
	conv, tok := fake.NewConversation()
	s := openStream(t, fake, c, conv, tok, "")

	if err := fake.Push(conv, "a", "b", "c"); err != nil {
		t.Fatal(err)
	}
	if err := fake.PushSet(conv, "d", "e"); err != nil {
		t.Fatal(err)
	}
	if err := fake.PushTyping(conv); err != nil {
		t.Fatal(err)
	}
	if err := fake.Push(conv, "f"); err != nil {
		t.Fatal(err)
	}
	want := []struct {
		texts     string
		watermark string
	}{
		{"a", "1"}, {"b", "2"}, {"c", "3"},
		{"d,e", "5"},
		{"typing", ""}, // ephemeral: no watermark
		{"f", "6"},
	}
	for i, w := range want {
		set := mustNext(t, s)
		if got := strings.Join(texts(t, set), ","); got != w.texts || set.Watermark != w.watermark {
			t.Errorf("set %d: %s at %q, want %s at %q", i, got, set.Watermark, w.texts, w.watermark)
		}
	}
}

func TestNextReplaysBacklogAfterWatermark(t *testing.T) {
	fake := newFake(t)
	c, _ := newClient(t, fake.URL, upstream.Config{})
	conv, tok := fake.NewConversation()
	if err := fake.Push(conv, "a", "b", "c"); err != nil {
		t.Fatal(err)
	}
	s := openStream(t, fake, c, conv, tok, "1")
	set := mustNext(t, s)
	if got := strings.Join(texts(t, set), ","); got != "b,c" || set.Watermark != "3" {
		t.Fatalf("backlog: %s at %q, want b,c at 3", got, set.Watermark)
	}
	if err := fake.Push(conv, "d"); err != nil {
		t.Fatal(err)
	}
	set = mustNext(t, s)
	if got := strings.Join(texts(t, set), ","); got != "d" || set.Watermark != "4" {
		t.Fatalf("live: %s at %q, want d at 4", got, set.Watermark)
	}
}

// TestNextSkipsKeepalives runs against the fake sending empty keepalive
// frames every millisecond: none of them may surface as a set.
func TestNextSkipsKeepalives(t *testing.T) {
	fake := newFake(t, directlinetest.WithKeepalive(time.Millisecond))
	c, _ := newClient(t, fake.URL, upstream.Config{})
	conv, tok := fake.NewConversation()
	s := openStream(t, fake, c, conv, tok, "")
	for i := range 20 {
		if err := fake.Push(conv, fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
		set := mustNext(t, s)
		if got := texts(t, set); len(got) != 1 || got[0] != fmt.Sprint(i) || set.Watermark != fmt.Sprint(i+1) {
			t.Fatalf("set %d: %v at %q", i, got, set.Watermark)
		}
	}
}

// scriptedServer serves one WebSocket per connection and runs script on it.
// Handlers are waited for when the test ends; each must return once the
// client has gone.
func scriptedServer(t *testing.T, script func(conn *websocket.Conn)) string {
	t.Helper()
	var wg sync.WaitGroup
	up := websocket.Upgrader{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Counted before the upgrade: httptest forgets the connection
		// once it is hijacked, and then Close no longer orders us.
		wg.Add(1)
		defer wg.Done()
		conn, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer conn.Close()
		script(conn)
	}))
	t.Cleanup(func() {
		srv.Close()
		wg.Wait()
	})
	return "ws" + strings.TrimPrefix(srv.URL, "http") + "/stream?t=tok"
}

// drain reads until the client goes away (answering its close frame).
func drain(conn *websocket.Conn) {
	_ = conn.SetReadDeadline(time.Now().Add(testTimeout))
	for {
		if _, _, err := conn.ReadMessage(); err != nil {
			return
		}
	}
}

// TestNextFraming checks each kind of frame Direct Line may send.
func TestNextFraming(t *testing.T) {
	eachReadMode(t, func(t *testing.T, read func(*upstream.Stream)) {
		frames := []struct {
			typ  int
			data string
		}{
			{websocket.TextMessage, ""},                                // keepalive
			{websocket.BinaryMessage, `{"activities":[{"id":"bin"}]}`}, // not text: skipped
			{websocket.TextMessage, `{"type":"future"}`},               // no activities: skipped
			{websocket.TextMessage, `{"activities":[{"id":"1"}],"watermark":"1"}`},
			{websocket.TextMessage, ""},
			{websocket.TextMessage, `not json`}, // *FrameError, the stream goes on
			{websocket.TextMessage, `{"activities":{}}`},
			{websocket.TextMessage, `{"activities":[{"id":"2"},{"id":"3"}],"watermark":3}`},
			{websocket.TextMessage, `{"activities":[],"watermark":null}`},
		}
		url := scriptedServer(t, func(conn *websocket.Conn) {
			for _, f := range frames {
				if err := conn.WriteMessage(f.typ, []byte(f.data)); err != nil {
					return
				}
			}
			_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(4001, "bye"), time.Now().Add(time.Second))
			drain(conn)
		})
		c, _ := newClient(t, "http://127.0.0.1:1", upstream.Config{})
		s, err := c.Dial(testCtx(t), url)
		if err != nil {
			t.Fatal(err)
		}
		read(s)
		t.Cleanup(func() { _ = s.Close() })

		type outcome struct {
			ids       string
			watermark string
			frameErr  bool
		}
		want := []outcome{
			{ids: "1", watermark: "1"},
			{frameErr: true},
			{frameErr: true},
			{ids: "2,3", watermark: "3"},
			{ids: "", watermark: ""},
		}
		for i, w := range want {
			set, err := next(t, s)
			var fe *upstream.FrameError
			if w.frameErr {
				if !errors.As(err, &fe) || fe.Unwrap() == nil || !strings.Contains(fe.Error(), "malformed stream message") {
					t.Fatalf("step %d: %v, want *FrameError", i, err)
				}
				continue
			}
			if err != nil {
				t.Fatalf("step %d: %v", i, err)
			}
			var ids []string
			for _, raw := range set.Activities {
				var a struct{ ID string }
				_ = json.Unmarshal(raw, &a)
				ids = append(ids, a.ID)
			}
			if got := strings.Join(ids, ","); got != w.ids || set.Watermark != w.watermark {
				t.Errorf("step %d: ids %q at %q, want %q at %q", i, got, set.Watermark, w.ids, w.watermark)
			}
		}
		_, err = next(t, s)
		var ce *upstream.ClosedError
		if !errors.As(err, &ce) || ce.Code != 4001 || ce.Reason != "bye" || upstream.IsCollision(err) {
			t.Fatalf("end: %v, want ClosedError 4001 bye", err)
		}
	})
}

func TestStreamClosedByService(t *testing.T) {
	eachReadMode(t, func(t *testing.T, read func(*upstream.Stream)) {
		tests := []struct {
			name      string
			end       func(t *testing.T, fake *directlinetest.Server, c *upstream.Client, conv, tok string)
			code      int // 0: not a *ClosedError
			collision bool
		}{
			{"CloseSocket collision", func(t *testing.T, f *directlinetest.Server, _ *upstream.Client, conv, _ string) {
				f.CloseSocket(conv, websocket.ClosePolicyViolation, "collision")
			}, websocket.ClosePolicyViolation, true},
			{"second socket", func(t *testing.T, f *directlinetest.Server, c *upstream.Client, conv, tok string) {
				openStream(t, f, c, conv, tok, "")
			}, websocket.ClosePolicyViolation, true},
			{"1008 for another reason", func(t *testing.T, f *directlinetest.Server, _ *upstream.Client, conv, _ string) {
				f.CloseSocket(conv, websocket.ClosePolicyViolation, "policy")
			}, websocket.ClosePolicyViolation, false},
			{"normal close", func(t *testing.T, f *directlinetest.Server, _ *upstream.Client, conv, _ string) {
				f.CloseSocket(conv, websocket.CloseNormalClosure, "done")
			}, websocket.CloseNormalClosure, false},
			{"server error", func(t *testing.T, f *directlinetest.Server, _ *upstream.Client, conv, _ string) {
				f.CloseSocket(conv, websocket.CloseInternalServerErr, "")
			}, websocket.CloseInternalServerErr, false},
			{"dropped", func(t *testing.T, f *directlinetest.Server, _ *upstream.Client, conv, _ string) {
				if n := f.DropSockets(conv); n != 1 {
					t.Fatalf("dropped %d sockets", n)
				}
			}, 0, false},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				fake := newFake(t)
				c, _ := newClient(t, fake.URL, upstream.Config{})
				conv, tok := fake.NewConversation()
				s := openStream(t, fake, c, conv, tok, "")
				read(s)
				// What was queued before the end still arrives first.
				if err := fake.Push(conv, "before"); err != nil {
					t.Fatal(err)
				}
				if got := texts(t, mustNext(t, s)); len(got) != 1 || got[0] != "before" {
					t.Fatalf("got %v", got)
				}
				tt.end(t, fake, c, conv, tok)
				_, err := next(t, s)
				if err == nil {
					t.Fatal("Next returned a set after the end")
				}
				var ce *upstream.ClosedError
				switch {
				case tt.code != 0 && (!errors.As(err, &ce) || ce.Code != tt.code):
					t.Errorf("got %v, want ClosedError %d", err, tt.code)
				case tt.code == 0 && errors.As(err, &ce):
					t.Errorf("got %v, want a transport error", err)
				}
				if got := upstream.IsCollision(err); got != tt.collision {
					t.Errorf("IsCollision(%v) = %v, want %v", err, got, tt.collision)
				}
				// The stream stays ended.
				if _, err := next(t, s); err == nil {
					t.Error("Next after the end returned a set")
				}
			})
		}
	})
}

func TestIsCollision(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{nil, false},
		{errors.New("collision"), false},
		{&upstream.ClosedError{Code: 1008, Reason: "collision"}, true},
		{fmt.Errorf("session: %w", &upstream.ClosedError{Code: 1008, Reason: "collision"}), true},
		{&upstream.ClosedError{Code: 1008, Reason: "Collision!"}, false},
		{&upstream.ClosedError{Code: 1000, Reason: ""}, false},
	}
	for _, tt := range tests {
		if got := upstream.IsCollision(tt.err); got != tt.want {
			t.Errorf("IsCollision(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

func TestCloseIsIdempotentAndUnblocksNext(t *testing.T) {
	eachReadMode(t, func(t *testing.T, read func(*upstream.Stream)) {
		fake := newFake(t)
		c, _ := newClient(t, fake.URL, upstream.Config{})
		conv, tok := fake.NewConversation()
		s := openStream(t, fake, c, conv, tok, "")
		read(s)
		ctx := testCtx(t)
		if err := fake.WaitFor(ctx, func(st directlinetest.Stats) bool { return st.SocketsOpen == 1 }); err != nil {
			t.Fatal(err)
		}

		// Next blocks: nothing is sent.
		done := make(chan error, 1)
		go func() {
			_, err := readerOf(s)()
			done <- err
		}()
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- s.Close()
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Errorf("Close: %v", err)
			}
		}
		select {
		case err := <-done:
			if err == nil {
				t.Error("a closed stream's Next returned a set")
			}
		case <-time.After(testTimeout):
			t.Fatal("Close did not unblock Next")
		}
		if err := s.Close(); err != nil {
			t.Errorf("Close again: %v", err)
		}
		if _, err := next(t, s); err == nil {
			t.Error("Next after Close returned a set")
		}
		// The client said goodbye: the service sees the socket go.
		if err := fake.WaitFor(ctx, func(st directlinetest.Stats) bool { return st.SocketsOpen == 0 }); err != nil {
			t.Fatalf("the fake still has the socket open: %v", err)
		}
	})
}

// TestKeepaliveKeepsStreamAlive: the client pings every Keepalive and a
// pong extends the read deadline, so a stream that carries nothing outlives
// ReadTimeout many times over. The server also sees the empty keepalive
// message the official client sends.
func TestKeepaliveKeepsStreamAlive(t *testing.T) {
	eachReadMode(t, func(t *testing.T, read func(*upstream.Stream)) {
		const keepalive, readTimeout = 10 * time.Millisecond, 150 * time.Millisecond
		url := scriptedServer(t, func(conn *websocket.Conn) {
			var pings, empties int
			sent := false
			conn.SetPingHandler(func(data string) error {
				pings++
				return conn.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
			})
			_ = conn.SetReadDeadline(time.Now().Add(testTimeout))
			for {
				typ, msg, err := conn.ReadMessage()
				if err != nil {
					return
				}
				if typ == websocket.TextMessage && len(msg) == 0 {
					empties++
				}
				// 45 keepalives are three times ReadTimeout.
				if !sent && pings >= 45 && empties >= 45 {
					sent = true
					_ = conn.WriteMessage(websocket.TextMessage, []byte(`{"activities":[{"id":"late"}],"watermark":"1"}`))
				}
			}
		})
		c, _ := newClient(t, "http://127.0.0.1:1", upstream.Config{Keepalive: keepalive, ReadTimeout: readTimeout})
		s, err := c.Dial(testCtx(t), url)
		if err != nil {
			t.Fatal(err)
		}
		read(s)
		t.Cleanup(func() { _ = s.Close() })
		start := time.Now()
		set, err := next(t, s)
		if err != nil {
			t.Fatalf("Next after %v: %v", time.Since(start), err)
		}
		if set.Watermark != "1" || len(set.Activities) != 1 {
			t.Fatalf("got %+v", set)
		}
	})
}

// TestSilentStreamTimesOut: a service that neither sends nor answers pings
// is dead after ReadTimeout.
func TestSilentStreamTimesOut(t *testing.T) {
	eachReadMode(t, func(t *testing.T, read func(*upstream.Stream)) {
		gone := make(chan struct{})
		url := scriptedServer(t, func(conn *websocket.Conn) {
			<-gone // never reads: pings go unanswered
		})
		const readTimeout = 50 * time.Millisecond
		c, _ := newClient(t, "http://127.0.0.1:1", upstream.Config{Keepalive: 10 * time.Millisecond, ReadTimeout: readTimeout})
		start := time.Now() // the deadline is set during Dial, so after this
		s, err := c.Dial(testCtx(t), url)
		if err != nil {
			t.Fatal(err)
		}
		read(s)
		defer close(gone)
		defer s.Close()
		_, err = next(t, s)
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("got %v, want a read timeout", err)
		}
		if d := time.Since(start); d < readTimeout {
			t.Errorf("timed out after %v, before ReadTimeout", d)
		}
	})
}

func TestReadLimit(t *testing.T) {
	eachReadMode(t, func(t *testing.T, read func(*upstream.Stream)) {
		big := `{"activities":[{"text":"` + strings.Repeat("x", 2048) + `"}]}`
		url := scriptedServer(t, func(conn *websocket.Conn) {
			_ = conn.WriteMessage(websocket.TextMessage, []byte(`{"activities":[{"text":"small"}]}`))
			_ = conn.WriteMessage(websocket.TextMessage, []byte(big))
			drain(conn)
		})
		c, _ := newClient(t, "http://127.0.0.1:1", upstream.Config{ReadLimit: 1024})
		s, err := c.Dial(testCtx(t), url)
		if err != nil {
			t.Fatal(err)
		}
		read(s)
		t.Cleanup(func() { _ = s.Close() })
		if got := texts(t, mustNext(t, s)); len(got) != 1 || got[0] != "small" {
			t.Fatalf("got %v", got)
		}
		_, err = next(t, s)
		if !errors.Is(err, upstream.ErrMessageTooLarge) {
			t.Fatalf("got %v, want ErrMessageTooLarge", err)
		}
	})
}

// TestKeepaliveTimerIsSetBeforeItFires: with a keepalive shorter than the
// time Dial takes to store its timer, the first keepalive runs before
// Stream.timer is assigned.
func TestKeepaliveTimerIsSetBeforeItFires(t *testing.T) {
	fake := newFake(t)
	c, _ := newClient(t, fake.URL, upstream.Config{Keepalive: time.Nanosecond, ReadTimeout: time.Minute})
	conv, tok := fake.NewConversation()
	for range 200 {
		info, err := c.Reconnect(testCtx(t), tok, conv, "")
		if err != nil {
			t.Fatal(err)
		}
		s, err := c.Dial(testCtx(t), info.StreamURL)
		if err != nil {
			t.Fatal(err)
		}
		_ = s.Close()
	}
}

// TestDialCancelled: cancelling a dial stuck in its handshake returns at
// once with context.Canceled.
func TestDialCancelled(t *testing.T) {
	hang := rawServer(t, nil)
	c, _ := newClient(t, "http://127.0.0.1:1", upstream.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := c.Dial(ctx, "ws://"+hang+"/stream?t=tok")
		errc <- err
	}()
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v, want context.Canceled", err)
		}
	case <-time.After(testTimeout):
		t.Fatal("a cancelled Dial did not return")
	}
}

// TestNoPingWhileDirectLineTalks: while Direct Line sends frames of its own
// (its keepalives, activities), they prove the line works, and the
// keepalive carries no ping: a pong would be one more wake-up per socket.
// The empty message the official client sends still goes every time.
func TestNoPingWhileDirectLineTalks(t *testing.T) {
	type counts struct{ pings, empties int }
	got := make(chan counts, 1)
	url := scriptedServer(t, func(conn *websocket.Conn) {
		stop := make(chan struct{})
		defer close(stop)
		go func() { // Direct Line's keepalives, more often than the client's
			tick := time.NewTicker(2 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
					if conn.WriteMessage(websocket.TextMessage, nil) != nil {
						return
					}
				}
			}
		}()
		var c counts
		conn.SetPingHandler(func(string) error { c.pings++; return nil })
		_ = conn.SetReadDeadline(time.Now().Add(testTimeout))
		for {
			typ, msg, err := conn.ReadMessage()
			if err != nil {
				return
			}
			if typ == websocket.TextMessage && len(msg) == 0 {
				if c.empties++; c.empties == 20 {
					got <- c
				}
			}
		}
	})
	eachReadMode(t, func(t *testing.T, read func(*upstream.Stream)) {
		c, _ := newClient(t, "http://127.0.0.1:1", upstream.Config{Keepalive: 20 * time.Millisecond})
		s := dialRead(t, c, url, read)
		go func() { _, _ = readerOf(s)() }() // reads until the stream closes
		select {
		case n := <-got:
			// The first keepalive may ping (nothing heard yet), and a
			// stalled test server may miss a tick now and then.
			if n.pings > n.empties/4 {
				t.Errorf("%d pings with %d keepalives, while Direct Line kept talking", n.pings, n.empties)
			}
		case <-time.After(testTimeout):
			t.Fatal("the client sent no keepalives")
		}
	})
}

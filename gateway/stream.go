package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/gofiber/fiber/v2"
	"github.com/rs/zerolog"

	"github.com/dlsse/dlsse/internal/wsframe"
	"github.com/dlsse/dlsse/session"
	"github.com/dlsse/dlsse/sse"
	"github.com/dlsse/dlsse/upstream"
)

// streamHead starts every successful stream; extra holds header lines the
// middleware chose (CORS). The body is delimited by the connection's
// close: an SSE stream only ever ends that way, and it spares a chunk
// header per write.
func streamHead(extra string) []byte {
	return []byte("HTTP/1.1 200 OK\r\n" +
		"Content-Type: text/event-stream; charset=utf-8\r\n" +
		"Cache-Control: no-cache, no-transform\r\n" +
		"X-Accel-Buffering: no\r\n" +
		"Connection: close\r\n" +
		extra +
		"\r\n")
}

// passedHeaders are the response headers set by middleware (CORS) that a
// hijacked stream must still send, since it writes its answer itself.
var passedHeaders = []string{
	fiber.HeaderAccessControlAllowOrigin,
	fiber.HeaderAccessControlAllowCredentials,
	fiber.HeaderAccessControlExposeHeaders,
	fiber.HeaderVary,
}

// middlewareHeaders copies passedHeaders from the response being built, as
// ready header lines.
func middlewareHeaders(c *fiber.Ctx) string {
	var b strings.Builder
	for _, name := range passedHeaders {
		v := string(c.Response().Header.Peek(name))
		if v == "" || strings.ContainsAny(v, "\r\n") {
			continue
		}
		b.WriteString(name + ": " + v + "\r\n")
	}
	return b.String()
}

// streamRequest is what a stream needs from its HTTP request, copied out
// before the connection is hijacked (the request is recycled after).
type streamRequest struct {
	conversationID string
	credential     string
	cursor         *session.Cursor
	remote         string
	headers        string       // extra header lines for the answer (CORS)
	wire           session.Wire // WireWebSocket: an upgrade, answered 101
	accept         string       // WireWebSocket: Sec-WebSocket-Accept
}

// stream answers GET /conversations/{id}/stream, as an event stream or,
// asked to upgrade, as a WebSocket (websocket.go). It checks the request,
// then takes the connection over: the subscription (which may wait for
// Direct Line) and the event loop run on the hijacked connection, so the
// outcome, whatever it is, is written there as a complete HTTP answer.
func (g *Gateway) stream(c *fiber.Ctx) error {
	var accept string
	upgrade := websocket.FastHTTPIsWebSocketUpgrade(c.Context())
	if upgrade {
		var err error
		if accept, err = g.acceptUpgrade(c); err != nil {
			return err
		}
	}
	req, err := g.parseStreamRequest(c)
	if err != nil {
		return err
	}
	if upgrade {
		req.wire, req.accept = session.WireWebSocket, accept
	}
	req.headers = middlewareHeaders(c)
	c.Context().HijackSetNoResponse(true)
	c.Context().Hijack(func(hijacked net.Conn) {
		// fasthttp holds the request's context and its read buffer
		// (max_header_bytes) until a hijack handler returns: kept for
		// the life of a stream, that is most of a stream's memory. So
		// the stream moves to goroutines of its own, on the raw
		// connection, and this handler returns at once; the server
		// runs with KeepHijackedConns, so the connection is ours to
		// close. (A stream request has no body: nothing is left unread
		// in the buffer given back.)
		conn := rawConn(hijacked)
		if !g.streams.add() {
			// Shutting down: a 200 that ends at once, with a
			// jittered retry hint, sends the browser to another
			// replica; a 503 would make EventSource give up.
			g.refuseStream(conn, req, session.ErrClosed, g.lg)
			conn.Close()
			return
		}
		go g.openStream(conn, req)
	})
	return nil
}

// openStream admits and subscribes a stream, then starts it. Subscribing
// can be deep work (a Direct Line call, JSON); this goroutine ends once the
// stream is started, and the stream itself holds a goroutine only while it
// has something to write (sse.Start): an idle chat costs its state, not a
// parked goroutine's stack.
func (g *Gateway) openStream(conn net.Conn, req streamRequest) {
	sub, release := g.subscribeStream(conn, req)
	if sub == nil {
		conn.Close()
		g.streams.done()
		return
	}
	g.cfg.Observer.StreamOpened(req.wire)
	sse.Start(g.stopCtx, conn, sub, g.streamOptions(conn, req.wire), func(reason sse.Reason) {
		g.cfg.Observer.StreamClosed(req.wire, reason)
		sub.Close()
		release()
		if reason == session.ReasonProtocolError {
			closeAfterPeer(conn)
		} else {
			conn.Close()
		}
		if e := g.lg.Debug(); e.Enabled() {
			e.Str("conversation_id", sub.ConversationID()).Stringer("wire", req.wire).Str("reason", string(reason)).Msg("stream closed")
		}
		g.streams.done() // last: Shutdown may return once it is called
	})
}

// subscribeStream answers a refused stream itself and returns nil; for an
// accepted one it writes the response head and returns the subscription
// and the admission to release when the stream ends.
func (g *Gateway) subscribeStream(conn net.Conn, req streamRequest) (*session.Subscriber, func()) {
	lg := g.lg.With().Str("conversation_id", req.conversationID).Logger()
	ctx, cancel := context.WithTimeout(g.stopCtx, g.cfg.SubscribeWait)
	defer cancel()
	// The credential first: a stranger takes no slot and opens no
	// session, and an ended conversation answers garbage as an unknown
	// one does.
	if err := g.sessions.Verify(ctx, req.conversationID, req.credential); err != nil {
		g.refuseStream(conn, req, err, lg)
		return nil, nil
	}
	release, refused := g.admit.admit(req.conversationID, req.remote)
	if refused != nil {
		writeErrorResponse(conn, req.headers, refused)
		return nil, nil
	}
	sub, err := g.sessions.Subscribe(ctx, session.Request{
		ConversationID: req.conversationID,
		Credential:     req.credential,
		Cursor:         req.cursor,
		Wire:           req.wire,
	})
	if err != nil {
		release()
		g.refuseStream(conn, req, err, lg)
		return nil, nil
	}
	head := streamHead(req.headers)
	if req.wire == session.WireWebSocket {
		head = upgradeHead(req.accept, req.headers)
	}
	_ = conn.SetWriteDeadline(time.Now().Add(g.cfg.SSEWriteTimeout))
	if _, err := conn.Write(head); err != nil {
		sub.Close()
		release()
		return nil, nil
	}
	lg.Debug().Str("remote", req.remote).Stringer("wire", req.wire).Msg("stream opened")
	return sub, release
}

// rawConn unwraps fasthttp's hijacked connection, whose reads go through a
// buffer fasthttp takes back when the hijack handler returns.
func rawConn(c net.Conn) net.Conn {
	if u, ok := c.(interface{ UnsafeConn() net.Conn }); ok {
		return u.UnsafeConn()
	}
	return c
}

// parseStreamRequest reads the conversation, the credential (Bearer header
// or t= query) and the resume cursor (Last-Event-ID, lastEventId, or a
// Direct Line watermark, in that order). Everything is copied (the app is
// Immutable; strings.Clone says so here too): the request's buffers are
// recycled once the connection is hijacked.
func (g *Gateway) parseStreamRequest(c *fiber.Ctx) (streamRequest, error) {
	req := streamRequest{conversationID: strings.Clone(c.Params("id")), remote: g.clientKey(c)}
	if err := validConversationID(req.conversationID); err != nil {
		return req, err
	}
	if c.Get(fiber.HeaderAuthorization) != "" {
		cred, err := requestCredential(c)
		if err != nil {
			return req, err
		}
		req.credential = cred
	} else {
		req.credential = strings.Clone(c.Query("t"))
		if req.credential == "" {
			return req, newError(http.StatusUnauthorized, codeBadArgument,
				"missing credential: send Authorization: Bearer, or t= in the URL")
		}
		if !upstream.ValidCredential(req.credential) {
			return req, errMalformedCredential
		}
	}
	raw := strings.Clone(c.Get("Last-Event-ID"))
	if raw == "" {
		raw = strings.Clone(c.Query("lastEventId"))
	}
	if raw != "" {
		cur, err := session.ParseCursor(raw)
		if err != nil {
			return req, newError(http.StatusBadRequest, codeBadArgument, "invalid Last-Event-ID")
		}
		req.cursor = &cur
		return req, nil
	}
	if wm := strings.Clone(c.Query("watermark")); wm != "" {
		if session.ValidateWatermark(wm) != nil {
			return req, newError(http.StatusBadRequest, codeBadArgument, "invalid watermark")
		}
		req.cursor = &session.Cursor{Base: wm}
	}
	return req, nil
}

// refuseStream answers a stream that cannot be served. A refusal by Direct
// Line is final and gets its real status, so EventSource stops. A passing
// failure gets 200 with a status event and the stream ends: EventSource
// gives up for good on any non-200, but retries a 200 that ends. A
// WebSocket client gets the real status whatever it is: Direct Line
// clients retry any failed stream through the reconnect route.
func (g *Gateway) refuseStream(conn net.Conn, req streamRequest, err error, lg zerolog.Logger) {
	headers := req.headers
	if req.wire == session.WireWebSocket {
		lg.Info().Err(err).Msg("WebSocket stream refused")
		writeErrorResponse(conn, headers, toAPIError(err))
		return
	}
	if errors.Is(err, session.ErrEnded) {
		// 204 is the standard "stop, don't reconnect" for EventSource.
		_ = conn.SetWriteDeadline(time.Now().Add(g.cfg.SSEWriteTimeout))
		_, _ = conn.Write([]byte("HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: close\r\n" + headers + "\r\n"))
		return
	}
	ae := toAPIError(err)
	var upErr *upstream.APIError
	if (errors.As(err, &upErr) && upErr.Terminal()) || errors.Is(err, session.ErrBadCursor) {
		lg.Info().Int("status", ae.status).Str("code", ae.code).Msg("stream refused")
		writeErrorResponse(conn, headers, ae)
		return
	}
	lg.Info().Err(err).Msg("stream not served now")
	wait := g.cfg.Retry
	var ue *upstream.UnavailableError
	if errors.As(err, &ue) {
		wait = max(wait, ue.RetryIn) // no point before the breaker lets a call through
	}
	wait += rand.N(g.cfg.ShutdownJitter + 1)
	status, _ := json.Marshal(session.Status{
		State:   session.StateUnavailable,
		Reason:  ae.message,
		RetryIn: wait.Milliseconds(),
	})
	b := append(streamHead(headers), sse.AppendRetry(nil, wait)...)
	b = sse.AppendEvent(b, "", "status", status)
	_ = conn.SetWriteDeadline(time.Now().Add(g.cfg.SSEWriteTimeout))
	_, _ = conn.Write(b)
}

// comeBackLater answers a stream request with a 200 event stream that
// says "unavailable" and ends at once, with a jittered retry hint: the one
// refusal EventSource retries by itself.
func (g *Gateway) comeBackLater(c *fiber.Ctx, reason string) error {
	wait := g.cfg.Retry + rand.N(g.cfg.ShutdownJitter+1)
	status, _ := json.Marshal(session.Status{State: session.StateUnavailable, Reason: reason, RetryIn: wait.Milliseconds()})
	b := sse.AppendRetry(nil, wait)
	b = sse.AppendEvent(b, "", "status", status)
	c.Set(fiber.HeaderContentType, "text/event-stream; charset=utf-8")
	c.Set(fiber.HeaderCacheControl, "no-cache, no-transform")
	c.Set("X-Accel-Buffering", "no")
	return c.Status(http.StatusOK).Send(b)
}

// streamOptions are the stream loop's options for a connection: the
// shared ones, and how it hears from its client.
func (g *Gateway) streamOptions(conn net.Conn, wire session.Wire) sse.Options {
	opt := g.sseOptions
	base, watched := newConnInbound(conn, &g.watchers)
	if wire == session.WireWebSocket {
		opt = g.wsOptions
		if watched {
			opt.Inbound = &wsInbound{connInbound: base, frames: wsframe.Reader{MaxMessage: maxClientMessage}}
		}
		return opt
	}
	if watched {
		opt.Inbound = &sseInbound{connInbound: base}
	}
	return opt
}

// shutdownClose is the last frame of a WebSocket stream when the gateway
// stops: Direct Line clients reconnect after any close, through the
// reconnect route, after a random 3–15 s (their own jitter).
func shutdownClose(dst []byte) []byte {
	return wsframe.AppendClose(dst, wsframe.CloseGoingAway, "server restarting; reconnect")
}

// shutdownRetry is the last thing a stream gets when the gateway stops: a
// retry hint with jitter, so the browsers move to another replica spread
// out rather than all at once.
func (g *Gateway) shutdownRetry(dst []byte) []byte {
	d := g.cfg.Retry + rand.N(g.cfg.ShutdownJitter+1)
	return sse.AppendRetry(dst, d)
}

// writeErrorResponse writes a complete Direct Line-shaped error answer on
// a hijacked connection.
func writeErrorResponse(conn net.Conn, headers string, ae *apiError) {
	body := upstream.ErrorJSON(ae.code, ae.message)
	w := bufio.NewWriterSize(conn, 512)
	w.WriteString("HTTP/1.1 " + strconv.Itoa(ae.status) + " " + http.StatusText(ae.status) + "\r\n")
	w.WriteString("Content-Type: application/json; charset=utf-8\r\n")
	w.WriteString("Cache-Control: no-store\r\n")
	if ae.retryAfter > 0 {
		w.WriteString("Retry-After: " + retryAfterSeconds(ae.retryAfter) + "\r\n")
	}
	w.WriteString("Content-Length: " + strconv.Itoa(len(body)) + "\r\nConnection: close\r\n" + headers + "\r\n")
	w.Write(body)
	_ = conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_ = w.Flush()
}

// closeAfterPeer closes a connection whose client broke the protocol,
// after the close frame that says why: it ends its side first (FIN) and
// drops what the client still sends, for a moment, before closing. Closed
// at once with the client's bytes unread, the socket would answer with a
// reset, which can destroy the close frame before the client reads it (an
// oversized message still arriving, say). On the stream's own goroutine,
// which is ending; Shutdown waits at most lingerFor for it.
func closeAfterPeer(conn net.Conn) {
	defer conn.Close()
	cw, ok := conn.(interface{ CloseWrite() error })
	if !ok || cw.CloseWrite() != nil {
		return
	}
	_ = conn.SetReadDeadline(time.Now().Add(lingerFor))
	buf := make([]byte, 4<<10)
	for budget := 1 << 20; budget > 0; {
		n, err := conn.Read(buf)
		if err != nil {
			return
		}
		budget -= n
	}
}

// lingerFor bounds closeAfterPeer's wait for the client to close.
const lingerFor = 500 * time.Millisecond

package directlinetest

import (
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/fasthttp/websocket"
)

// ticket is what the opaque t parameter of a streamUrl stands for: which
// conversation, from which watermark to replay, and when it was issued
// (stream URLs are only valid for the stream-URL window).
type ticket struct {
	convID string
	pos    int
	issued time.Time
}

// newStreamURLLocked issues a ticket and returns its streamUrl. Expired
// tickets are pruned here, so the map stays small without a janitor
// goroutine. s.mu must be held.
//
// The prune runs only once the map has doubled since the last one: a
// prune on every issue would cost O(tickets) per reconnect, quadratic in a
// reconnect storm of thousands of sockets, all under the Server's lock.
func (s *Server) newStreamURLLocked(convID string, pos int) string {
	n := time.Now()
	if len(s.tickets) >= s.ticketPruneAt {
		for t, tk := range s.tickets {
			if n.Sub(tk.issued) > s.cfg.streamURLWindow {
				delete(s.tickets, t)
			}
		}
		s.ticketPruneAt = max(minTicketPrune, 2*len(s.tickets))
	}
	t := newID()
	s.tickets[t] = ticket{convID: convID, pos: pos, issued: n}
	return s.wsBase + basePath + "/conversations/" + url.PathEscape(convID) + "/stream?t=" + url.QueryEscape(t)
}

// minTicketPrune is the ticket count below which expired tickets are left
// in place.
const minTicketPrune = 64

// upgrader accepts any origin: the fake is only reachable on loopback.
var upgrader = websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}

// handleStream implements GET /conversations/{id}/stream?t=TICKET. Under
// one lock hold it applies dial faults, checks the ticket and attaches the
// socket to its conversation (closing any previous one), all before the
// upgrade answers 101: so once a client's dial returns, every later
// activity reaches it live, after the backlog. It then runs the socket's
// read loop until the client leaves. The handler goroutine is counted in
// s.wg because httptest stops tracking a connection once it is hijacked.
func (s *Server) handleStream(w http.ResponseWriter, r *http.Request) {
	// Reject what the upgrader would reject before touching any state, so a
	// plain GET cannot collide with a live socket.
	if !websocket.IsWebSocketUpgrade(r) || r.Header.Get("Sec-Websocket-Version") != "13" || r.Header.Get("Sec-Websocket-Key") == "" {
		writeError(w, http.StatusBadRequest, codeBadArgument, "not a WebSocket upgrade request")
		return
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		writeError(w, http.StatusServiceUnavailable, codeServiceError, "server closing")
		return
	}
	if s.dialFailN > 0 {
		s.dialFailN--
		status := s.dialStatus
		s.mu.Unlock()
		writeError(w, status, codeServiceError, "injected dial failure")
		return
	}
	convID := r.PathValue("id")
	tk, found := s.tickets[r.URL.Query().Get("t")]
	if !found || tk.convID != convID || time.Since(tk.issued) > s.cfg.streamURLWindow {
		s.mu.Unlock()
		writeError(w, http.StatusForbidden, codeForbidden, "stream URL unknown or expired")
		return
	}
	k := newSocket(convID)
	s.attachLocked(k, tk.pos)
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()

	conn, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		s.release(k, false) // the upgrader has answered
		return
	}
	if !k.setConn(conn) {
		// Dropped or closed while upgrading.
		_ = conn.Close()
		s.release(k, false)
		return
	}
	s.cfg.logf("directlinetest: socket opened for conversation %s", convID)
	// Adding while this handler's own count is held is allowed even if
	// Close is already waiting.
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		k.writeLoop(s.cfg.keepalive)
	}()
	k.readLoop()
	s.release(k, true)
	s.cfg.logf("directlinetest: socket closed for conversation %s", convID)
}

// release forgets a socket whose handler is ending: detaches it if it is
// still its conversation's socket, stops its writer and closes its
// connection, then waits for the writer if one was started.
func (s *Server) release(k *socket, writerStarted bool) {
	s.mu.Lock()
	if s.detachLocked(k) {
		s.bump(func(st *Stats) { st.SocketsOpen-- })
	}
	delete(s.live, k)
	s.mu.Unlock()
	k.stop()
	k.abort()
	if writerStarted {
		<-k.done
	}
}

// attachLocked makes k its conversation's socket. An existing socket is
// detached and closed with 1008 "collision", as Direct Line allows one
// socket per conversation. The backlog after pos is queued as one
// ActivitySet before the socket becomes visible to deliver, so nothing can
// be missed or duplicated between backlog and live sets. s.mu must be held
// and the Server must not be closed.
func (s *Server) attachLocked(k *socket, pos int) {
	c := s.convs[k.convID]
	s.live[k] = struct{}{}
	collided := false
	if old := c.sock; old != nil {
		s.detachLocked(old)
		old.closeWith(websocket.ClosePolicyViolation, "collision")
		collided = true
	}
	if backlog := c.historyAfterLocked(pos); len(backlog) > 0 {
		k.send(activitySet{Activities: backlog, Watermark: strconv.Itoa(len(c.history))}.encode())
	}
	c.sock = k
	k.attached = true
	// One bump for the whole transition, so WaitFor never sees a
	// collision as a moment with no socket.
	s.bump(func(st *Stats) {
		st.SocketsOpened++
		if collided {
			st.Collisions++
		} else {
			st.SocketsOpen++
		}
	})
}

// detachLocked removes k from its conversation, after which it receives no
// more activities. It reports whether k was attached; callers adjust
// SocketsOpen. s.mu must be held.
func (s *Server) detachLocked(k *socket) bool {
	if !k.attached {
		return false
	}
	k.attached = false
	if c := s.convs[k.convID]; c != nil && c.sock == k {
		c.sock = nil
	}
	return true
}

package directlinetest

import "time"

// failure is a pending injected REST failure.
type failure struct {
	n          int
	status     int
	code       string
	retryAfter string
}

// takeFailure consumes one pending REST failure, if any.
func (s *Server) takeFailure() (failure, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail.n <= 0 {
		return failure{}, false
	}
	s.fail.n--
	return s.fail, true
}

// FailNext makes the next n REST calls (every route except the stream
// upgrade) answer status with a Direct Line error body carrying code (and a
// Retry-After header when retryAfter is not empty), without doing anything
// else: no authentication, no state change, no counter. It replaces any
// failures still pending; n <= 0 cancels them. An empty code becomes
// "ServiceError".
func (s *Server) FailNext(n int, status int, code string, retryAfter string) {
	if code == "" {
		code = codeServiceError
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail = failure{n: n, status: status, code: code, retryAfter: retryAfter}
}

// FailNextDials makes the next n stream upgrade requests answer status
// instead of upgrading, before the stream URL is even checked (so the URL
// stays usable for a retry). It replaces any pending dial failures; n <= 0
// cancels them.
func (s *Server) FailNextDials(n int, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dialFailN, s.dialStatus = n, status
}

// SetLatency makes every REST call wait d before it is processed (0
// disables). A waiting call gives up when its client goes away or the
// Server closes.
func (s *Server) SetLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency = d
}

// ExpireTokens expires every token issued so far; later tokens are
// unaffected. Calls with an expired token answer 403 TokenExpired.
func (s *Server) ExpireTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := time.Now()
	for _, t := range s.tokens {
		if t.expires.After(n) {
			t.expires = n
		}
	}
}

// DropSockets abruptly closes the TCP connection of convID's socket, without
// a close frame, as a network failure would; "" drops every conversation's
// socket. It returns how many sockets were dropped.
func (s *Server) DropSockets(convID string) int {
	s.mu.Lock()
	var victims []*socket
	for id, c := range s.convs {
		if c.sock != nil && (convID == "" || id == convID) {
			victims = append(victims, c.sock)
			s.detachLocked(c.sock)
		}
	}
	if len(victims) > 0 {
		s.bump(func(st *Stats) { st.SocketsOpen -= int64(len(victims)) })
	}
	s.mu.Unlock()
	for _, k := range victims {
		k.stop()
		k.abort()
	}
	return len(victims)
}

// StallSockets turns convID's socket ("" for every socket) into a silently
// dead path, as a half-open TCP connection would be: it stays open and
// attached, but delivers nothing more, sends no keepalive and answers no
// ping. Activities meanwhile are kept and replayed to the next socket as
// usual. It returns how many sockets stalled.
func (s *Server) StallSockets(convID string) int {
	s.mu.Lock()
	var victims []*socket
	for id, c := range s.convs {
		if c.sock != nil && (convID == "" || id == convID) {
			victims = append(victims, c.sock)
		}
	}
	s.mu.Unlock()
	for _, k := range victims {
		k.stall()
	}
	return len(victims)
}

// CloseSocket closes convID's socket with a close frame carrying code and
// reason, after the messages already queued on it. code must be valid on
// the wire (for example 1000, 1008, 1011 or 4000-4999) and reason at most
// 123 bytes. The socket stops counting as open at once. It reports whether
// the conversation had a socket.
func (s *Server) CloseSocket(convID string, code int, reason string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.convs[convID]
	if c == nil || c.sock == nil {
		return false
	}
	k := c.sock
	s.detachLocked(k)
	s.bump(func(st *Stats) { st.SocketsOpen-- })
	k.closeWith(code, reason)
	return true
}

// Push makes the bot send each text as a durable message, each in its own
// ActivitySet. It fails for an unknown conversation.
func (s *Server) Push(convID string, texts ...string) error {
	c := &Conv{s: s, id: convID}
	return c.Send(textMessages(texts)...)
}

// PushSet makes the bot send all texts as durable messages in one
// ActivitySet. It fails for an unknown conversation.
func (s *Server) PushSet(convID string, texts ...string) error {
	if err := s.checkConv(convID); err != nil {
		return err
	}
	c := &Conv{s: s, id: convID}
	return c.SendSet(textMessages(texts)...)
}

// PushTyping makes the bot send a typing activity (ephemeral: live sockets
// only). It fails for an unknown conversation.
func (s *Server) PushTyping(convID string) error {
	c := &Conv{s: s, id: convID}
	return c.Send(map[string]any{"type": "typing"})
}

func textMessages(texts []string) []map[string]any {
	acts := make([]map[string]any, len(texts))
	for i, t := range texts {
		acts[i] = map[string]any{"type": "message", "text": t}
	}
	return acts
}

// checkConv reports errUnknownConversation for ids the Server never created,
// for hooks that would otherwise do nothing and succeed.
func (s *Server) checkConv(convID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.convs[convID]; !ok {
		return errUnknownConversation
	}
	return nil
}

// NewConversation creates and starts a conversation without HTTP (the bot's
// OnStart runs) and returns its id and a token for it. Counters are not
// affected.
func (s *Server) NewConversation() (convID, token string) {
	s.mu.Lock()
	c := s.newConversationLocked()
	c.startLocked()
	tok, _ := s.issueTokenLocked(c.id)
	s.mu.Unlock()
	s.cfg.bot.OnStart(&Conv{s: s, id: c.id})
	return c.id, tok
}

// History returns a copy of convID's durable activities, oldest first (nil
// for an unknown conversation). Typing activities are never part of it.
func (s *Server) History(convID string) []map[string]any {
	s.mu.Lock()
	c := s.convs[convID]
	if c == nil {
		s.mu.Unlock()
		return nil
	}
	raws := c.historyAfterLocked(0)
	s.mu.Unlock()
	out := make([]map[string]any, 0, len(raws))
	for _, raw := range raws {
		a, err := decodeActivity(raw)
		if err != nil {
			panic("directlinetest: stored activity does not decode: " + err.Error())
		}
		out = append(out, a)
	}
	return out
}

// SocketsOpen returns how many sockets convID has open: 0 or 1, since a new
// socket replaces the old one.
func (s *Server) SocketsOpen(convID string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.convs[convID]; c != nil && c.sock != nil {
		return 1
	}
	return 0
}

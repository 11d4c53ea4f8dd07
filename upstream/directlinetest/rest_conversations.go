package directlinetest

import (
	"net/http"
	"strconv"
)

// referenceGrammarID is returned by start as the real service does; nothing
// uses it.
const referenceGrammarID = "c1d1d2d3-0000-4000-8000-d1a1e7e57000"

// startResponse is the body of POST /conversations.
type startResponse struct {
	ConversationID     string `json:"conversationId"`
	Token              string `json:"token"`
	ExpiresIn          int    `json:"expires_in"`
	StreamURL          string `json:"streamUrl"`
	ReferenceGrammarID string `json:"referenceGrammarId"`
}

// reconnectResponse is the body of GET /conversations/{id}.
type reconnectResponse struct {
	ConversationID string `json:"conversationId"`
	Token          string `json:"token"`
	ExpiresIn      int    `json:"expires_in,omitempty"`
	StreamURL      string `json:"streamUrl"`
}

// handleStart implements POST /conversations. The secret creates and starts
// a new conversation; a token starts (or re-starts) its own conversation.
// The first start answers 201 and calls the bot's OnStart; later ones answer
// 200. Either way the streamUrl replays the conversation from its beginning.
func (s *Server) handleStart(w http.ResponseWriter, r *http.Request) {
	g, ok := s.authenticate(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	var (
		c     *conversation
		tok   string
		expIn int
	)
	if g.secret {
		c = s.newConversationLocked()
		tok, expIn = s.issueTokenLocked(c.id)
	} else {
		// Tokens only exist for existing conversations, which are never
		// deleted.
		c = s.convs[g.convID]
		tok, expIn = g.token, expiresIn(g.exp)
	}
	first := c.startLocked()
	url := s.newStreamURLLocked(c.id, 0)
	s.mu.Unlock()

	if first {
		s.cfg.logf("directlinetest: conversation %s started", c.id)
		s.cfg.bot.OnStart(&Conv{s: s, id: c.id})
	}
	s.bump(func(st *Stats) { st.StartCalls++ })
	status := http.StatusOK
	if first {
		status = http.StatusCreated
	}
	writeJSON(w, status, startResponse{
		ConversationID:     c.id,
		Token:              tok,
		ExpiresIn:          expIn,
		StreamURL:          url,
		ReferenceGrammarID: referenceGrammarID,
	})
}

// handleReconnect implements GET /conversations/{id}[?watermark=W]: a fresh
// streamUrl that replays the durable activities after W, or, without W,
// delivers only what happens after this call. With a token the same token is
// returned; with the secret a new token is issued, so the secret never
// travels back in a response.
func (s *Server) handleReconnect(w http.ResponseWriter, r *http.Request) {
	g, id, ok := s.authorizeConv(w, r)
	if !ok {
		return
	}
	wm, hasWM, ok := parseWatermark(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	c := s.convs[id]
	pos := len(c.history)
	if hasWM {
		pos = max(wm-s.cfg.replayExtra, 0) // replayExtra: a quirk, when asked for
	}
	url := s.newStreamURLLocked(id, pos)
	tok, expIn := g.token, expiresIn(g.exp)
	if g.secret {
		tok, expIn = s.issueTokenLocked(id)
	}
	s.mu.Unlock()
	s.bump(func(st *Stats) { st.ReconnectCalls++ })
	writeJSON(w, http.StatusOK, reconnectResponse{ConversationID: id, Token: tok, ExpiresIn: expIn, StreamURL: url})
}

// parseWatermark reads the optional watermark query parameter, a
// non-negative decimal. On a malformed value it answers 400.
func parseWatermark(w http.ResponseWriter, r *http.Request) (wm int, present, ok bool) {
	v := r.URL.Query().Get("watermark")
	if v == "" {
		return 0, false, true
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		writeError(w, http.StatusBadRequest, codeBadArgument, "malformed watermark")
		return 0, false, false
	}
	return n, true, true
}

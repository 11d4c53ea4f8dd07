package directlinetest

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
)

// tokenResponse is the body of /tokens/generate and /tokens/refresh.
type tokenResponse struct {
	ConversationID string `json:"conversationId"`
	Token          string `json:"token"`
	ExpiresIn      int    `json:"expires_in"`
}

// maxJSONBody bounds the JSON bodies the Server reads, so a broken client
// cannot exhaust a test's memory.
const maxJSONBody = 4 << 20

// handleGenerate implements POST /tokens/generate: with the secret only, it
// creates a conversation that is not started yet (the bot has not seen it)
// and a token bound to it.
func (s *Server) handleGenerate(w http.ResponseWriter, r *http.Request) {
	g, ok := s.authenticate(w, r)
	if !ok {
		return
	}
	if !g.secret {
		writeError(w, http.StatusForbidden, codeForbidden, "generating a token requires the secret")
		return
	}
	// The body is optional; when present it names the user. The user is
	// validated but not bound to the token: nothing in the fake needs it.
	var body struct {
		User *struct {
			ID   string `json:"id"`
			Name string `json:"name"`
		} `json:"user"`
	}
	if err := readOptionalJSON(w, r, &body); err != nil {
		writeError(w, http.StatusBadRequest, codeBadArgument, "malformed body: "+err.Error())
		return
	}
	s.mu.Lock()
	c := s.newConversationLocked()
	tok, expIn := s.issueTokenLocked(c.id)
	s.mu.Unlock()
	s.bump(func(st *Stats) { st.TokensGenerated++ })
	s.cfg.logf("directlinetest: generated token for conversation %s", c.id)
	writeJSON(w, http.StatusOK, tokenResponse{ConversationID: c.id, Token: tok, ExpiresIn: expIn})
}

// handleRefresh implements POST /tokens/refresh: a valid token buys a new
// token for the same conversation; the old one stays valid until it
// expires. The secret cannot be refreshed.
func (s *Server) handleRefresh(w http.ResponseWriter, r *http.Request) {
	g, ok := s.authenticate(w, r)
	if !ok {
		return
	}
	if g.secret {
		writeError(w, http.StatusForbidden, codeForbidden, "only a token can be refreshed")
		return
	}
	s.mu.Lock()
	tok, expIn := s.issueTokenLocked(g.convID)
	s.mu.Unlock()
	s.bump(func(st *Stats) { st.TokensRefreshed++ })
	s.cfg.logf("directlinetest: refreshed token for conversation %s", g.convID)
	writeJSON(w, http.StatusOK, tokenResponse{ConversationID: g.convID, Token: tok, ExpiresIn: expIn})
}

// readOptionalJSON decodes a JSON object body into v; an empty body (or
// null) leaves v untouched.
func readOptionalJSON(w http.ResponseWriter, r *http.Request, v any) error {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxJSONBody))
	if err != nil {
		return err
	}
	if strings.TrimSpace(string(b)) == "" {
		return nil
	}
	return json.Unmarshal(b, v)
}

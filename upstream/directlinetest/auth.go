package directlinetest

import (
	"net/http"
	"strings"
	"time"
)

// token is a Direct Line token: a bearer credential bound to one
// conversation that expires.
type token struct {
	convID  string
	expires time.Time
}

// grant is what an Authorization header proved: either the secret, which
// opens every conversation, or a token for convID.
type grant struct {
	secret bool
	convID string
	token  string
	exp    time.Time
}

// issueTokenLocked creates a token for convID and returns it with its
// expires_in (the whole TTL, in seconds). s.mu must be held.
func (s *Server) issueTokenLocked(convID string) (string, int) {
	t := newID() + newID()
	s.tokens[t] = &token{convID: convID, expires: time.Now().Add(s.cfg.tokenTTL)}
	return t, int(s.cfg.tokenTTL / time.Second)
}

// expiresIn renders an expiry as Direct Line's expires_in: whole seconds
// left, never negative.
func expiresIn(exp time.Time) int {
	d := time.Until(exp)
	if d < 0 {
		return 0
	}
	return int(d / time.Second)
}

// authenticate checks the Authorization header. On failure it has already
// answered: 401 when the header is missing or not a bearer credential, 403
// TokenExpired for an expired token, 403 Forbidden for an unknown one.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) (grant, bool) {
	h := r.Header.Get("Authorization")
	scheme, cred, ok := strings.Cut(h, " ")
	cred = strings.TrimSpace(cred)
	if !ok || !strings.EqualFold(scheme, "Bearer") || cred == "" {
		writeError(w, http.StatusUnauthorized, codeBadArgument, "missing or malformed Authorization header")
		return grant{}, false
	}
	if cred == s.cfg.secret {
		return grant{secret: true}, true
	}
	s.mu.Lock()
	t, found := s.tokens[cred]
	var g grant
	if found {
		g = grant{convID: t.convID, token: cred, exp: t.expires}
	}
	s.mu.Unlock()
	switch {
	case !found:
		writeError(w, http.StatusForbidden, codeForbidden, "unknown token")
		return grant{}, false
	case !time.Now().Before(g.exp):
		writeError(w, http.StatusForbidden, codeTokenExpired, "token expired")
		return grant{}, false
	}
	return g, true
}

// authorizeConv authenticates the request and checks that it may act on the
// conversation in the {id} path segment: 403 Forbidden when a token is used
// for another conversation, 404 when the conversation does not exist.
func (s *Server) authorizeConv(w http.ResponseWriter, r *http.Request) (grant, string, bool) {
	g, ok := s.authenticate(w, r)
	if !ok {
		return grant{}, "", false
	}
	id := r.PathValue("id")
	if !g.secret && g.convID != id {
		writeError(w, http.StatusForbidden, codeForbidden, "token is not valid for this conversation")
		return grant{}, "", false
	}
	s.mu.Lock()
	_, exists := s.convs[id]
	s.mu.Unlock()
	if !exists {
		writeError(w, http.StatusNotFound, codeBadArgument, "Conversation not found")
		return grant{}, "", false
	}
	return g, id, true
}

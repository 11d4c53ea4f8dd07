package gateway

import (
	"encoding/json"
	"io"
	"net/http"

	"github.com/gofiber/fiber/v2"

	"github.com/dlsse/dlsse/upstream"
)

// refreshToken proxies POST /tokens/refresh and learns from the answer:
// the new token's lifetime, and that streams opened with the old token read
// on with the new one (DirectLineJS refreshes over REST every 15 minutes and
// keeps its socket).
func (g *Gateway) refreshToken(c *fiber.Ctx) error {
	old, _ := requestCredential(c) // checked by needCredential
	resp, err := g.send(c, requestBody(c), g.cfg.ForwardTimeout)
	if err != nil {
		return err
	}
	return g.relayToken(c, resp, old)
}

// relayToken passes a tokens/generate or tokens/refresh answer back as is,
// after learning the token's lifetime from it; refreshed is the token a
// refresh exchanged ("" for generate).
func (g *Gateway) relayToken(c *fiber.Ctx, resp *http.Response, refreshed string) error {
	defer resp.Body.Close()
	copyResponseHeaders(c, resp)
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxConversationBody))
	if err != nil {
		return err
	}
	c.Status(resp.StatusCode)
	var tok struct {
		ConversationID string `json:"conversationId"`
		Token          string `json:"token"`
		ExpiresIn      int    `json:"expires_in"`
	}
	if resp.StatusCode/100 == 2 && json.Unmarshal(body, &tok) == nil && upstream.ValidCredential(tok.Token) {
		g.sessions.LearnToken(tok.Token, tok.ExpiresIn)
		if refreshed != "" && validConversationID(tok.ConversationID) == nil {
			g.sessions.TokenRefreshed(tok.ConversationID, refreshed, tok.Token, tok.ExpiresIn)
		}
	}
	return c.Send(body)
}

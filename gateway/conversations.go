package gateway

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/dlsse/dlsse/session"
	"github.com/dlsse/dlsse/upstream"
)

// maxConversationBody bounds a start/reconnect answer read for rewriting.
const maxConversationBody = 1 << 20

// validConversationID refuses ids Direct Line would not issue, before one
// goes into an upstream URL or a log line.
func validConversationID(id string) error {
	if !upstream.ValidConversationID(id) {
		return newError(http.StatusBadRequest, codeBadArgument, "invalid conversation id")
	}
	return nil
}

// startConversation proxies POST /conversations, keeps its 201/200 status,
// and points streamUrl at this gateway. The upstream stream URL is kept for
// the session, which can open it without asking Direct Line again.
func (g *Gateway) startConversation(c *fiber.Ctx) error {
	return g.conversationCall(c, true)
}

// reconnect proxies GET /conversations/{id}?watermark=W the same way.
func (g *Gateway) reconnect(c *fiber.Ctx) error {
	return g.conversationCall(c, false)
}

func (g *Gateway) conversationCall(c *fiber.Ctx, start bool) error {
	watermark := strings.Clone(c.Query("watermark")) // kept in the offer
	if !start && watermark != "" {
		if err := session.ValidateWatermark(watermark); err != nil {
			return newError(http.StatusBadRequest, codeBadArgument, "invalid watermark")
		}
	}
	resp, err := g.send(c, requestBody(c), g.cfg.ForwardTimeout)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	copyResponseHeaders(c, resp)
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxConversationBody))
	if err != nil {
		return err
	}
	c.Status(resp.StatusCode)
	if resp.StatusCode/100 != 2 {
		return c.Send(body)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil {
		return c.Send(body) // not ours to fix: pass it through
	}
	var conv struct {
		ConversationID string `json:"conversationId"`
		Token          string `json:"token"`
		ExpiresIn      int    `json:"expires_in"`
		StreamURL      string `json:"streamUrl"`
	}
	_ = json.Unmarshal(body, &conv)
	id := conv.ConversationID
	if id == "" {
		id = strings.Clone(c.Params("id"))
	}
	if validConversationID(id) != nil || conv.StreamURL == "" {
		return c.Send(body)
	}

	clientCredential := strings.Clone(bearer(c)) // kept in the offer
	// The stream URL carries a conversation-bound token, never a secret:
	// the answer's token when there is one.
	streamCredential := conv.Token
	if streamCredential == "" {
		streamCredential = clientCredential
	}
	offer := session.Offer{
		StreamURL:     conv.StreamURL,
		Credentials:   []string{clientCredential, conv.Token},
		FromBeginning: start,
		Watermark:     watermark,
		At:            time.Now(),
		Token:         conv.Token,
		ExpiresIn:     conv.ExpiresIn,
	}
	if !start && watermark == "" {
		// "From now" with no watermark to resume from: the session
		// would have no baseline, so it opens its own stream.
		offer.StreamURL = ""
	}
	g.sessions.Offer(id, offer)

	rewritten, err := json.Marshal(g.streamURL(c, id, streamCredential))
	if err != nil {
		return err
	}
	fields["streamUrl"] = rewritten
	out, err := json.Marshal(fields)
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSONCharsetUTF8)
	return c.Send(out)
}

// streamURL is this gateway's SSE URL for a conversation, carrying the
// credential as t= so that a plain EventSource(streamUrl) works.
func (g *Gateway) streamURL(c *fiber.Ctx, conversationID, credential string) string {
	base := g.cfg.PublicURL
	if base == "" {
		base = c.Protocol() + "://" + c.Hostname()
	}
	u := strings.TrimRight(base, "/") + "/v3/directline/conversations/" + url.PathEscape(conversationID) + "/stream"
	if credential != "" {
		u += "?t=" + url.QueryEscape(credential)
	}
	return u
}

// bearer returns the credential of an "Authorization: Bearer X" header.
func bearer(c *fiber.Ctx) string {
	h := c.Get(fiber.HeaderAuthorization)
	const prefix = "Bearer "
	if len(h) > len(prefix) && strings.EqualFold(h[:len(prefix)], prefix) {
		return strings.TrimSpace(h[len(prefix):])
	}
	return ""
}

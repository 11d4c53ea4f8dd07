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
// W may be one of dlsse's cursors (DirectLineJS reconnects with the last
// watermark its WebSocket stream gave, and those are cursors): Direct
// Line is then asked from the cursor's own watermark, and the stream URL
// resumes from the cursor, exactly after the last activity the client has.
func (g *Gateway) reconnect(c *fiber.Ctx) error {
	return g.conversationCall(c, false)
}

func (g *Gateway) conversationCall(c *fiber.Ctx, start bool) error {
	wm := c.Query("watermark")
	resume, isCursor := askedCursor(wm)
	if isCursor {
		wm = resume.Base // "" for the beginning
	}
	resp, err := g.sendWatermark(c, requestBody(c), g.cfg.ForwardTimeout, wm)
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
	if !upstream.ValidCredential(conv.Token) {
		conv.Token = "" // nothing a URL or a header could carry
	}

	clientCredential, _ := requestCredential(c) // checked by needCredential
	now := time.Now()
	// Where the stream starts travels in its URL, so that any replica,
	// and this one after a restart, serves it the same: a start answer's
	// stream replays the conversation from its beginning, a reconnect
	// answer's from the watermark Direct Line's URL carried.
	from := url.Values{}
	if start {
		from.Set("lastEventId", session.Cursor{Beginning: true}.String())
		g.sessions.Offer(id, session.Offer{
			StreamURL:   conv.StreamURL,
			Credentials: []string{clientCredential, conv.Token},
			At:          now,
			Token:       conv.Token,
			ExpiresIn:   conv.ExpiresIn,
		})
	} else {
		if isCursor {
			from.Set("lastEventId", resume.String())
		} else if wm := streamURLWatermark(conv.StreamURL, wm); wm != "" {
			from.Set("watermark", wm)
		} else if now, ok := g.sessions.Position(id); ok {
			// Without a watermark Direct Line's stream starts at
			// this call; so does ours, when we know where that is
			// (a second tab joining a conversation streamed here).
			from.Set("lastEventId", now.String())
		}
		g.sessions.Accepted(id, now, clientCredential, conv.Token)
		g.sessions.LearnToken(conv.Token, conv.ExpiresIn)
	}
	// The stream URL carries the conversation-bound token Direct Line
	// answered with, never the caller's credential, which may be the
	// bot's secret. Without one, the URL carries no credential at all:
	// such a stream needs Authorization: Bearer.
	if conv.Token == "" {
		g.lg.Warn().Str("conversation_id", id).Msg("Direct Line answered without a token: streamUrl carries no credential (send Authorization to open it)")
	} else {
		from.Set("t", conv.Token)
	}
	rewritten, err := json.Marshal(g.streamURL(c, id, from))
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

// askedCursor reads a reconnect's watermark parameter as one of dlsse's
// cursors, which always hold '~' (never found in a Direct Line watermark).
func askedCursor(wm string) (session.Cursor, bool) {
	if !strings.Contains(wm, "~") {
		return session.Cursor{}, false
	}
	cur, err := session.ParseCursor(wm)
	return cur, err == nil
}

// streamURLWatermark is the watermark a reconnect answer's stream replays
// from: the one in Direct Line's URL, else the one the client asked for;
// "" when neither is a valid watermark (the stream starts from now).
func streamURLWatermark(upstreamURL, asked string) string {
	if u, err := url.Parse(upstreamURL); err == nil {
		if wm := u.Query().Get("watermark"); wm != "" && session.ValidateWatermark(wm) == nil {
			return wm
		}
	}
	if asked != "" && session.ValidateWatermark(asked) == nil {
		return asked
	}
	return ""
}

// streamURL is this gateway's stream URL for a conversation, with query
// (the credential as t=, so that a plain EventSource(streamUrl) works, and
// where the stream starts); its scheme suits the client (streamScheme).
func (g *Gateway) streamURL(c *fiber.Ctx, conversationID string, query url.Values) string {
	u := g.streamScheme(c, g.publicBase(c)) + "/v3/directline/conversations/" + url.PathEscape(conversationID) + "/stream"
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	return u
}

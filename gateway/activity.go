package gateway

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"
)

// Direct Line error codes for activities the gateway refuses itself.
const (
	codeMissingProperty = "MissingProperty"
)

// readActivity reads and checks a posted activity before anything reaches
// Direct Line, and returns it with its from.id. It must be a JSON object
// with a string "type", and at most MaxActivityChars characters (Direct
// Line's own limit). The body is read with a byte bound, so a huge one
// costs no more than the limit.
func (g *Gateway) readActivity(c *fiber.Ctx) (body []byte, from string, err error) {
	limit := int64(g.cfg.MaxActivityChars) * maxActivityBytesPerRune
	body, err = io.ReadAll(io.LimitReader(requestBody(c), limit+1))
	if err != nil {
		return nil, "", newError(http.StatusBadRequest, codeBadArgument, "could not read the activity")
	}
	if int64(len(body)) > limit || utf8.RuneCount(body) > g.cfg.MaxActivityChars {
		refuseBody(c)
		return nil, "", newError(http.StatusRequestEntityTooLarge, codeTooLarge, "activity larger than Direct Line's limit")
	}
	trimmed := bytes.TrimSpace(body)
	if !json.Valid(trimmed) {
		return nil, "", newError(http.StatusBadRequest, codeBadArgument, "the activity is not valid JSON")
	}
	if trimmed[0] != '{' {
		return nil, "", newError(http.StatusBadRequest, codeBadArgument, "an activity must be a JSON object")
	}
	var fields struct {
		Type json.RawMessage `json:"type"`
		From json.RawMessage `json:"from"`
	}
	var typ string
	if err := json.Unmarshal(trimmed, &fields); err != nil ||
		json.Unmarshal(fields.Type, &typ) != nil || typ == "" {
		return nil, "", newError(http.StatusBadRequest, codeMissingProperty, "the activity has no type")
	}
	var sender struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(fields.From, &sender) // Direct Line judges the rest
	return body, sender.ID, nil
}

// postActivity checks the activity, then forwards exactly those bytes. Who
// it is from is noted first: its echo must never pass for the bot's.
func (g *Gateway) postActivity(c *fiber.Ctx) error {
	body, from, err := g.readActivity(c)
	if err != nil {
		return err
	}
	g.sessions.NoteSender(c.Params("id"), strings.Clone(from))
	return g.forwardBody(c, bytes.NewReader(body), g.cfg.ForwardTimeout)
}

package gateway

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"
)

// Direct Line error codes for activities the gateway refuses itself.
const (
	codeMissingProperty = "MissingProperty"
)

// readActivity reads and checks a posted activity before anything reaches
// Direct Line: it must be a JSON object with a string "type", and at most
// MaxActivityChars characters (Direct Line's own limit). The body is read
// with a byte bound, so a huge one costs no more than the limit.
func (g *Gateway) readActivity(c *fiber.Ctx) ([]byte, error) {
	limit := int64(g.cfg.MaxActivityChars) * maxActivityBytesPerRune
	body, err := io.ReadAll(io.LimitReader(requestBody(c), limit+1))
	if err != nil {
		return nil, newError(http.StatusBadRequest, codeBadArgument, "could not read the activity")
	}
	if int64(len(body)) > limit || utf8.RuneCount(body) > g.cfg.MaxActivityChars {
		refuseBody(c)
		return nil, newError(http.StatusRequestEntityTooLarge, codeTooLarge, "activity larger than Direct Line's limit")
	}
	trimmed := bytes.TrimSpace(body)
	if !json.Valid(trimmed) {
		return nil, newError(http.StatusBadRequest, codeBadArgument, "the activity is not valid JSON")
	}
	if trimmed[0] != '{' {
		return nil, newError(http.StatusBadRequest, codeBadArgument, "an activity must be a JSON object")
	}
	var fields map[string]json.RawMessage
	var typ string
	if err := json.Unmarshal(trimmed, &fields); err != nil ||
		json.Unmarshal(fields["type"], &typ) != nil || typ == "" {
		return nil, newError(http.StatusBadRequest, codeMissingProperty, "the activity has no type")
	}
	return body, nil
}

// postActivity checks the activity, then forwards exactly those bytes.
func (g *Gateway) postActivity(c *fiber.Ctx) error {
	body, err := g.readActivity(c)
	if err != nil {
		return err
	}
	return g.forwardBody(c, bytes.NewReader(body), g.cfg.ForwardTimeout)
}

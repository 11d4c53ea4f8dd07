package gateway

import (
	_ "embed"

	"github.com/gofiber/fiber/v2"
)

// sdkJS is the browser client library: Web Chat's directLine contract over
// the SSE stream (docs/webchat-adapter.md). Embedded, so the binary serves
// the copy that matches its own stream.
//
//go:embed web/sdk/dlsse.js
var sdkJS []byte

// sdk answers GET /sdk/dlsse.js. A short cache: the path is not versioned,
// and a deploy should reach browsers within minutes.
func (g *Gateway) sdk(c *fiber.Ctx) error {
	c.Set(fiber.HeaderContentType, "text/javascript; charset=utf-8")
	c.Set(fiber.HeaderCacheControl, "public, max-age=300")
	return c.Send(sdkJS)
}

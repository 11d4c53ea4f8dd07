package gateway

import (
	"time"

	"github.com/gofiber/fiber/v2"
)

// logRequests logs one line per REST request. It logs the route pattern
// and never the query string or headers, where credentials travel (t=,
// Authorization).
func (g *Gateway) logRequests(c *fiber.Ctx) error {
	start := time.Now()
	err := c.Next()
	if err != nil {
		_ = g.handleError(c, err)
	}
	if c.Context().Hijacked() {
		return nil // streams log for themselves
	}
	ev := g.lg.Debug()
	status := c.Response().StatusCode()
	if status >= 500 {
		ev = g.lg.Warn()
	}
	if ev.Enabled() {
		ev.Str("method", c.Method()).
			Str("route", c.Route().Path).
			Str("conversation_id", c.Params("id")).
			Int("status", status).
			Dur("took", time.Since(start)).
			Msg("request")
	}
	return nil
}

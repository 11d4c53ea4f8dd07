package gateway

import (
	"net/http"

	"github.com/gofiber/fiber/v2"
	"github.com/sony/gobreaker/v2"
)

// healthz answers as long as the process serves HTTP: it touches nothing
// else, so it stays cheap under load.
func (g *Gateway) healthz(c *fiber.Ctx) error {
	return c.SendString("ok")
}

// readyz says whether this instance should get new traffic: not while it
// shuts down, not while the circuit breaker to Direct Line is open, and in
// cluster mode not while Redis is unreachable (unless configured
// otherwise), since it could serve nothing new.
func (g *Gateway) readyz(c *fiber.Ctx) error {
	if g.stopping.Load() {
		return c.Status(http.StatusServiceUnavailable).SendString("shutting down")
	}
	if !g.cfg.ReadyIgnoresUpstream && g.up.BreakerState() == gobreaker.StateOpen {
		return c.Status(http.StatusServiceUnavailable).SendString("Direct Line unavailable (circuit open)")
	}
	if !g.sessions.Healthy() {
		if !g.cfg.ReadyIgnoresShared {
			return c.Status(http.StatusServiceUnavailable).SendString("Redis unreachable")
		}
		return c.SendString("ready (Redis unreachable)")
	}
	return c.SendString("ready")
}

// exactPath serves a private route only under its own spelling. fasthttp
// routes "//metrics", "/./metrics" or "/%6detrics" as "/metrics", and a
// proxy rule that keeps "/metrics" private would not see them as such.
func exactPath(c *fiber.Ctx) error {
	if string(c.Request().URI().PathOriginal()) != c.Route().Path {
		return fiber.ErrNotFound
	}
	return c.Next()
}

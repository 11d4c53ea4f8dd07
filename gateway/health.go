package gateway

import (
	"net/http"

	"github.com/gofiber/fiber/v2"
)

// healthz answers as long as the process serves HTTP: it touches nothing
// else, so it stays cheap under load.
func (g *Gateway) healthz(c *fiber.Ctx) error {
	return c.SendString("ok")
}

// readyz says whether this instance should get new traffic.
func (g *Gateway) readyz(c *fiber.Ctx) error {
	if g.stopping.Load() {
		return c.Status(http.StatusServiceUnavailable).SendString("shutting down")
	}
	return c.SendString("ready")
}

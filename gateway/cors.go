package gateway

import (
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/cors"
)

// corsHandler allows cross-origin use from the configured origins only.
// With none configured there is no CORS at all: browsers then refuse
// cross-origin calls, and only same-origin pages (or non-browser clients)
// use the gateway. Credentials (cookies) are allowed only for explicitly
// listed origins, never with "*".
func (g *Gateway) corsHandler() fiber.Handler {
	origins := g.cfg.AllowedOrigins
	wildcard := false
	for _, o := range origins {
		if o == "*" {
			wildcard = true
		}
	}
	return cors.New(cors.Config{
		AllowOrigins:     strings.Join(origins, ","),
		AllowMethods:     "GET,POST,OPTIONS",
		AllowHeaders:     "Authorization,Content-Type,Last-Event-ID,Accept,Cache-Control",
		ExposeHeaders:    "Retry-After",
		AllowCredentials: !wildcard,
		MaxAge:           600,
	})
}

// originAllowed reports whether a request's Origin is in list ("*" allows
// any, including none).
func originAllowed(list []string, origin string) bool {
	for _, o := range list {
		if o == "*" || (origin != "" && strings.EqualFold(o, origin)) {
			return true
		}
	}
	return false
}

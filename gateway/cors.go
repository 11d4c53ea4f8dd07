package gateway

import (
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/cors"
)

// corsAllowHeaders are the request headers a preflight allows: what the
// Direct Line clients in browsers send on the routes they call.
//
//   - Authorization, Content-Type: every client (Content-Type:
//     application/json is not a "simple" value, so it needs allowing).
//   - x-ms-bot-agent: DirectLineJS (so Web Chat's createDirectLine) sends
//     it on every call ("DirectLine/3.0 (directlinejs 0.15.x; WebChat…)").
//   - X-Requested-With: DirectLineJS's HTTP layer (rxjs 5's ajax) adds
//     "XMLHttpRequest" to every call that is not marked crossDomain, and
//     DirectLineJS marks none.
//   - Accept: DirectLineJS sends Accept: application/json, a simple value;
//     listed for clients whose value is not.
//   - Last-Event-ID, Cache-Control: SSE clients built on fetch rather than
//     EventSource, resuming a stream with a header.
//
// Allowing a header name grants a cross-origin page nothing a script
// outside a browser does not have already: it still needs its credential.
const corsAllowHeaders = "Authorization,Content-Type,X-Ms-Bot-Agent,X-Requested-With,Accept,Last-Event-ID,Cache-Control"

// corsExposeHeaders are the response headers a cross-origin page may read
// besides the always-readable ones (Content-Type among them): Retry-After,
// which DirectLineJS and dlsse's client library read on a 429.
const corsExposeHeaders = "Retry-After"

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
		AllowHeaders:     corsAllowHeaders,
		ExposeHeaders:    corsExposeHeaders,
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

package gateway

import (
	_ "embed"

	"github.com/gofiber/fiber/v2"
)

// The plain demo page: no Web Chat, just the client library (sdk.go), a
// message list, an input and the connection state. Served only when
// Config.DemoPages is set (dlsse -demo, or demo_pages: true).
var (
	//go:embed web/index.html
	indexHTML []byte
	//go:embed web/app.js
	appJS []byte
	//go:embed web/favicon.svg
	faviconSVG []byte
)

// pageCSP allows nothing but this origin: the page's script is a file
// (app.js), never inline, so scripts need no 'unsafe-inline'. Styles may be
// inline (the page's one <style> block).
const pageCSP = "default-src 'self'; connect-src 'self'; style-src 'self' 'unsafe-inline'"

// indexPage answers GET /.
func (g *Gateway) indexPage(c *fiber.Ctx) error { return sendPage(c, indexHTML, pageCSP) }

// appScript answers GET /app.js, the demo page's module.
func (g *Gateway) appScript(c *fiber.Ctx) error { return sendScript(c, appJS) }

// faviconCSP is the icon's own policy: opened as a document, an SVG could
// run script; this one has none, and may not load anything either.
const faviconCSP = "default-src 'none'; style-src 'unsafe-inline'"

// favicon answers GET /favicon.svg, the icon both pages link to (so a page
// load asks for no /favicon.ico and logs no 404), and GET /favicon.ico for
// clients that ask for that name whatever the page says.
func (g *Gateway) favicon(c *fiber.Ctx) error {
	c.Set(fiber.HeaderContentType, "image/svg+xml")
	c.Set(fiber.HeaderContentSecurityPolicy, faviconCSP)
	c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
	c.Set(fiber.HeaderCacheControl, "public, max-age=86400")
	return c.Send(faviconSVG)
}

// sendPage answers with one of the demo pages under its
// Content-Security-Policy. Not cached: a new binary's page shows at once.
func sendPage(c *fiber.Ctx, html []byte, csp string) error {
	c.Set(fiber.HeaderContentType, "text/html; charset=utf-8")
	c.Set(fiber.HeaderContentSecurityPolicy, csp)
	c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
	c.Set(fiber.HeaderCacheControl, "no-cache")
	return c.Send(html)
}

// sendScript answers with a demo page's own script.
func sendScript(c *fiber.Ctx, js []byte) error {
	c.Set(fiber.HeaderContentType, "text/javascript; charset=utf-8")
	c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
	c.Set(fiber.HeaderCacheControl, "no-cache")
	return c.Send(js)
}

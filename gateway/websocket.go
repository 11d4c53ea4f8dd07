package gateway

import (
	"crypto/sha1"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"

	"github.com/gofiber/fiber/v2"
)

// A stream request that asks to upgrade to a WebSocket gets Direct Line's
// own stream protocol (session.WireWebSocket): what unmodified Direct Line
// clients (DirectLineJS, so Web Chat) open streamUrl with. Its subscriber
// is fed from the same session and log as an SSE one. The handshake is
// checked here, before the connection is taken over; the 101 is written
// only once the stream is subscribed, so every refusal is a real HTTP
// status. docs/websocket.md has the design.

// Reasons an upgrade is refused, as dlsse_websocket_upgrades_refused_total
// counts them.
const (
	UpgradeDisabled  = "disabled"  // websocket_streams is off
	UpgradeOrigin    = "origin"    // a browser page of an origin not allowed
	UpgradeHandshake = "handshake" // not a valid RFC 6455 handshake
)

// UpgradeRefusals are the reasons an upgrade is refused.
func UpgradeRefusals() []string { return []string{UpgradeDisabled, UpgradeOrigin, UpgradeHandshake} }

// websocketGUID is RFC 6455's constant for Sec-WebSocket-Accept.
const websocketGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// acceptUpgrade checks a WebSocket handshake and returns the value of its
// Sec-WebSocket-Accept, or the refusal to answer.
func (g *Gateway) acceptUpgrade(c *fiber.Ctx) (string, error) {
	if g.cfg.SSEOnly {
		return "", g.refuseUpgrade(c, UpgradeDisabled, newError(http.StatusBadRequest, codeBadArgument,
			"this gateway serves streams as Server-Sent Events only (websocket_streams is off): open the stream URL with EventSource, or use DirectLineJS with webSocket: false"))
	}
	if !g.upgradeOriginAllowed(c) {
		return "", g.refuseUpgrade(c, UpgradeOrigin, newError(http.StatusForbidden, codeBadArgument,
			"this origin may not open streams here (allowed_origins)"))
	}
	if !strings.EqualFold(strings.TrimSpace(c.Get("Sec-WebSocket-Version")), "13") {
		c.Set("Sec-WebSocket-Version", "13")
		return "", g.refuseUpgrade(c, UpgradeHandshake, newError(http.StatusUpgradeRequired, codeBadArgument,
			"unsupported WebSocket version: this gateway speaks version 13"))
	}
	key := strings.TrimSpace(c.Get("Sec-WebSocket-Key"))
	if raw, err := base64.StdEncoding.DecodeString(key); err != nil || len(raw) != 16 {
		return "", g.refuseUpgrade(c, UpgradeHandshake, newError(http.StatusBadRequest, codeBadArgument,
			"invalid WebSocket handshake: Sec-WebSocket-Key must be 16 bytes in base64"))
	}
	sum := sha1.Sum([]byte(key + websocketGUID))
	return base64.StdEncoding.EncodeToString(sum[:]), nil
}

// refuseUpgrade counts and logs a refused upgrade and returns err.
func (g *Gateway) refuseUpgrade(c *fiber.Ctx, reason string, err error) error {
	g.cfg.Observer.UpgradeRefused(reason)
	g.lg.Warn().Str("reason", reason).Str("remote", g.clientKey(c)).
		Str("origin", safeOrigin(c.Get(fiber.HeaderOrigin))).Msg("WebSocket upgrade refused")
	return err
}

// upgradeOriginAllowed applies CORS's rule to a browser's upgrade, which
// no preflight guards: a page may open a stream if it could call the REST
// routes, that is from this gateway's own origin or an allowed one.
// Clients outside browsers send no Origin.
func (g *Gateway) upgradeOriginAllowed(c *fiber.Ctx) bool {
	origin := c.Get(fiber.HeaderOrigin)
	if origin == "" || originAllowed(g.cfg.AllowedOrigins, origin) {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	base, err := url.Parse(g.publicBase(c))
	return err == nil && strings.EqualFold(u.Host, base.Host)
}

// safeOrigin is an Origin fit for a log line.
func safeOrigin(o string) string {
	if len(o) > 200 || strings.ContainsAny(o, "\r\n") {
		return "(malformed)"
	}
	return o
}

// upgradeHead is the 101 answer that starts a WebSocket stream; extra
// holds header lines the middleware chose (CORS).
func upgradeHead(accept, extra string) []byte {
	return []byte("HTTP/1.1 101 Switching Protocols\r\n" +
		"Upgrade: websocket\r\n" +
		"Connection: Upgrade\r\n" +
		"Sec-WebSocket-Accept: " + accept + "\r\n" +
		extra +
		"\r\n")
}

// streamScheme is the scheme of the streamUrl given to a client: ws(s)
// for DirectLineJS (it sends x-ms-bot-agent on every call, and opens
// streamUrl with new WebSocket, which older browsers refuse for http(s)),
// http(s) for everyone else (EventSource, curl -N, dlsse's own client).
func (g *Gateway) streamScheme(c *fiber.Ctx, base string) string {
	if g.cfg.SSEOnly || c.Get("X-Ms-Bot-Agent") == "" {
		return base
	}
	switch {
	case strings.HasPrefix(base, "https://"):
		return "wss://" + strings.TrimPrefix(base, "https://")
	case strings.HasPrefix(base, "http://"):
		return "ws://" + strings.TrimPrefix(base, "http://")
	}
	return base
}

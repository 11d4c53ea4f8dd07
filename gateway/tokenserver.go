package gateway

import (
	"context"
	"net/http"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/limiter"
)

// generateToken answers POST /tokens/generate. With an Authorization
// header it is a plain proxy call. Without one, when the gateway holds the
// bot's secret (token-server mode), it asks Direct Line for a token with
// the secret on the page's behalf, so the secret never reaches a browser:
// only for an allowed Origin, and at most TokensPerIPPerMinute a minute per
// client address.
//
// The route is generateToken → the token limiter → forwardWithSecret.
func (g *Gateway) generateToken(c *fiber.Ctx) error {
	if c.Get(fiber.HeaderAuthorization) != "" || g.cfg.DirectLineSecret == "" {
		if _, err := requestCredential(c); err != nil {
			return err
		}
		resp, err := g.send(c, requestBody(c), g.cfg.ForwardTimeout)
		if err != nil {
			return err
		}
		return g.relayToken(c, resp, "")
	}
	if !originAllowed(g.cfg.TokenOrigins, c.Get(fiber.HeaderOrigin)) {
		return newError(http.StatusForbidden, "Forbidden", "this origin may not get tokens from this gateway")
	}
	return c.Next()
}

// newTokenLimiter rate-limits token-server requests per client address.
func (g *Gateway) newTokenLimiter() fiber.Handler {
	return limiter.New(limiter.Config{
		Max:          g.cfg.TokensPerIPPerMinute,
		Expiration:   time.Minute,
		Storage:      newRateStore(),
		KeyGenerator: g.clientKey,
		LimitReached: func(c *fiber.Ctx) error {
			return &apiError{status: http.StatusTooManyRequests, code: codeThrottled,
				message: "too many tokens requested from this address", retryAfter: tokenServerRetryAfter}
		},
	})
}

// forwardWithSecret asks Direct Line for a token with the gateway's secret.
// Nothing of the client's request goes along — no body, no query — so a
// caller cannot choose the user id or trusted origins the token is bound
// to. The secret goes into that one header and nowhere else: Direct Line's
// answer holds a token, never the secret.
func (g *Gateway) forwardWithSecret(c *fiber.Ctx) error {
	ctx, cancel := context.WithTimeout(context.Background(), g.cfg.ForwardTimeout)
	h := http.Header{fiber.HeaderAuthorization: {"Bearer " + g.cfg.DirectLineSecret}}
	resp, err := g.up.Forward(ctx, fiber.MethodPost, "/tokens/generate", "", h, nil)
	if err != nil {
		cancel()
		return err
	}
	resp.Body = &cancelOnClose{ReadCloser: resp.Body, cancel: cancel}
	return g.relayToken(c, resp, "")
}

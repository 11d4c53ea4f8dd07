package gateway

import (
	"net/http"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/dlsse/dlsse/upstream"
)

// errMissingCredential and errMalformedCredential are answered before any
// upstream call: Direct Line would refuse the same way, and a credential
// that cannot even be sent must never reach the breaker.
var (
	errMissingCredential = newError(http.StatusUnauthorized, codeBadArgument,
		"missing credential: send Authorization: Bearer <secret or token>")
	errMalformedCredential = newError(http.StatusUnauthorized, codeBadArgument,
		"malformed credential: a Direct Line secret or token is letters, digits and -._~+/=")
)

// requestCredential returns the Bearer credential of the request. A
// missing header is errMissingCredential; a header that is not "Bearer"
// and a well-formed token is errMalformedCredential.
func requestCredential(c *fiber.Ctx) (string, error) {
	h := c.Get(fiber.HeaderAuthorization)
	if h == "" {
		return "", errMissingCredential
	}
	const prefix = "Bearer "
	if len(h) <= len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return "", errMalformedCredential
	}
	cred := strings.TrimSpace(h[len(prefix):])
	if !upstream.ValidCredential(cred) {
		return "", errMalformedCredential
	}
	return strings.Clone(cred), nil
}

// needCredential refuses a request without a well-formed credential, so
// that nothing a client sends reaches Direct Line unless it could be a
// secret or a token.
func (g *Gateway) needCredential(c *fiber.Ctx) error {
	if _, err := requestCredential(c); err != nil {
		refuseBody(c) // an upload still sending gets the answer, not a reset
		return err
	}
	return c.Next()
}

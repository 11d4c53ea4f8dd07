package gateway

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/dlsse/dlsse/session"
	"github.com/dlsse/dlsse/upstream"
)

// Direct Line error codes the gateway itself answers with.
const (
	codeBadArgument         = "BadArgument"
	codeNotFound            = "NotFound"
	codeUpstreamUnavailable = "UpstreamUnavailable"
	codeServiceUnavailable  = "ServiceUnavailable"
	codeTooLarge            = "MessageSizeTooBig"
	codeInternal            = "ServiceError"
)

// apiError is an error the gateway answers itself, in Direct Line's shape.
type apiError struct {
	status     int
	code       string
	message    string
	retryAfter time.Duration
}

func (e *apiError) Error() string { return e.code + ": " + e.message }

func newError(status int, code, message string) *apiError {
	return &apiError{status: status, code: code, message: message}
}

// toAPIError maps any error to the answer a client gets. It is the one
// place where errors become statuses.
func toAPIError(err error) *apiError {
	var ae *apiError
	var up *upstream.APIError
	var fe *fiber.Error
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.As(err, &up):
		code, msg := up.Code, up.Message
		if code == "" {
			code = http.StatusText(up.Status)
		}
		if msg == "" {
			msg = "Direct Line answered " + strconv.Itoa(up.Status)
		}
		return &apiError{status: up.Status, code: code, message: msg, retryAfter: up.RetryAfter}
	case errors.Is(err, upstream.ErrUnavailable), errors.Is(err, session.ErrUnavailable):
		retry := 5 * time.Second
		var ue *upstream.UnavailableError
		if errors.As(err, &ue) {
			retry = max(ue.RetryIn, time.Second)
		}
		return &apiError{status: http.StatusServiceUnavailable, code: codeUpstreamUnavailable,
			message: "Direct Line is unavailable; retry later", retryAfter: retry}
	case errors.Is(err, session.ErrBadCursor):
		return newError(http.StatusBadRequest, codeBadArgument, "invalid Last-Event-ID: not a cursor of this conversation")
	case errors.Is(err, upstream.ErrRequestBody):
		return newError(http.StatusRequestTimeout, codeBadArgument, "the request body could not be read in time")
	case errors.Is(err, session.ErrClosed):
		return &apiError{status: http.StatusServiceUnavailable, code: codeServiceUnavailable,
			message: "the gateway is shutting down", retryAfter: time.Second}
	case errors.As(err, &fe):
		switch fe.Code {
		case http.StatusNotFound:
			return newError(fe.Code, codeNotFound, "no such route")
		case http.StatusRequestEntityTooLarge:
			return newError(fe.Code, codeTooLarge, "request body too large")
		case http.StatusMethodNotAllowed:
			return newError(fe.Code, codeBadArgument, "method not allowed")
		}
		if fe.Code < 500 {
			// Fiber's message may quote the request as fasthttp read
			// it, headers (Authorization) included: never echoed.
			return newError(fe.Code, codeBadArgument, "malformed request: "+strings.ToLower(http.StatusText(fe.Code)))
		}
	}
	return &apiError{status: http.StatusBadGateway, code: codeUpstreamUnavailable,
		message: "Direct Line could not be reached", retryAfter: 5 * time.Second}
}

// handleError is Fiber's error handler: every error leaves as a Direct
// Line-shaped answer.
func (g *Gateway) handleError(c *fiber.Ctx, err error) error {
	ae := toAPIError(err)
	if ae.retryAfter > 0 {
		c.Set(fiber.HeaderRetryAfter, retryAfterSeconds(ae.retryAfter))
	}
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSONCharsetUTF8)
	return c.Status(ae.status).Send(upstream.ErrorJSON(ae.code, ae.message))
}

// retryAfterSeconds renders a Retry-After value: whole seconds, rounded
// up, at least 1.
func retryAfterSeconds(d time.Duration) string {
	return strconv.Itoa(int(max((d+time.Second-1)/time.Second, 1)))
}

func (g *Gateway) notFound(c *fiber.Ctx) error {
	return newError(http.StatusNotFound, codeNotFound, "no such route")
}

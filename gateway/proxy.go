package gateway

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/dlsse/dlsse/upstream"
)

// forwardedRequestHeaders are the request headers Direct Line uses. Nothing
// else from the client is forwarded.
var forwardedRequestHeaders = []string{fiber.HeaderAuthorization, fiber.HeaderContentType, fiber.HeaderAccept}

// forwardedResponseHeaders are passed back from Direct Line.
var forwardedResponseHeaders = []string{fiber.HeaderContentType, fiber.HeaderRetryAfter, fiber.HeaderETag}

// upstreamPath is the request path relative to /v3/directline, with the
// conversation id re-escaped so it stays one path segment.
func upstreamPath(c *fiber.Ctx) (string, error) {
	rel := strings.TrimPrefix(c.Path(), "/v3/directline")
	id := c.Params("id")
	if id == "" {
		return rel, nil
	}
	if err := validConversationID(id); err != nil {
		return "", err
	}
	// Routes are /conversations/:id[/suffix]; rebuild rather than trust
	// the raw path.
	suffix := ""
	if i := strings.Index(rel, "/conversations/"); i >= 0 {
		rest := rel[i+len("/conversations/"):]
		if j := strings.IndexByte(rest, '/'); j >= 0 {
			suffix = rest[j:]
		}
	}
	return upstream.ConversationPath(id) + suffix, nil
}

// send forwards the current request to Direct Line and returns the answer
// (its body still to read and close).
func (g *Gateway) send(c *fiber.Ctx) (*http.Response, error) {
	path, err := upstreamPath(c)
	if err != nil {
		return nil, err
	}
	h := make(http.Header, len(forwardedRequestHeaders))
	for _, name := range forwardedRequestHeaders {
		if v := c.Get(name); v != "" {
			h.Set(name, v)
		}
	}
	var body io.Reader
	if c.Method() != fiber.MethodGet {
		if s := c.Context().RequestBodyStream(); s != nil {
			body = s // uploads stream through, never held whole
		} else {
			body = bytes.NewReader(c.Body())
		}
	}
	return g.up.Forward(requestContext(c), c.Method(), path, string(c.Context().URI().QueryString()), h, body)
}

// requestContext is the context of an upstream call made for a client.
// fasthttp gives no signal when a client goes away, so the call is bounded
// by the gateway's shutdown only; the upstream client has its own timeouts.
func requestContext(c *fiber.Ctx) context.Context {
	if ctx := c.UserContext(); ctx != nil {
		return ctx
	}
	return context.Background()
}

// forward proxies a request to Direct Line and passes the answer back as
// is: status, body and the headers that matter.
func (g *Gateway) forward(c *fiber.Ctx) error {
	resp, err := g.send(c)
	if err != nil {
		return err
	}
	copyResponseHeaders(c, resp)
	c.Status(resp.StatusCode)
	c.Context().SetBodyStream(resp.Body, int(resp.ContentLength)) // closed by fasthttp once sent
	return nil
}

func copyResponseHeaders(c *fiber.Ctx, resp *http.Response) {
	for _, name := range forwardedResponseHeaders {
		if v := resp.Header.Get(name); v != "" {
			c.Set(name, v)
		}
	}
}

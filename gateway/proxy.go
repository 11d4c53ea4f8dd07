package gateway

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

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

// maxUserIDLen bounds the userId of an upload.
const maxUserIDLen = 256

// upstreamQuery rebuilds the query string from the parameters Direct Line
// knows, checked and escaped, so nothing else rides along upstream; wm is
// the watermark to send.
func upstreamQuery(c *fiber.Ctx, wm string) (string, error) {
	q := url.Values{}
	if wm != "" {
		if !upstream.ValidWatermark(wm) {
			return "", newError(http.StatusBadRequest, codeBadArgument, "invalid watermark")
		}
		q.Set("watermark", wm)
	}
	if uid := c.Query("userId"); uid != "" {
		if len(uid) > maxUserIDLen {
			return "", newError(http.StatusBadRequest, codeBadArgument, "invalid userId")
		}
		q.Set("userId", uid)
	}
	return q.Encode(), nil
}

// requestBody is the body of the current request as a reader: the stream
// when fasthttp streams it, the buffered bytes otherwise.
func requestBody(c *fiber.Ctx) io.Reader {
	if s := c.Context().RequestBodyStream(); s != nil {
		return s
	}
	return bytes.NewReader(c.Body())
}

// maxDrain bounds what refuseBody reads of a refused body.
const maxDrain = 4 << 20

// refuseBody prepares the answer to a request refused before its body was
// read to the end (too large). A client still sending when the connection
// closes gets a reset, not the answer, since the kernel resets a socket
// closed with unread data: so the rest of the body is read and dropped
// first, up to maxDrain (a bigger one may still see the reset), and the
// connection is closed after the answer.
func refuseBody(c *fiber.Ctx) {
	c.Set(fiber.HeaderConnection, "close")
	if s := c.Context().RequestBodyStream(); s != nil {
		_, _ = io.CopyN(io.Discard, s, maxDrain)
	}
}

// send forwards the current request to Direct Line with body, bounded by
// timeout, and returns the answer. Its Body cancels the call's context
// when closed (fasthttp closes it once sent).
func (g *Gateway) send(c *fiber.Ctx, body io.Reader, timeout time.Duration) (*http.Response, error) {
	return g.sendWatermark(c, body, timeout, c.Query("watermark"))
}

// sendWatermark is send with the watermark query parameter replaced by wm.
func (g *Gateway) sendWatermark(c *fiber.Ctx, body io.Reader, timeout time.Duration, wm string) (*http.Response, error) {
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
	if c.Method() == fiber.MethodGet {
		body = nil
	}
	query, err := upstreamQuery(c, wm)
	if err != nil {
		return nil, err
	}
	// fasthttp gives no signal when a client goes away: the call is
	// bounded by its own timeout.
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	resp, err := g.up.Forward(ctx, c.Method(), path, query, h, body)
	if err != nil {
		cancel()
		return nil, err
	}
	resp.Body = &cancelOnClose{ReadCloser: resp.Body, cancel: cancel}
	return resp, nil
}

type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelOnClose) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

// forward proxies a request to Direct Line and passes the answer back as
// is: status, body and the headers that matter.
func (g *Gateway) forward(c *fiber.Ctx) error {
	return g.forwardBody(c, requestBody(c), g.cfg.ForwardTimeout)
}

func (g *Gateway) forwardBody(c *fiber.Ctx, body io.Reader, timeout time.Duration) error {
	resp, err := g.send(c, body, timeout)
	if err != nil {
		return err
	}
	relay(c, resp)
	return nil
}

// relay passes an answer back as is.
func relay(c *fiber.Ctx, resp *http.Response) {
	copyResponseHeaders(c, resp)
	c.Status(resp.StatusCode)
	c.Context().SetBodyStream(resp.Body, int(resp.ContentLength)) // closed by fasthttp once sent
}

// upload proxies an upload as a stream, never held whole, cut off past
// MaxUploadBytes.
func (g *Gateway) upload(c *fiber.Ctx) error {
	// Direct Line posts an upload as from userId: noted, like a post's
	// sender (activity.go).
	g.sessions.NoteSender(c.Params("id"), strings.Clone(c.Query("userId")))
	body := &limitedBody{r: requestBody(c), left: g.cfg.MaxUploadBytes}
	resp, err := g.send(c, body, g.cfg.UploadTimeout)
	if body.hit || errors.Is(err, errUploadTooLarge) {
		if resp != nil {
			resp.Body.Close()
		}
		refuseBody(c)
		return newError(http.StatusRequestEntityTooLarge, codeTooLarge, "upload larger than this gateway accepts")
	}
	if err != nil {
		return err
	}
	relay(c, resp)
	return nil
}

func copyResponseHeaders(c *fiber.Ctx, resp *http.Response) {
	for _, name := range forwardedResponseHeaders {
		if v := resp.Header.Get(name); v != "" {
			c.Set(name, v)
		}
	}
}

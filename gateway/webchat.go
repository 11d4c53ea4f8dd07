package gateway

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"

	"github.com/gofiber/fiber/v2"
)

// The Web Chat demo page (/webchat): Microsoft's botframework-webchat bundle
// rendered with dlsse's directLine adapter. The bundle is not part of the
// binary or the repository (3.9 MB, fetched and pinned by
// scripts/fetch-webchat); it is read from Config.WebChatBundle at start and
// served from memory, so the page needs no CDN.
var (
	//go:embed web/webchat.html
	webchatHTML []byte
	//go:embed web/webchat-app.js
	webchatAppJS []byte
)

// webchatCSP is pageCSP widened for what Web Chat does: it injects <style>
// elements (emotion), shows images and files from blob: and data: URLs, and
// the adapter reads attachments from their blob: URLs (fetch) to upload them.
const webchatCSP = "default-src 'self'; connect-src 'self' blob:; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; media-src 'self' blob:"

// staticFile is a file served from memory, with an ETag computed once and
// its gzip form made on first use (compressing Web Chat's bundle takes
// ~0.2 s: not something to add to every start). Not Fiber's compress and
// etag middleware: they would compress and hash 3.9 MB on every request,
// and the compressor keeps a pool of goroutines for the life of the
// process.
type staticFile struct {
	body []byte
	gz   func() []byte
	etag string
}

// loadStaticFile reads path. A missing file is not an error (nil, nil):
// the page then explains how to get it.
func loadStaticFile(path string) (*staticFile, error) {
	if path == "" {
		return nil, nil
	}
	body, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(body)
	return &staticFile{
		body: body,
		gz:   sync.OnceValue(func() []byte { return gzipped(body) }),
		etag: `"` + hex.EncodeToString(sum[:12]) + `"`,
	}, nil
}

func gzipped(b []byte) []byte {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	zw.Write(b)
	zw.Close() // writes to memory: cannot fail
	return buf.Bytes()
}

// send answers with the file: 304 for a matching If-None-Match, gzip when
// the client takes it. The path is not versioned, so browsers revalidate
// (no-cache) and a new bundle reaches them at once.
func (f *staticFile) send(c *fiber.Ctx, contentType string) error {
	c.Set(fiber.HeaderETag, f.etag)
	c.Set(fiber.HeaderCacheControl, "no-cache")
	c.Set(fiber.HeaderVary, fiber.HeaderAcceptEncoding)
	c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
	if c.Get(fiber.HeaderIfNoneMatch) == f.etag {
		return c.SendStatus(fiber.StatusNotModified)
	}
	c.Set(fiber.HeaderContentType, contentType)
	if c.Context().Request.Header.HasAcceptEncoding("gzip") {
		c.Set(fiber.HeaderContentEncoding, "gzip")
		return c.Send(f.gz())
	}
	return c.Send(f.body)
}

// webchatPage answers GET /webchat. It is served even without the bundle:
// its script then says how to install it.
func (g *Gateway) webchatPage(c *fiber.Ctx) error { return sendPage(c, webchatHTML, webchatCSP) }

// webchatScript answers GET /webchat/app.js, the page's own module.
func (g *Gateway) webchatScript(c *fiber.Ctx) error { return sendScript(c, webchatAppJS) }

// webchatBundle answers GET /webchat/webchat.js from memory, or a
// Direct Line-shaped 404 naming the fix when the bundle is not installed.
func (g *Gateway) webchatBundle(c *fiber.Ctx) error {
	if g.webchat == nil {
		return newError(fiber.StatusNotFound, codeNotFound,
			fmt.Sprintf("Web Chat bundle not installed at %q: run ./scripts/fetch-webchat", g.cfg.WebChatBundle))
	}
	return g.webchat.send(c, "text/javascript; charset=utf-8")
}

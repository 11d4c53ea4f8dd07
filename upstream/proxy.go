package upstream

import (
	"bufio"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
)

// streamProxy is the proxy a stream to u goes through: the REST
// transport's choice for the same URL (wss asks as https does), so that
// a gateway that reaches Direct Line through an egress proxy streams
// through it too. nil: straight.
func (c *Client) streamProxy(u *url.URL) (*url.URL, error) {
	if c.proxy == nil {
		return nil, nil
	}
	asked := *u
	switch u.Scheme {
	case "wss":
		asked.Scheme = "https"
	case "ws":
		asked.Scheme = "http"
	}
	p, err := c.proxy(&http.Request{Method: http.MethodGet, URL: &asked, Header: http.Header{}})
	if err != nil || p == nil {
		return nil, err
	}
	if p.Scheme != "http" {
		// An https or socks5 proxy would need its own layer under the
		// stream's; none was asked for yet.
		return nil, &proxyError{fmt.Sprintf("upstream: a stream cannot go through a %s proxy (http only)", p.Scheme)}
	}
	return p, nil
}

// tunnel asks the HTTP proxy at the other end of conn for a tunnel to addr
// (CONNECT), under the deadline conn already has.
func tunnel(conn net.Conn, proxy *url.URL, addr string) error {
	req := "CONNECT " + addr + " HTTP/1.1\r\nHost: " + addr + "\r\n"
	if u := proxy.User; u != nil {
		pass, _ := u.Password()
		req += "Proxy-Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte(u.Username()+":"+pass)) + "\r\n"
	}
	if _, err := conn.Write([]byte(req + "\r\n")); err != nil {
		return err
	}
	// Nothing comes through the tunnel before the stream's first bytes go
	// in, so the reader cannot take any of them: it is checked anyway.
	br := bufio.NewReaderSize(conn, 1024)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		return err
	}
	resp.Body.Close()
	switch {
	case resp.StatusCode != http.StatusOK:
		return &proxyError{fmt.Sprintf("upstream: the proxy refused the tunnel (%d %s)", resp.StatusCode, http.StatusText(resp.StatusCode))}
	case br.Buffered() > 0:
		return errors.New("upstream: the proxy sent bytes past its answer to CONNECT")
	}
	return nil
}

// proxyError is the proxy's fault, not Direct Line's (so not an
// APIError); it never quotes the stream URL.
type proxyError struct{ msg string }

func (e *proxyError) Error() string { return e.msg }

// proxyAddr is the proxy's host:port (80 when p names none).
func proxyAddr(p *url.URL) string {
	if p.Port() != "" {
		return p.Host
	}
	return net.JoinHostPort(p.Hostname(), "80")
}

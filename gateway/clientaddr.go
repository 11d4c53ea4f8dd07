package gateway

import (
	"bytes"
	"fmt"
	"net/netip"
	"strings"

	"github.com/gofiber/fiber/v2"
)

// maxForwardedHops bounds how much of X-Forwarded-For is read: no real
// chain of proxies is longer, and the header is the client's to pad.
const maxForwardedHops = 32

// proxyTrust is the set of addresses whose X-Forwarded-* headers are
// believed (trusted_proxies). Anybody else's are ignored entirely.
type proxyTrust []netip.Prefix

// parseTrustedProxies reads IPs and CIDRs.
func parseTrustedProxies(list []string) (proxyTrust, error) {
	var t proxyTrust
	for _, s := range list {
		s = strings.TrimSpace(s)
		if p, err := netip.ParsePrefix(s); err == nil {
			t = append(t, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("trusted_proxies: %q is neither an IP nor a CIDR", s)
		}
		a = a.Unmap()
		t = append(t, netip.PrefixFrom(a, a.BitLen()))
	}
	return t, nil
}

func (t proxyTrust) trusts(a netip.Addr) bool {
	for _, p := range t {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// peerAddr is the address at the other end of the connection.
func peerAddr(c *fiber.Ctx) netip.Addr {
	a, _ := netip.AddrFromSlice(c.Context().RemoteIP())
	return a.Unmap()
}

// clientAddr is the client's address: the peer, or, when the peer is a
// trusted proxy, the rightmost X-Forwarded-For entry that is not a trusted
// proxy (entries further left are whatever the client wrote). An entry
// that is not an address ends the walk at the last hop that was one: a
// malformed or empty header never names anybody but a trusted proxy.
func (g *Gateway) clientAddr(c *fiber.Ctx) netip.Addr {
	client := peerAddr(c)
	if !g.trust.trusts(client) {
		return client
	}
	headers := c.Request().Header.PeekAll(fiber.HeaderXForwardedFor)
	hops := 0
	for i := len(headers) - 1; i >= 0; i-- {
		list := headers[i]
		for len(list) > 0 {
			var entry []byte
			if j := bytes.LastIndexByte(list, ','); j >= 0 {
				entry, list = list[j+1:], list[:j]
			} else {
				entry, list = list, nil
			}
			if hops++; hops > maxForwardedHops {
				return client
			}
			a, ok := parseHop(bytes.TrimSpace(entry))
			if !ok {
				return client
			}
			client = a
			if !g.trust.trusts(a) {
				return a
			}
		}
	}
	return client
}

// parseHop reads one X-Forwarded-For entry: an address, possibly with a
// port ("192.0.2.1:443", "[2001:db8::1]:443"), as some proxies write it.
func parseHop(b []byte) (netip.Addr, bool) {
	s := string(b)
	if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
		return a.Unmap(), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil && ap.Addr().Zone() == "" {
		return ap.Addr().Unmap(), true
	}
	return netip.Addr{}, false
}

// clientKey names the client for per-address limits. An IPv6 client is
// counted by its /64: whoever holds one address of it usually holds all.
// The key is short and canonical, whatever the headers held.
func (g *Gateway) clientKey(c *fiber.Ctx) string {
	return addrKey(g.clientAddr(c))
}

func addrKey(a netip.Addr) string {
	if a.Is6() {
		return netip.PrefixFrom(a, 64).Masked().String()
	}
	return a.String()
}

// publicBase is the scheme and host a client reached dlsse at, for the
// URLs dlsse hands out: public_url when set; otherwise the request's own,
// or what a trusted proxy says in X-Forwarded-Proto and -Host. Values that
// are not a plain scheme or host are ignored.
func (g *Gateway) publicBase(c *fiber.Ctx) string {
	if g.cfg.PublicURL != "" {
		return strings.TrimRight(g.cfg.PublicURL, "/")
	}
	scheme := "http"
	if c.Context().IsTLS() {
		scheme = "https"
	}
	host := string(c.Request().Host())
	if g.trust.trusts(peerAddr(c)) {
		if p := strings.ToLower(firstValue(c.Get(fiber.HeaderXForwardedProto))); p == "http" || p == "https" {
			scheme = p
		}
		if h := firstValue(c.Get(fiber.HeaderXForwardedHost)); validHost(h) {
			host = h
		}
	}
	if !validHost(host) {
		host = c.Context().LocalAddr().String()
	}
	return scheme + "://" + host
}

// firstValue is the first entry of a comma-separated header value.
func firstValue(v string) string {
	if i := strings.IndexByte(v, ','); i >= 0 {
		v = v[:i]
	}
	return strings.TrimSpace(v)
}

// validHost accepts host[:port] made of what DNS names and IP literals use.
func validHost(h string) bool {
	if h == "" || len(h) > 255 {
		return false
	}
	for i := 0; i < len(h); i++ {
		switch c := h[i]; {
		case c >= '0' && c <= '9', c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		case c == '-', c == '.', c == ':', c == '[', c == ']', c == '_':
		default:
			return false
		}
	}
	return true
}

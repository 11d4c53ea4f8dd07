package upstream

import (
	"context"
	"net"
)

// SetNetDial replaces how c's stream dials open TCP connections, so tests
// can make a dial fail the way the kernel would (EMFILE, ECONNREFUSED).
func SetNetDial(c *Client, dial func(ctx context.Context, network, addr string) (net.Conn, error)) {
	c.dialer.NetDialContext = dial
}

// DecodeStreamSet is decodeStreamSet, for the tests that hold it to
// json.Unmarshal.
var DecodeStreamSet = decodeStreamSet

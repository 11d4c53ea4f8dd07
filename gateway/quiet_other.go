//go:build !unix

package gateway

import "net"

// bytesWaiting cannot peek here: it says yes, so Shutdown leaves the
// connection to fasthttp.
func bytesWaiting(net.Conn) bool { return true }

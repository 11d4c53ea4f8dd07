package main

import (
	"context"
	"net"
	"time"

	"github.com/fasthttp/websocket"
)

// wsClient is one baseline subscriber: it reads a conversation's Direct
// Line WebSocket from the fake directly, no dlsse in between, and records
// the same stamps as sseClient, so the difference between the two is
// what dlsse adds.
type wsClient struct {
	rec    *recorder
	dialer websocket.Dialer
	url    func(context.Context) (string, error) // a fresh streamUrl
}

func newWSClient(rec *recorder, src net.IP, streamURL func(context.Context) (string, error)) *wsClient {
	nd := &net.Dialer{LocalAddr: &net.TCPAddr{IP: src}, Timeout: 10 * time.Second}
	return &wsClient{
		rec: rec,
		dialer: websocket.Dialer{
			NetDialContext:   nd.DialContext,
			HandshakeTimeout: headTimeout,
			ReadBufferSize:   4096,
			WriteBufferSize:  256, // it only ever writes a close frame
		},
		url: streamURL,
	}
}

// run reads the socket until ctx ends or the socket fails (the baseline
// never drops sockets: a failure is counted, not retried). connected is
// called once the socket is open, or could not be.
func (c *wsClient) run(ctx context.Context, connected func(error)) {
	url, err := c.url(ctx)
	if err != nil {
		connected(err)
		return
	}
	conn, resp, err := c.dialer.DialContext(ctx, url, nil)
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	connected(err)
	if err != nil {
		return
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	c.rec.online.Store(true)
	for {
		_, msg, err := conn.ReadMessage()
		if err != nil {
			if ctx.Err() == nil {
				c.rec.online.Store(false)
				c.rec.disconnects.Add(1)
			}
			return
		}
		if len(msg) > 0 {
			c.rec.record(msg, time.Now().UnixNano())
		}
	}
}

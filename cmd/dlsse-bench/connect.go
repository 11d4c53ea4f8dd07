package main

import (
	"context"
	"net"
	"net/url"
	"time"

	"github.com/dlsse/dlsse/upstream/directlinetest"
)

// setupTimeout bounds connecting a whole fleet and seeing it online.
const setupTimeout = 3 * time.Minute

// connectSSE starts one dlsse subscriber per entry of convs (an entry may
// repeat: fanout subscribes S times to one conversation), spread over the
// source addresses, and waits until every stream says "online". It
// returns the fleet (which the caller must close) and how long that took.
func (b *bench) connectSSE(ctx context.Context, e *env, convs []directlinetest.ConversationCredentials, bufSize int) (*fleet, time.Duration, error) {
	return b.connect(ctx, e, convs, bufSize, "sse")
}

// connect is connectSSE with subscribers of the given wire: "websocket"
// opens the same stream URLs as DirectLineJS does (dlwsClient).
func (b *bench) connect(ctx context.Context, e *env, convs []directlinetest.ConversationCredentials, bufSize int, wire string) (*fleet, time.Duration, error) {
	f := newFleet(ctx, b.opt.concurrency)
	took, err := b.addStreams(ctx, f, convs, func(int) []string { return []string{e.dlsse.Addr} }, bufSize, wire)
	if err != nil {
		f.close()
		return nil, 0, err
	}
	return f, took, nil
}

// addSSE adds one subscriber per entry of convs to fleet f, subscriber i
// connecting to addrs(i)[0] and, on each reconnect, to the next address
// of addrs(i) in turn; and waits until every client of f is online.
func (b *bench) addSSE(ctx context.Context, f *fleet, convs []directlinetest.ConversationCredentials, addrs func(i int) []string, bufSize int) (time.Duration, error) {
	return b.addStreams(ctx, f, convs, addrs, bufSize, "sse")
}

// addStreams is addSSE with subscribers of the given wire.
func (b *bench) addStreams(ctx context.Context, f *fleet, convs []directlinetest.ConversationCredentials, addrs func(i int) []string, bufSize int, wire string) (time.Duration, error) {
	srcs := sourceAddrs(b.opt.sources)
	began := time.Now()
	for i, c := range convs {
		target := "/v3/directline/conversations/" + url.PathEscape(c.ConversationID) + "/stream?t=" + url.QueryEscape(c.Token)
		rec := &recorder{}
		cl, err := newSubscriber(rec, srcs[len(f.recs)%len(srcs)], addrs(i), target, bufSize, wire)
		if err != nil {
			return 0, err
		}
		if err := f.add(rec, cl); err != nil {
			return 0, err
		}
	}
	err := f.waitAll(ctx, "streams online", setupTimeout, func(r *recorder) bool { return r.online.Load() })
	took := time.Since(began)
	if err != nil {
		return 0, err
	}
	b.logf("%s streams online in %.1f s", count(int64(len(convs))), took.Seconds())
	return took, nil
}

// subscriber is a dlsse subscriber of either wire (sseClient, dlwsClient):
// run keeps it streaming, as a fleet's client; stream opens one stream,
// as churn's visits do.
type subscriber interface {
	client
	stream(ctx context.Context, headDone func(error)) error
}

// newSubscriber makes a subscriber of the given wire to target on
// addrs[0], reconnecting to the next of addrs in turn.
func newSubscriber(rec *recorder, src net.IP, addrs []string, target string, bufSize int, wire string) (subscriber, error) {
	if wire == "websocket" {
		ws, err := newDLWSClient(rec, src, addrs[0], target, bufSize)
		if err != nil {
			return nil, err
		}
		return ws.rotate(addrs), nil
	}
	return newSSEClient(rec, src, addrs[0], target, bufSize).rotate(addrs), nil
}

// connectWS starts one baseline client per conversation, reading the
// fake's WebSocket directly (a streamUrl from the fake's reconnect call,
// with the conversation's token), and waits until every socket is open.
func (b *bench) connectWS(ctx context.Context, e *env, convs []directlinetest.ConversationCredentials) (*fleet, time.Duration, error) {
	f := newFleet(ctx, b.opt.concurrency)
	srcs := sourceAddrs(b.opt.sources)
	began := time.Now()
	for i, c := range convs {
		rec := &recorder{}
		streamURL := func(ctx context.Context) (string, error) { return e.ctl.streamURL(ctx, c) }
		if err := f.add(rec, newWSClient(rec, srcs[i%len(srcs)], streamURL)); err != nil {
			f.close()
			return nil, 0, err
		}
	}
	err := f.waitAll(ctx, "sockets open", setupTimeout, func(r *recorder) bool { return r.online.Load() })
	took := time.Since(began)
	if err != nil {
		f.close()
		return nil, 0, err
	}
	b.logf("%s sockets open in %.1f s", count(int64(len(convs))), took.Seconds())
	return f, took, nil
}

// deliveredAll is a wait condition: every client has n distinct stamped
// activities.
func deliveredAll(n int64) func(*recorder) bool {
	return func(r *recorder) bool { return r.distinct.Load() >= n }
}

// connectOne starts one conversation on the fake and connects s
// subscribers of -wire to it, reading with bufSize buffers: the fan-out
// scenarios' setup. It returns the conversation's id.
func (b *bench) connectOne(ctx context.Context, e *env, s, bufSize int) (string, *fleet, time.Duration, error) {
	convs, err := e.ctl.conversations(ctx, 1)
	if err != nil {
		return "", nil, 0, err
	}
	subs := make([]directlinetest.ConversationCredentials, s)
	for i := range subs {
		subs[i] = convs[0]
	}
	f, took, err := b.connect(ctx, e, subs, bufSize, b.opt.wire)
	return convs[0].ConversationID, f, took, err
}

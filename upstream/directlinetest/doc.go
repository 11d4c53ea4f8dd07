// Package directlinetest is an in-process fake of the Microsoft Bot Framework
// Direct Line 3.0 service, in the style of net/http/httptest.
//
// It exists so that dlsse can be tested end to end without a network, an
// Azure subscription or a real bot, and so that the gateway's -demo mode has
// an upstream to talk to. NewServer starts a real HTTP server on 127.0.0.1
// that speaks the Direct Line REST API under /v3/directline (tokens,
// conversations, activities, uploads) and serves the conversation WebSocket
// stream with Direct Line's semantics: ActivitySets with watermarks, replay of
// the durable history on reconnect, ephemeral typing activities, keepalive
// frames, one socket per conversation and short-lived stream URLs.
//
// A Bot answers user activities; the default EchoBot replies to every user
// message with a typing activity followed by "echo: <text>". Tests can
// replace it with WithBot, push bot activities directly (Push, PushSet,
// PushTyping), inject faults (FailNext, FailNextDials, DropSockets,
// CloseSocket, SetLatency, ExpireTokens) and observe the server (Stats,
// WaitFor, History, SocketsOpen) without sleeping. Load benchmarks create
// conversations in bulk (NewConversations) and drive a paced bot load
// (StartLoad) whose messages carry their send time (PushStamped).
//
// A socket is attached to its conversation before the WebSocket handshake
// answers, so once a client's dial has returned, everything delivered
// afterwards reaches it live, after the backlog set; tests can Push right
// after dialling without waiting.
//
// Deliberate simplifications, compared with the real service:
//   - Activity ids are "{conversationId}|{seq:07d}" with seq the 0-based
//     position in the durable history, and a watermark is the number of
//     durable activities so far, so the activity "…|0000004" is followed by
//     watermark "5".
//   - JSON numbers sent by clients are kept verbatim (json.Number) so that
//     they survive the round trip unchanged; maps handed to a Bot and
//     returned by History therefore hold json.Number, not float64.
//   - Uploaded bytes are counted and discarded; the attachment's contentUrl
//     is not served.
//   - Stream URLs may be dialled more than once while they are fresh, so that
//     a client retrying a failed dial behaves as it would against the real
//     service.
//
// Every Server must be closed; Close tears down every socket and waits for
// every goroutine the Server started.
package directlinetest

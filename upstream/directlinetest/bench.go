package directlinetest

import (
	"maps"
	"time"
)

// This file holds what load benchmarks need from the fake: activities
// that carry their send time, and many conversations at once.

// stampSentAt adds the benchmark stamp to an activity about to be encoded:
// channelData.sentAt, the wall clock in Unix nanoseconds, taken as late as
// possible (just before the activity is encoded and queued for the
// socket), and for a durable activity channelData.seq, its 0-based
// position in the conversation's history (the number its id ends with).
// Any channelData the activity had is kept.
func stampSentAt(a map[string]any, durable bool, seq int) {
	cd, _ := a["channelData"].(map[string]any)
	cd = maps.Clone(cd)
	if cd == nil {
		cd = make(map[string]any, 2)
	}
	if durable {
		cd["seq"] = seq
	}
	cd["sentAt"] = time.Now().UnixNano()
	a["channelData"] = cd
}

// PushStamped is Push for latency measurements: every message also carries
// channelData.sentAt, the Server's wall clock in Unix nanoseconds when it
// queued the message for the socket, and channelData.seq, the message's
// 0-based position in the conversation's history. A client on the same
// machine subtracts sentAt from its own clock to get the delivery latency,
// and uses seq to check that it got every message exactly once.
//
// The keys are stable, so a client that must not spend a JSON decode per
// message can find the numbers after `"sentAt":` and `"seq":` (they cannot
// occur inside a JSON string, where quotes are escaped).
func (s *Server) PushStamped(convID string, texts ...string) error {
	return s.pushTexts(convID, texts, false, true)
}

// pushTexts makes the bot send texts as durable messages: each in its own
// ActivitySet, or all in one (oneSet), stamped for benchmarks or not.
func (s *Server) pushTexts(convID string, texts []string, oneSet, stamp bool) error {
	opt := stampOptions{defaultFrom: botAccount(), sentAt: stamp}
	acts := textMessages(texts)
	var sets [][]map[string]any
	if oneSet {
		if len(acts) == 0 {
			return s.checkConv(convID)
		}
		sets = [][]map[string]any{acts}
	} else {
		sets = make([][]map[string]any, len(acts))
		for i, a := range acts {
			sets[i] = []map[string]any{a}
		}
	}
	_, err := s.deliver(convID, sets, opt)
	return err
}

// ConversationCredentials names a conversation and a token for it.
type ConversationCredentials struct {
	ConversationID string `json:"conversationId"`
	Token          string `json:"token"`
}

// NewConversations is NewConversation n times, for load tests that need
// thousands of conversations without thousands of calls. Conversations are
// created under one lock hold, then each bot OnStart runs.
func (s *Server) NewConversations(n int) []ConversationCredentials {
	out := make([]ConversationCredentials, n)
	s.mu.Lock()
	for i := range out {
		c := s.newConversationLocked()
		c.startLocked()
		tok, _ := s.issueTokenLocked(c.id)
		out[i] = ConversationCredentials{ConversationID: c.id, Token: tok}
	}
	s.mu.Unlock()
	for _, c := range out {
		s.cfg.bot.OnStart(&Conv{s: s, id: c.ConversationID})
	}
	return out
}

package session

import (
	"context"
	"sync"
	"time"
)

// Bounds of what senders remembers.
const (
	maxSendersPerConversation = 8
	maxSenderConversations    = 50_000
	senderTTL                 = 24 * time.Hour
)

// senders remembers, per conversation, the ids clients posted activities
// as through dlsse (a post's from.id, an upload's userId). Any participant
// may post an endOfConversation, and Direct Line echoes it into the stream
// like any activity: only the bot's ends the conversation for everyone,
// and the bot is whoever is not a client.
type senders struct {
	mu     sync.Mutex
	byConv map[string]*senderSet
	noted  chan struct{} // closed (and replaced) at every note: news for waiters
}

type senderSet struct {
	ids  []string
	seen time.Time
}

func newSenders() senders {
	return senders{byConv: make(map[string]*senderSet), noted: make(chan struct{})}
}

// news returns a channel closed at the next note.
func (s *senders) news() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.noted
}

func (s *senders) note(conversationID, id string, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	close(s.noted)
	s.noted = make(chan struct{})
	set := s.byConv[conversationID]
	if set == nil {
		if len(s.byConv) >= maxSenderConversations {
			s.pruneLocked(now)
		}
		set = &senderSet{}
		s.byConv[conversationID] = set
	}
	set.seen = now
	for _, known := range set.ids {
		if known == id {
			return
		}
	}
	if len(set.ids) == maxSendersPerConversation {
		set.ids = append(set.ids[:0], set.ids[1:]...) // the oldest goes
	}
	set.ids = append(set.ids, id)
}

func (s *senders) has(conversationID, id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	set := s.byConv[conversationID]
	if set == nil {
		return false
	}
	for _, known := range set.ids {
		if known == id {
			return true
		}
	}
	return false
}

// pruneLocked forgets conversations nobody posted to for senderTTL, and,
// if that is not enough, any of them: an id forgotten only matters if its
// endOfConversation comes back in a replay.
func (s *senders) pruneLocked(now time.Time) {
	for id, set := range s.byConv {
		if now.Sub(set.seen) > senderTTL {
			delete(s.byConv, id)
		}
	}
	for id := range s.byConv {
		if len(s.byConv) < maxSenderConversations {
			return
		}
		delete(s.byConv, id)
	}
}

// NoteSender records that a client posted to the conversation as id, here
// and on the replicas that follow the conversation (its owner among them).
// It returns once the other replicas were told, before the post goes to
// Direct Line: told later (queued behind other news), the owner could
// see the activity's echo, lose its socket and take a participant's
// endOfConversation for the bot's, ending the conversation for everyone.
func (m *Manager) NoteSender(conversationID, id string) {
	if id == "" {
		return
	}
	m.senders.note(conversationID, id, time.Now())
	if !m.clustered {
		return
	}
	ctx, cancel := context.WithTimeout(m.ctx, leaseCallTimeout)
	defer cancel()
	if err := m.shared.Bus.Publish(ctx, conversationID, m.cfg.Replica, Message{Kind: KindSender, Sender: id}); err != nil && m.ctx.Err() == nil {
		m.cfg.Logger.Warn().Err(err).Str("conversation_id", conversationID).Msg("could not tell the other replicas")
	}
}

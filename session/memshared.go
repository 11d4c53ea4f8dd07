package session

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/dlsse/dlsse/internal/inbox"
)

// NewMemoryShared returns leases, a journal and a bus in memory: what a
// single process shares with nobody, or several Managers in one process
// share with each other (tests). The journal keeps the newest keep records
// of each conversation (0: none; a single process's sessions keep their
// own replay logs).
func NewMemoryShared(keep int) Shared {
	m := &memShared{keep: keep, convs: make(map[string]*memConv)}
	return Shared{Leases: m, Journal: m, Bus: m}
}

type memShared struct {
	keep int

	mu     sync.Mutex
	convs  map[string]*memConv
	fences Fence // the last fence handed out, for any conversation: never reused
}

// memConv is what is shared about one conversation.
type memConv struct {
	holder string
	fence  Fence // the current lease's
	until  time.Time

	epoch     string
	offset    uint64
	records   []Record // the newest keep
	watermark string
	status    Status

	followers []*memFollower
}

var (
	_ Leases  = (*memShared)(nil)
	_ Journal = (*memShared)(nil)
	_ Bus     = (*memShared)(nil)
)

func (m *memShared) convLocked(id string) *memConv {
	c := m.convs[id]
	if c == nil {
		c = &memConv{epoch: newEpoch()}
		m.convs[id] = c
	}
	return c
}

// forgetLocked drops a conversation nobody holds, follows or keeps anything
// of, so the map stays as large as what is live.
func (m *memShared) forgetLocked(id string, c *memConv) {
	if c.holder == "" && len(c.followers) == 0 && (m.keep == 0 || len(c.records) == 0) {
		delete(m.convs, id)
	}
}

// newEpoch names a journal that starts over.
func newEpoch() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (m *memShared) heldLocked(c *memConv, now time.Time) bool {
	return c.holder != "" && now.Before(c.until)
}

func (m *memShared) Acquire(_ context.Context, conversationID, holder string, ttl time.Duration) (Lease, time.Duration, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	c := m.convLocked(conversationID)
	if m.heldLocked(c, now) {
		return Lease{}, c.until.Sub(now), ErrNotOwner
	}
	m.fences++
	c.fence, c.holder, c.until = m.fences, holder, now.Add(ttl)
	return Lease{Conversation: conversationID, Holder: holder, Fence: c.fence}, 0, nil
}

// holdsLocked reports whether l is the conversation's current lease.
func (m *memShared) holdsLocked(l Lease, now time.Time) (*memConv, bool) {
	c := m.convs[l.Conversation]
	if c == nil || !m.heldLocked(c, now) || c.holder != l.Holder || c.fence != l.Fence {
		return c, false
	}
	return c, true
}

func (m *memShared) Renew(_ context.Context, l Lease, ttl time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	c, ok := m.holdsLocked(l, now)
	if !ok {
		return ErrNotOwner
	}
	c.until = now.Add(ttl)
	return nil
}

func (m *memShared) Release(_ context.Context, l Lease) error {
	m.mu.Lock()
	c, ok := m.holdsLocked(l, time.Now())
	if !ok {
		m.mu.Unlock()
		return nil
	}
	c.holder, c.until = "", time.Time{}
	m.deliverLocked(c, l.Holder, Message{Kind: KindReleased})
	m.forgetLocked(l.Conversation, c)
	m.mu.Unlock()
	return nil
}

func (m *memShared) Append(_ context.Context, l Lease, entries []Entry, watermark string) (Position, error) {
	m.mu.Lock()
	c, ok := m.holdsLocked(l, time.Now())
	if !ok {
		m.mu.Unlock()
		return Position{}, ErrNotOwner
	}
	recs := make([]Record, len(entries))
	for i := range entries {
		c.offset++
		e := entries[i]
		e.Seq = 0
		recs[i] = Record{Pos: Position{Epoch: c.epoch, Offset: c.offset}, Entry: e}
	}
	if watermark != "" {
		c.watermark = watermark
	}
	if m.keep > 0 {
		c.records = append(c.records, recs...)
		if over := len(c.records) - m.keep; over > 0 {
			c.records = slices.Delete(c.records, 0, over)
		}
	}
	pos := Position{Epoch: c.epoch, Offset: c.offset}
	m.deliverLocked(c, l.Holder, Message{Kind: KindAppended, Records: recs, Pos: pos, Watermark: watermark})
	m.mu.Unlock()
	return pos, nil
}

func (m *memShared) Read(_ context.Context, conversationID string, after Position, n int) ([]Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.convs[conversationID]
	if c == nil || after.Epoch != c.epoch || after.Offset > c.offset {
		return nil, ErrGap
	}
	if after.Offset == c.offset {
		return nil, nil
	}
	if len(c.records) == 0 || c.records[0].Pos.Offset > after.Offset+1 {
		return nil, ErrGap // trimmed
	}
	i := int(after.Offset + 1 - c.records[0].Pos.Offset)
	return slices.Clone(c.records[i:min(len(c.records), i+n)]), nil
}

func (m *memShared) Tail(_ context.Context, conversationID string, n int) (Snapshot, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.convs[conversationID]
	if c == nil {
		return Snapshot{}, nil
	}
	return Snapshot{Records: slices.Clone(c.records[max(0, len(c.records)-n):]), Watermark: c.watermark, Status: c.status}, nil
}

func (m *memShared) Publish(_ context.Context, conversationID, from string, msg Message) error {
	m.mu.Lock()
	c := m.convs[conversationID]
	if c == nil {
		m.mu.Unlock()
		return nil // nobody follows it
	}
	m.deliverLocked(c, from, msg)
	m.mu.Unlock()
	return nil
}

func (m *memShared) PublishOwned(_ context.Context, l Lease, msg Message) error {
	m.mu.Lock()
	c, ok := m.holdsLocked(l, time.Now())
	if !ok {
		m.mu.Unlock()
		return ErrNotOwner
	}
	if msg.Kind == KindStatus || msg.Kind == KindEnded {
		c.status = msg.Status
	}
	m.deliverLocked(c, l.Holder, msg)
	m.mu.Unlock()
	return nil
}

// deliverLocked queues a message from replica from for every other
// follower. Under m.mu, so that every follower gets messages in the order
// they were published; an inbox never waits for its function.
func (m *memShared) deliverLocked(c *memConv, from string, msg Message) {
	for _, f := range c.followers {
		if f.replica != from {
			f.box.Put(msg)
		}
	}
}

func (m *memShared) Follow(conversationID, replica string, fn func(Message), _ func()) (func(), error) {
	f := &memFollower{replica: replica, box: inbox.New(fn)}
	m.mu.Lock()
	c := m.convLocked(conversationID)
	c.followers = append(c.followers, f)
	m.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			m.mu.Lock()
			if c := m.convs[conversationID]; c != nil {
				c.followers = slices.DeleteFunc(c.followers, func(x *memFollower) bool { return x == f })
				m.forgetLocked(conversationID, c)
			}
			m.mu.Unlock()
			f.box.Stop()
		})
	}, nil
}

// memFollower is one Follow: a replica's inbox for a conversation.
type memFollower struct {
	replica string
	box     *inbox.Inbox[Message]
}

// String names a position, for logs.
func (p Position) String() string { return p.Epoch + ":" + strconv.FormatUint(p.Offset, 10) }

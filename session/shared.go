package session

import (
	"context"
	"errors"
	"time"
)

// What the replicas of a cluster share about a conversation: who holds its
// one Direct Line socket (Leases), its replay log (Journal), and the news
// about it (Bus). A single process shares with nobody and touches none of
// it: it owns every conversation it has. A cluster uses Redis (package
// cluster), or memory in one process (NewMemoryShared, for tests); both
// pass the suite in session/sharedtest.
//
// Direct Line is the source of truth, not what is shared: a replica that
// finds a gap in what it was told fetches the rest from Direct Line, so
// losing the shared state loses or repeats nothing for a client with a
// cursor. docs/cluster.md has the reasoning.

// Fence is a lease's fencing token: every acquisition of a conversation's
// lease gets a different one, so that what an owner writes under an old
// lease is refused.
type Fence uint64

// Lease is a replica's hold on a conversation: while it holds it, it alone
// dials Direct Line for it and appends to its journal.
type Lease struct {
	Conversation string
	Holder       string // the replica, unique per process start
	Fence        Fence
}

// ErrNotOwner reports a lease somebody else holds, or one that was lost.
var ErrNotOwner = errors.New("session: not the conversation's owner")

// ErrGap reports a journal position that is no longer there (trimmed, or
// the journal started over): what came after it must be fetched from
// Direct Line.
var ErrGap = errors.New("session: journal gap")

// Leases hand out one owner per conversation at a time.
type Leases interface {
	// Acquire takes the conversation's lease for holder for ttl when
	// nobody holds it. When somebody does, the error is ErrNotOwner and
	// left is how long their lease has to run.
	Acquire(ctx context.Context, conversationID, holder string, ttl time.Duration) (l Lease, left time.Duration, err error)
	// Renew extends a lease still held by ttl; ErrNotOwner when it is
	// not held any more.
	Renew(ctx context.Context, l Lease, ttl time.Duration) error
	// Release gives a lease up, if still held, and says so on the Bus
	// (KindReleased) so that others take over at once.
	Release(ctx context.Context, l Lease) error
}

// Position is a place in a conversation's journal. Epoch changes when the
// journal starts over (its store lost it); Offset counts entries from 1.
type Position struct {
	Epoch  string
	Offset uint64
}

// Record is a journal entry with its position.
type Record struct {
	Pos   Position
	Entry Entry
}

// Journal is a conversation's shared replay log: what its owner read from
// Direct Line, in order, with the watermark each set moved it to.
type Journal interface {
	// Append stores a set's entries and the watermark it moved the
	// conversation to, if l still holds the conversation (ErrNotOwner
	// otherwise), and announces them on the Bus (KindAppended) in the
	// same step. It returns the position of the last entry (of the
	// journal when entries is empty).
	Append(ctx context.Context, l Lease, entries []Entry, watermark string) (Position, error)
	// Read returns up to n records after pos, oldest first. ErrGap when
	// pos is no longer in the journal.
	Read(ctx context.Context, conversationID string, after Position, n int) ([]Record, error)
	// Tail returns up to n of the newest records, oldest first, with the
	// conversation's watermark after them and its owner's last status.
	Tail(ctx context.Context, conversationID string, n int) (Snapshot, error)
}

// Snapshot is what a journal holds of a conversation now.
type Snapshot struct {
	Records   []Record
	Watermark string // "" for a journal that holds nothing
	// Status is the last the owner published (KindStatus, KindEnded);
	// zero when none was.
	Status Status
}

// Kind says what a Message is about.
type Kind uint8

// The kinds of Message.
const (
	// KindAppended: Records were appended to the journal, the last of
	// them moving the conversation to Watermark.
	KindAppended Kind = iota + 1
	// KindEphemeral: Entry (a typing activity) arrived; it is never
	// stored.
	KindEphemeral
	// KindStatus: the owner's Direct Line socket is in Status.
	KindStatus
	// KindReleased: the lease was given up; whoever wants it may take it.
	KindReleased
	// KindRefreshed: the token hashed as Token was refreshed through a
	// replica; streams reading with it may read until Expires.
	KindRefreshed
	// KindSender: a client posted to the conversation as Sender.
	KindSender
	// KindEnded: the conversation ended (the bot's endOfConversation, or
	// Direct Line refused it for good); Terminal is what subscribers
	// write last.
	KindEnded
)

// Message is news about a conversation, for every replica that follows it.
type Message struct {
	Kind      Kind
	Records   []Record  // KindAppended
	Pos       Position  // KindAppended: the journal's position after the append
	Watermark string    // KindAppended
	Entry     Entry     // KindEphemeral
	Status    Status    // KindStatus, KindEnded
	Token     [32]byte  // KindRefreshed: tokenKey of the refreshed token
	Expires   time.Time // KindRefreshed
	Sender    string    // KindSender
	Terminal  []byte    // KindEnded: an encoded event, or nil
}

// Bus carries Messages between the replicas that follow a conversation.
type Bus interface {
	// Publish sends m to every follower of the conversation but those
	// of replica from (a replica never hears its own news).
	Publish(ctx context.Context, conversationID, from string, m Message) error
	// PublishOwned is Publish for what an owner says about its socket
	// (status, typing, the end): refused (ErrNotOwner) when l no longer
	// holds the conversation. A status is also kept for Tail.
	PublishOwned(ctx context.Context, l Lease, m Message) error
	// Follow calls fn with every message published about the
	// conversation from now on by replicas other than replica, in
	// order, one at a time, until stop is called; stop waits for a call
	// in progress. gap is called when messages may have been missed (the
	// connection to the store broke and came back), so the follower can
	// fetch what it lacks.
	Follow(conversationID, replica string, fn func(Message), gap func()) (stop func(), err error)
}

// Shared groups what a Manager shares with the other replicas.
type Shared struct {
	Leases  Leases
	Journal Journal
	Bus     Bus
	// Healthy reports whether the store can be reached (nil: always).
	Healthy func() bool
}

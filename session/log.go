package session

import (
	"sync"

	"github.com/dlsse/dlsse/sse"
)

// Entry is one item of a conversation's replay log: an activity (durable,
// resumable by cursor) or something ephemeral (a typing activity) that is
// delivered live but never replayed by Direct Line.
type Entry struct {
	// Seq is the entry's position in this process's log, from 1.
	Seq uint64
	// Event is the encoded SSE event, shared by every subscriber.
	Event sse.Event
	// Durable entries have an id, a cursor and take part in resume.
	Durable bool
	// Hash is IDHash of the activity id (durable entries only).
	Hash uint64
	// Base is the watermark before the entry's ActivitySet.
	Base string
	// After is the watermark after the entry when it is the last durable
	// entry of a set that carried one; empty otherwise.
	After string
	// Local marks an activity this replica fetched from Direct Line by
	// itself (a repair, a first poll) and has not shared: an owner puts
	// such entries in the journal when its tenure starts.
	Local bool
}

// Cursor is where a subscriber stands once it has received e.
func (e *Entry) Cursor() Cursor { return Cursor{Base: e.Base, Hash: e.Hash, HasHash: true} }

// memLog is a conversation's replay log on this replica: an ordered,
// bounded window of entries that subscribers read at their own pace,
// positioned by sequence numbers of its own (Head is the one the next entry
// gets). A ring that grows up to a capacity and then drops its oldest
// entries. Across replicas the journal (shared.go) is what is shared;
// cursors, not sequence numbers, name places in a conversation.
type memLog struct {
	mu        sync.RWMutex
	ring      []Entry // circular; len(ring) is the current allocation
	first     uint64  // Seq of the oldest kept entry
	head      uint64  // Seq the next entry gets
	capacity  int
	start     string // watermark just before `first`, "" if unknown
	watermark string
	wmSeq     uint64            // the position right after the set that set watermark
	byHash    map[uint64]uint64 // durable id hash -> Seq
}

// newMemLog returns an empty log that starts at watermark start (which may
// be "" for the beginning of a conversation).
func newMemLog(capacity int, start string) *memLog {
	return &memLog{
		first:     1,
		head:      1,
		capacity:  max(capacity, 1),
		start:     start,
		watermark: start,
		wmSeq:     1,
		byHash:    make(map[uint64]uint64),
	}
}

func (l *memLog) slot(seq uint64) *Entry { return &l.ring[seq%uint64(len(l.ring))] }

// Append adds a set's entries and records the watermark the set moved the
// conversation to ("" keeps the previous one).
func (l *memLog) Append(entries []Entry, watermark string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.head == l.first {
		l.start = l.watermark // empty: the log starts where the conversation is
	}
	for i := range entries {
		if int(l.head-l.first) == l.capacity {
			l.evictOldest()
		}
		if int(l.head-l.first) == len(l.ring) {
			l.grow()
		}
		e := entries[i]
		e.Seq = l.head
		*l.slot(l.head) = e
		if e.Durable {
			l.byHash[e.Hash] = e.Seq
		}
		l.head++
	}
	if watermark != "" {
		l.watermark, l.wmSeq = watermark, l.head
		if l.head == l.first {
			l.start = watermark
		}
	}
}

func (l *memLog) grow() {
	// From 2: most conversations are short, and every session has a log.
	n := min(max(2*len(l.ring), 2), l.capacity)
	ring := make([]Entry, n)
	for seq := l.first; seq < l.head; seq++ {
		ring[seq%uint64(n)] = *l.slot(seq)
	}
	l.ring = ring
}

func (l *memLog) evictOldest() {
	e := l.slot(l.first)
	if e.Durable && l.byHash[e.Hash] == e.Seq {
		delete(l.byHash, e.Hash)
	}
	switch {
	case e.After != "":
		l.start = e.After
	case e.Durable:
		l.start = "" // mid-set: no watermark names this point
	}
	*e = Entry{}
	l.first++
}

// Read calls fn for each entry from seq on, in order, until fn returns
// false. It returns the position after the last entry fn accepted, and
// fellOff when seq has already been evicted.
func (l *memLog) Read(seq uint64, fn func(*Entry) bool) (uint64, bool) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if seq < l.first {
		return seq, true
	}
	for ; seq < l.head; seq++ {
		if !fn(l.slot(seq)) {
			break
		}
	}
	return seq, false
}

// Position is the head and the cursor that names it: where a subscriber
// that joins now stands.
func (l *memLog) Position() (uint64, Cursor) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.wmSeq < l.head {
		// Sets without a watermark came since: the newest durable
		// entry names the place, if there is one after the watermark.
		for seq := l.head; seq > max(l.first, l.wmSeq); seq-- {
			if e := l.slot(seq - 1); e.Durable {
				return l.head, e.Cursor()
			}
		}
	}
	if l.watermark == "" {
		return l.head, Cursor{Beginning: true}
	}
	return l.head, Cursor{Base: l.watermark}
}

// Head is the position after the newest entry.
func (l *memLog) Head() uint64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.head
}

// Watermark is the conversation's watermark after the newest set.
func (l *memLog) Watermark() string {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.watermark
}

// Contains reports whether an activity with this id hash is in the log.
func (l *memLog) Contains(hash uint64) bool {
	l.mu.RLock()
	defer l.mu.RUnlock()
	_, ok := l.byHash[hash]
	return ok
}

// Locate finds where a subscriber resuming from c starts reading.
func (l *memLog) Locate(c Cursor) (uint64, bool) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if c.Beginning {
		// A start of "" with nothing evicted is the beginning (an
		// eviction mid-set also leaves "", but then first > 1).
		if l.start == "" && l.first == 1 {
			return 1, true
		}
		return 0, false
	}
	if c.HasHash {
		seq, ok := l.byHash[c.Hash]
		if ok {
			return seq + 1, true
		}
		return 0, false
	}
	return l.afterWatermark(c.Base)
}

// Anchor finds the position just after the point a poll of Direct Line
// reached: the poll returned watermark wm and, if any, last as its last
// activity's id hash. ok is false when the log has not got there yet.
func (l *memLog) Anchor(wm string, last uint64, hasLast bool) (uint64, bool) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if hasLast {
		if seq, ok := l.byHash[last]; ok {
			return seq + 1, true
		}
	}
	return l.afterWatermark(wm)
}

// afterWatermark finds the position just after watermark wm. Callers hold
// the lock.
func (l *memLog) afterWatermark(wm string) (uint64, bool) {
	if wm == "" {
		return 0, false
	}
	if wm == l.watermark {
		// Not head: sets without a watermark may have come since.
		return l.wmSeq, true
	}
	for seq := l.head; seq > l.first; seq-- {
		e := l.slot(seq - 1)
		if e.After == wm {
			return seq, true
		}
		// The first entry of the run of sets that arrived at wm starts
		// right after it, unless earlier ones of that run were evicted.
		if e.Base == wm && seq-1 > l.first && l.slot(seq-2).Base != wm {
			return seq - 1, true
		}
	}
	if wm == l.start {
		return l.first, true
	}
	return 0, false
}

// Local returns the durable entries still marked Local, oldest first.
func (l *memLog) Local() []Entry {
	l.mu.RLock()
	defer l.mu.RUnlock()
	var out []Entry
	for seq := l.first; seq < l.head; seq++ {
		if e := l.slot(seq); e.Local && e.Durable {
			out = append(out, *e)
		}
	}
	return out
}

// Shared clears Local on every entry: they are in the journal now.
func (l *memLog) Shared() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for seq := l.first; seq < l.head; seq++ {
		l.slot(seq).Local = false
	}
}

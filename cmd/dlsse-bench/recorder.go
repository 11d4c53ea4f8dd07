package main

import (
	"bytes"
	"sync/atomic"
)

// recorder is what one client saw: which activities (by their position
// in the conversation, the fake's stamp seq), when, and how late. Its
// client goroutine is the only writer; other goroutines read the atomic
// counters while it runs, and everything else once it has ended.
type recorder struct {
	online      atomic.Bool  // the stream said "online" (SSE), or the socket is open (baseline)
	onlineIn    atomic.Int64 // SSE: from the client's start to the first "online", ns
	distinct    atomic.Int64 // stamped activities received, each counted once
	dups        atomic.Int64 // stamped activities received again
	lastAt      atomic.Int64 // arrival (Unix ns) of the newest first-time activity
	disconnects atomic.Int64 // streams that ended while the client wanted more
	reconnState atomic.Int64 // status events "reconnecting" or "unavailable"
	errorEvents atomic.Int64 // event: error (the stream refused for good)

	seen    []uint64 // bitset over seq
	samples []sample
}

// sample is one activity received for the first time.
type sample struct {
	Seq    int64
	SentAt int64 // the fake's clock when it queued it, Unix ns
	At     int64 // the client's clock when it parsed it, Unix ns
}

// latency is how long the activity took from the fake's queue to the
// client's parser.
func (s sample) latency() int64 { return s.At - s.SentAt }

// activity records one stamped activity that arrived at at. Activities
// without a stamp (not sent by the benchmark's load) are ignored.
func (r *recorder) activity(sentAt, seq, at int64) {
	w, bit := int(seq/64), uint64(1)<<(seq%64)
	if w >= len(r.seen) {
		r.seen = append(r.seen, make([]uint64, w+1-len(r.seen))...)
	}
	if r.seen[w]&bit != 0 {
		r.dups.Add(1)
		return
	}
	r.seen[w] |= bit
	r.samples = append(r.samples, sample{Seq: seq, SentAt: sentAt, At: at})
	r.lastAt.Store(at)
	r.distinct.Add(1)
}

// missing counts the positions below want this client never got.
func (r *recorder) missing(want int64) int64 {
	var got int64
	for seq := range want {
		if w := int(seq / 64); w < len(r.seen) && r.seen[w]&(1<<(seq%64)) != 0 {
			got++
		}
	}
	return want - got
}

// The stamp's keys, as the fake writes them (see PushStamped).
var (
	keyChannelData = []byte(`"channelData":{`)
	keySentAt      = []byte(`"sentAt":`)
	keySeq         = []byte(`"seq":`)
)

// record records every stamped activity in b (one activity, or a whole
// ActivitySet), all arrived at at. It reads the stamps without decoding
// the JSON: the client must not be what limits the benchmark. Each
// activity's stamp is read inside its own channelData object, which holds
// numbers only (the fake's load writes no other channelData), so the
// first '}' ends it.
func (r *recorder) record(b []byte, at int64) {
	for {
		i := bytes.Index(b, keyChannelData)
		if i < 0 {
			return
		}
		b = b[i+len(keyChannelData):]
		end := bytes.IndexByte(b, '}')
		if end < 0 {
			return
		}
		cd := b[:end]
		b = b[end:]
		sentAt, ok1 := numberAfter(cd, keySentAt)
		seq, ok2 := numberAfter(cd, keySeq)
		if ok1 && ok2 {
			r.activity(sentAt, seq, at)
		}
	}
}

// numberAfter parses the non-negative integer that follows key in b
// (by hand: strconv would allocate a string per call).
func numberAfter(b, key []byte) (int64, bool) {
	i := bytes.Index(b, key)
	if i < 0 {
		return 0, false
	}
	b = b[i+len(key):]
	var n int64
	j := 0
	for ; j < len(b) && j < 19 && b[j] >= '0' && b[j] <= '9'; j++ {
		n = n*10 + int64(b[j]-'0')
	}
	return n, j > 0
}

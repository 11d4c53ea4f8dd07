package upstream

import (
	"math/rand/v2"
	"testing"
	"time"
)

// TestKeepalivesBuckets: streams spread evenly over the buckets, leave in
// any order with the buckets' indexes kept right, and once the last one
// left the timer is stopped.
func TestKeepalivesBuckets(t *testing.T) {
	k := newKeepalives(time.Hour)
	streams := make([]*Stream, 40)
	for i := range streams {
		streams[i] = &Stream{closed: true} // a keepalive of a closed stream sends nothing
		k.join(streams[i])
	}
	for b, bucket := range k.buckets {
		if len(bucket) < 2 || len(bucket) > 3 {
			t.Fatalf("bucket %d has %d of 40 streams", b, len(bucket))
		}
	}
	for _, i := range rand.Perm(len(streams)) {
		k.leave(streams[i])
		k.leave(streams[i]) // idempotent
		for b, bucket := range k.buckets {
			for j, s := range bucket {
				if s.kaBucket != b || s.kaIdx != j {
					t.Fatalf("stream filed at %d/%d says %d/%d", b, j, s.kaBucket, s.kaIdx)
				}
			}
		}
	}
	if k.n != 0 || k.timer.Stop() {
		t.Fatalf("after every stream left: %d streams, timer running", k.n)
	}
}

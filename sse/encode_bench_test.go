package sse

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/dlsse/dlsse/internal/fixture"
)

// benchActivity is the shared test activity of about size bytes.
func benchActivity(size int) []byte { return fixture.Activity(size) }

// benchSizes are the activity sizes the encoder benchmarks use: a short
// chat message and one with a card-sized payload.
var benchSizes = []int{300, 4 << 10}

const benchCursor = "37~uQNjJoXHRBk"

// BenchmarkNewEvent is the cost of encoding one activity once, into its
// own shared slice (what the session does per activity).
func BenchmarkNewEvent(b *testing.B) {
	for _, size := range benchSizes {
		data := benchActivity(size)
		b.Run(fmt.Sprintf("bytes=%d", len(data)), func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				_ = NewEvent(benchCursor, "activity", data)
			}
		})
	}
}

// BenchmarkAppendEvent is the encoding alone, into a reused buffer: it
// must not allocate.
func BenchmarkAppendEvent(b *testing.B) {
	for _, size := range benchSizes {
		data := benchActivity(size)
		b.Run(fmt.Sprintf("bytes=%d", len(data)), func(b *testing.B) {
			dst := make([]byte, 0, 2*len(data))
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				dst = AppendEvent(dst[:0], benchCursor, "activity", data)
			}
		})
	}
}

func TestBenchActivitySizes(t *testing.T) {
	for _, size := range benchSizes {
		data := benchActivity(size)
		if len(data) != size || !json.Valid(data) {
			t.Errorf("benchActivity(%d): %d bytes, valid %v", size, len(data), json.Valid(data))
		}
	}
}

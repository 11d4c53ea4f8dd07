package main

import (
	"math"
	"slices"
	"time"
)

// latencyStats summarises delivery latencies, in milliseconds.
type latencyStats struct {
	N    int     `json:"n"`
	Mean float64 `json:"mean_ms"`
	P50  float64 `json:"p50_ms"`
	P99  float64 `json:"p99_ms"`
	P999 float64 `json:"p999_ms"`
	Max  float64 `json:"max_ms"`
}

// latencyOf gathers every client's samples. Call it once the clients have
// ended: it reads what only they write.
func latencyOf(recs []*recorder) latencyStats {
	var all []int64
	for _, r := range recs {
		for _, s := range r.samples {
			all = append(all, s.latency())
		}
	}
	return summarise(all)
}

// summarise computes nearest-rank percentiles of nanosecond values.
func summarise(ns []int64) latencyStats {
	if len(ns) == 0 {
		return latencyStats{}
	}
	slices.Sort(ns)
	var sum float64
	for _, v := range ns {
		sum += float64(v)
	}
	ms := func(v int64) float64 { return float64(v) / float64(time.Millisecond) }
	return latencyStats{
		N:    len(ns),
		Mean: sum / float64(len(ns)) / float64(time.Millisecond),
		P50:  ms(rank(ns, 0.50)),
		P99:  ms(rank(ns, 0.99)),
		P999: ms(rank(ns, 0.999)),
		Max:  ms(ns[len(ns)-1]),
	}
}

// rank is the nearest-rank percentile p of sorted values.
func rank(sorted []int64, p float64) int64 {
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// exactlyOnce counts, over every client, the stamped activities below
// want[i] that client i never got, and those it got more than once. Call
// it once the clients have ended.
func exactlyOnce(recs []*recorder, want func(i int) int64) (lost, dups int64) {
	for i, r := range recs {
		lost += r.missing(want(i))
		dups += r.dups.Load()
	}
	return lost, dups
}

// delivery is what a trickle scenario counts of its clients' events.
type delivery struct {
	Events      int64 `json:"events"`
	Expected    int64 `json:"expected"`
	Lost        int64 `json:"lost"`
	Duplicated  int64 `json:"duplicated"`
	Disconnects int64 `json:"client_disconnects"`
}

package main

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// upstreamCalls summarises dlsse's own histogram of its Direct Line calls
// of one operation (dlsse_upstream_request_duration_seconds), between two
// scrapes: how many, and how long they took as the buckets tell it (an
// upper bound: the bucket a quantile falls in).
type upstreamCalls struct {
	Calls int64   `json:"calls"`
	Mean  float64 `json:"mean_s"`
	P50   float64 `json:"p50_le_s"`
	P99   float64 `json:"p99_le_s"`
}

func (u upstreamCalls) String() string {
	if u.Calls == 0 {
		return "none"
	}
	return fmt.Sprintf("%s calls, mean %.3f s, p50 ≤ %s, p99 ≤ %s", count(u.Calls), u.Mean, bound(u.P50), bound(u.P99))
}

func bound(v float64) string {
	if math.IsInf(v, 1) {
		return "∞"
	}
	return strconv.FormatFloat(v, 'g', -1, 64) + " s"
}

// upstreamOp reads operation op (every status) from two scrapes of
// dlsse's metrics.
func upstreamOp(before, after map[string]float64, op string) upstreamCalls {
	return histogramOp(before, after, "dlsse_upstream_request_duration_seconds", op)
}

// histogramOp reads operation op of histogram name (every other label
// value summed) from two scrapes of dlsse's metrics.
func histogramOp(before, after map[string]float64, name, op string) upstreamCalls {
	buckets := map[float64]float64{}
	var u upstreamCalls
	var sum float64
	for key, v := range after {
		if !strings.HasPrefix(key, name) || !strings.Contains(key, `operation="`+op+`"`) {
			continue
		}
		d := v - before[key]
		switch {
		case strings.HasPrefix(key, name+"_bucket"):
			i := strings.Index(key, `le="`)
			if i < 0 {
				continue
			}
			le := key[i+4 : i+4+strings.IndexByte(key[i+4:], '"')]
			bound, err := strconv.ParseFloat(le, 64) // "+Inf" parses
			if err == nil {
				buckets[bound] += d
			}
		case strings.HasPrefix(key, name+"_sum"):
			sum += d
		case strings.HasPrefix(key, name+"_count"):
			u.Calls += int64(d)
		}
	}
	if u.Calls == 0 {
		return u
	}
	u.Mean = sum / float64(u.Calls)
	bounds := make([]float64, 0, len(buckets))
	for b := range buckets {
		bounds = append(bounds, b)
	}
	slices.Sort(bounds)
	q := func(p float64) float64 {
		want := p * float64(u.Calls)
		for _, b := range bounds {
			if buckets[b] >= want { // cumulative buckets
				return b
			}
		}
		return math.Inf(1)
	}
	u.P50, u.P99 = q(0.5), q(0.99)
	return u
}

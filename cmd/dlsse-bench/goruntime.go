package main

import "context"

// goRuntime is what dlsse's Go runtime says about itself on /metrics: the
// inside view that explains the /proc numbers (where the RSS goes, what
// the CPU is spent on).
type goRuntime struct {
	Goroutines  float64 `json:"goroutines"`
	HeapInuse   float64 `json:"heap_inuse_bytes"`
	HeapObjects float64 `json:"heap_objects"`
	StackInuse  float64 `json:"stack_inuse_bytes"`
	Sys         float64 `json:"sys_bytes"` // everything the runtime got from the OS
	GCCycles    float64 `json:"gc_cycles"`
	AllocBytes  float64 `json:"alloc_bytes_total"`
	Mallocs     float64 `json:"mallocs_total"`
}

func runtimeOf(m map[string]float64) goRuntime {
	return goRuntime{
		Goroutines:  m["go_goroutines"],
		HeapInuse:   m["go_memstats_heap_inuse_bytes"],
		HeapObjects: m["go_memstats_heap_objects"],
		StackInuse:  m["go_memstats_stack_inuse_bytes"],
		Sys:         m["go_memstats_sys_bytes"],
		GCCycles:    m["go_gc_duration_seconds_count"],
		AllocBytes:  m["go_memstats_alloc_bytes_total"],
		Mallocs:     m["go_memstats_mallocs_total"],
	}
}

// sub is a − b, field by field: growth of gauges, counts of counters.
func (a goRuntime) sub(b goRuntime) goRuntime {
	return goRuntime{
		Goroutines:  a.Goroutines - b.Goroutines,
		HeapInuse:   a.HeapInuse - b.HeapInuse,
		HeapObjects: a.HeapObjects - b.HeapObjects,
		StackInuse:  a.StackInuse - b.StackInuse,
		Sys:         a.Sys - b.Sys,
		GCCycles:    a.GCCycles - b.GCCycles,
		AllocBytes:  a.AllocBytes - b.AllocBytes,
		Mallocs:     a.Mallocs - b.Mallocs,
	}
}

// div is every field divided by n (per session, per event).
func (a goRuntime) div(n float64) goRuntime {
	if n == 0 {
		return goRuntime{}
	}
	return goRuntime{
		Goroutines:  a.Goroutines / n,
		HeapInuse:   a.HeapInuse / n,
		HeapObjects: a.HeapObjects / n,
		StackInuse:  a.StackInuse / n,
		Sys:         a.Sys / n,
		GCCycles:    a.GCCycles / n,
		AllocBytes:  a.AllocBytes / n,
		Mallocs:     a.Mallocs / n,
	}
}

// runtime scrapes dlsse's metrics into a goRuntime.
func (e *env) runtime(ctx context.Context) (goRuntime, map[string]float64, error) {
	m, err := e.ctl.metrics(ctx, e.dlsse.URL+"/metrics")
	if err != nil {
		return goRuntime{}, nil, err
	}
	return runtimeOf(m), m, nil
}

package main

import (
	"bytes"
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"
)

// machine is where a run happened: numbers only compare on the same one.
type machine struct {
	CPU       string `json:"cpu"`
	Cores     int    `json:"cores"`
	MemoryMiB int64  `json:"memory_mib"`
	Kernel    string `json:"kernel"`
	Go        string `json:"go"`
	FDLimit   uint64 `json:"fd_limit"`
	Date      string `json:"date"`
	LoadAvg   string `json:"load_avg_at_start"` // /proc/loadavg's 1, 5 and 15 minutes: was the machine otherwise idle

	WallSeconds float64 `json:"wall_s"`
}

func describeMachine(fdLimit uint64) machine {
	m := machine{Cores: runtime.NumCPU(), Go: runtime.Version(), FDLimit: fdLimit, Date: time.Now().UTC().Format(time.RFC3339)}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range bytes.SplitSeq(b, []byte("\n")) {
			if k, v, ok := bytes.Cut(line, []byte(":")); ok && string(bytes.TrimSpace(k)) == "model name" {
				m.CPU = string(bytes.TrimSpace(v))
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range bytes.SplitSeq(b, []byte("\n")) {
			if k, v, ok := bytes.Cut(line, []byte(":")); ok && string(k) == "MemTotal" {
				m.MemoryMiB = parseKB(v) >> 20
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) >= 3 {
			m.LoadAvg = strings.Join(f[:3], " ")
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	return m
}

func (m machine) String() string {
	return fmt.Sprintf("%s, %d cores, %d MiB, Linux %s, %s, RLIMIT_NOFILE %d, %s (load average %s), whole run %.0f s",
		m.CPU, m.Cores, m.MemoryMiB, m.Kernel, m.Go, m.FDLimit, m.Date, m.LoadAvg, m.WallSeconds)
}

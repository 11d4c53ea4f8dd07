package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat.
// It is 100 on every Linux architecture Go supports (sysconf(_SC_CLK_TCK)
// would need cgo to ask).
const clockTicks = 100

// procSample is a process as /proc sees it from outside: what the kernel
// charges it, whatever its runtime believes.
type procSample struct {
	RSS     int64         // resident set, bytes (VmRSS)
	HWM     int64         // peak resident set, bytes (VmHWM)
	CPU     time.Duration // user + system time so far
	Threads int
}

// readProc samples process pid ("self" for the bench itself).
func readProc(pid string) (procSample, error) {
	var s procSample
	status, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return s, err
	}
	for line := range bytes.SplitSeq(status, []byte("\n")) {
		key, val, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		switch string(key) {
		case "VmRSS":
			s.RSS = parseKB(val)
		case "VmHWM":
			s.HWM = parseKB(val)
		case "Threads":
			s.Threads, _ = strconv.Atoi(string(bytes.TrimSpace(val)))
		}
	}
	stat, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return s, err
	}
	// The command name (field 2) is in parentheses and may hold spaces:
	// count fields from the last ')'.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return s, fmt.Errorf("/proc/%s/stat: unexpected format", pid)
	}
	f := bytes.Fields(stat[i+1:]) // f[0] is field 3 (state)
	if len(f) < 13 {
		return s, fmt.Errorf("/proc/%s/stat: too few fields", pid)
	}
	utime, _ := strconv.ParseInt(string(f[11]), 10, 64) // field 14
	stime, _ := strconv.ParseInt(string(f[12]), 10, 64) // field 15
	s.CPU = time.Duration(utime+stime) * time.Second / clockTicks
	return s, nil
}

// openFiles counts the file descriptors process pid has open.
func openFiles(pid string) (int, error) {
	d, err := os.Open("/proc/" + pid + "/fd")
	if err != nil {
		return 0, err
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	return len(names), err
}

// parseKB reads a /proc/PID/status size ("  1234 kB") in bytes.
func parseKB(v []byte) int64 {
	n, _ := strconv.ParseInt(string(bytes.TrimSuffix(bytes.TrimSpace(v), []byte(" kB"))), 10, 64)
	return n << 10
}

// cpuMeter measures the CPU three processes spend over one phase.
type cpuMeter struct {
	pids  [3]string // dlsse ("" when not running), fake, self
	start [3]time.Duration
	at    time.Time
}

func newCPUMeter(dlssePID, fakePID string) *cpuMeter {
	m := &cpuMeter{pids: [3]string{dlssePID, fakePID, "self"}, at: time.Now()}
	for i, p := range m.pids {
		if p != "" {
			s, _ := readProc(p)
			m.start[i] = s.CPU
		}
	}
	return m
}

// cpuUse is CPU seconds spent by each process over a phase.
type cpuUse struct {
	Dlsse float64 `json:"dlsse_s"`
	Fake  float64 `json:"fake_s"`
	Bench float64 `json:"bench_s"`
	Wall  float64 `json:"wall_s"`
}

// stop returns what each process spent since the meter started.
func (m *cpuMeter) stop() cpuUse {
	var d [3]float64
	for i, p := range m.pids {
		if p != "" {
			s, _ := readProc(p)
			d[i] = (s.CPU - m.start[i]).Seconds()
		}
	}
	return cpuUse{Dlsse: d[0], Fake: d[1], Bench: d[2], Wall: time.Since(m.at).Seconds()}
}

// machineBusy is the CPU time every core of the machine spent not idle
// (user, nice, system, irq, softirq, steal), from /proc/stat.
func machineBusy() (time.Duration, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := bytes.Fields(line)
	if len(f) < 9 || string(f[0]) != "cpu" {
		return 0, fmt.Errorf("/proc/stat: unexpected format")
	}
	var ticks int64
	for _, k := range []int{1, 2, 3, 6, 7, 8} { // user nice system (idle iowait) irq softirq steal
		n, _ := strconv.ParseInt(string(f[k]), 10, 64)
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}

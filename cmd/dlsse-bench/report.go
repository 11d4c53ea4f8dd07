package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
)

// table is one scenario's summary: metric, value, and the goal it is held
// against, if any. It prints as a Markdown table, so a run's output goes
// into docs/benchmarks.md as it is.
type table struct {
	title string
	rows  [][3]string
}

func (t *table) add(metric, value string) { t.rows = append(t.rows, [3]string{metric, value, ""}) }

// goal adds a row held against a goal, with the verdict.
func (t *table) goal(metric, value, goal string, met bool) {
	verdict := "**missed**"
	if met {
		verdict = "met"
	}
	t.rows = append(t.rows, [3]string{metric, value, goal + ": " + verdict})
}

func (t *table) write(w io.Writer) {
	fmt.Fprintf(w, "\n#### %s\n\n", t.title)
	fmt.Fprintln(w, "| metric | value | goal |")
	fmt.Fprintln(w, "|---|---:|---|")
	for _, r := range t.rows {
		fmt.Fprintf(w, "| %s | %s | %s |\n", r[0], r[1], r[2])
	}
}

// Formatting helpers: the numbers a reader compares, in the units they
// are compared in.

func count(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func mib(b int64) string   { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
func kib(b float64) string { return fmt.Sprintf("%.1f KiB", b/1024) }
func ms(v float64) string  { return fmt.Sprintf("%.2f ms", v) }
func secs(v float64) string {
	return fmt.Sprintf("%.2f s", v)
}

// cpuRowFake is cpuRow for the baseline, where no dlsse runs.
func cpuRowFake(c cpuUse) string {
	return fmt.Sprintf("fake %.2f s, bench %.2f s over %.1f s", c.Fake, c.Bench, c.Wall)
}

func cpuRow(c cpuUse) string {
	return fmt.Sprintf("dlsse %.2f s, fake %.2f s, bench %.2f s over %.1f s", c.Dlsse, c.Fake, c.Bench, c.Wall)
}

func latencyRow(l latencyStats) string {
	return fmt.Sprintf("p50 %s, p99 %s, p99.9 %s, max %s (n=%s)", ms(l.P50), ms(l.P99), ms(l.P999), ms(l.Max), count(int64(l.N)))
}

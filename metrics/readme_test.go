package metrics_test

import (
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/dlsse/dlsse/metrics"
)

// readmeMetric is one metric as README's metrics table names it.
type readmeMetric struct {
	row    int      // metrics in one row share their description
	labels []string // from `name{a,b}`, sorted
	values []string // every `word` in the row's description
}

var (
	readmeName  = regexp.MustCompile("`(dlsse_[a-z_]+)(?:\\{([a-z_,]+)\\})?`")
	readmeValue = regexp.MustCompile("`([^`]+)`")
)

// readmeMetricsTable reads the table under README's "### Metrics".
func readmeMetricsTable(t *testing.T) map[string]readmeMetric {
	t.Helper()
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "\n### Metrics\n")
	if !ok {
		t.Fatal(`README.md has no "### Metrics" section`)
	}
	section, _, _ = strings.Cut(section, "\n#")
	table := make(map[string]readmeMetric)
	row := 0
	for line := range strings.Lines(section) {
		cells := strings.Split(strings.TrimSpace(line), "|")
		if len(cells) != 4 || !strings.Contains(cells[1], "`dlsse_") {
			continue
		}
		row++
		var values []string
		for _, m := range readmeValue.FindAllStringSubmatch(cells[2], -1) {
			values = append(values, m[1])
		}
		for _, m := range readmeName.FindAllStringSubmatch(cells[1], -1) {
			var labels []string
			if m[2] != "" {
				labels = strings.Split(m[2], ",")
				sort.Strings(labels)
			}
			table[m[1]] = readmeMetric{row: row, labels: labels, values: values}
		}
	}
	if len(table) == 0 {
		t.Fatal("README's metrics table names no dlsse_ metric")
	}
	return table
}

// TestReadmeMetricsTableMatchesRegistered: every dlsse_ metric package
// metrics registers is in README's metrics table with its label names,
// and every label value it declares up front (the reasons, states and
// results a dashboard sees at zero) is listed in its row; and the table
// names nothing else.
func TestReadmeMetricsTableMatchesRegistered(t *testing.T) {
	readme := readmeMetricsTable(t)

	declared := metrics.New()
	g := gather(t, declared) // the label values declared up front, alone
	// Touch the metrics whose series appear only with an event, so
	// that their families and label names show.
	touched := metrics.New()
	touched.SetBuildInfo("test")
	touched.UpstreamHooks().Request("start", 200, 0)
	all := gather(t, touched)

	for name, fam := range all {
		if !strings.HasPrefix(name, "dlsse_") {
			continue
		}
		row, ok := readme[name]
		if !ok {
			t.Errorf("%s is registered by package metrics but missing from README's metrics table", name)
			continue
		}
		var labels []string
		for _, l := range fam.GetMetric()[0].GetLabel() {
			labels = append(labels, l.GetName())
		}
		sort.Strings(labels)
		if !slices.Equal(labels, row.labels) {
			t.Errorf("%s has labels {%s}; README's metrics table says {%s}", name, strings.Join(labels, ","), strings.Join(row.labels, ","))
		}
		for _, m := range g[name].GetMetric() {
			for _, l := range m.GetLabel() {
				if !slices.Contains(row.values, l.GetValue()) {
					t.Errorf("%s{%s=%q} is declared by package metrics but README's metrics table does not list `%s` in its row",
						name, l.GetName(), l.GetValue(), l.GetValue())
				}
			}
		}
	}
	// A row whose metrics declare label values lists those values only.
	declaredInRow := make(map[int]map[string]bool)
	for name, r := range readme {
		if all[name] == nil {
			t.Errorf("README's metrics table lists %s, which package metrics does not register", name)
			continue
		}
		for _, m := range g[name].GetMetric() {
			for _, l := range m.GetLabel() {
				if declaredInRow[r.row] == nil {
					declaredInRow[r.row] = make(map[string]bool)
				}
				declaredInRow[r.row][l.GetValue()] = true
			}
		}
	}
	for name, r := range readme {
		declared := declaredInRow[r.row]
		if declared == nil {
			continue
		}
		for _, v := range r.values {
			if !declared[v] {
				t.Errorf("README's metrics table lists `%s` in the row of %s, which package metrics does not declare as a label value", v, name)
			}
		}
	}
}

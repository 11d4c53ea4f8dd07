package main

import (
	"reflect"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// readmeConfigTable reads README.md's configuration table: for each row,
// the keys of its first column and the defaults of its second (backquoted
// values, in the same order; "empty" is the zero value).
func readmeConfigTable(t *testing.T) (keys []string, defaults map[string]string) {
	t.Helper()
	readme := readRepoFile(t, "README.md")
	_, section, ok := strings.Cut(readme, "\n## Configuration\n")
	if !ok {
		t.Fatal("README.md has no \"## Configuration\" section")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	code := regexp.MustCompile("`([^`]*)`")
	defaults = map[string]string{}
	for line := range strings.Lines(section) {
		cells := strings.Split(line, "|")
		if len(cells) < 4 || !strings.HasPrefix(strings.TrimSpace(cells[1]), "`") {
			continue // not a row of the table, or its header
		}
		var rowKeys []string
		for _, m := range code.FindAllStringSubmatch(cells[1], -1) {
			rowKeys = append(rowKeys, m[1])
		}
		var values []string
		for _, m := range code.FindAllStringSubmatch(cells[2], -1) {
			values = append(values, m[1])
		}
		if strings.TrimSpace(cells[2]) == "empty" {
			values = []string{""}
		}
		for i, k := range rowKeys {
			keys = append(keys, k)
			if len(values) == len(rowKeys) {
				defaults[k] = values[i]
			} else if len(values) == 1 {
				defaults[k] = values[0]
			}
		}
	}
	if len(keys) == 0 {
		t.Fatal("README.md's Configuration section has no table of keys")
	}
	return keys, defaults
}

// TestDocumentedKeys: every configuration key (a koanf tag of Config) is in
// README.md's configuration table and in configs/dlsse.yaml, and neither
// names a key dlsse does not have. The messages say which file lacks which
// key, for whoever adds the next one.
func TestDocumentedKeys(t *testing.T) {
	readmeKeys, _ := readmeConfigTable(t)
	var shipped map[string]yaml.Node
	if err := yaml.Unmarshal([]byte(readRepoFile(t, "configs/dlsse.yaml")), &shipped); err != nil {
		t.Fatalf("configs/dlsse.yaml: %v", err)
	}
	inReadme := map[string]int{}
	for _, k := range readmeKeys {
		inReadme[k]++
	}
	for _, k := range configKeys {
		if inReadme[k.name] == 0 {
			t.Errorf("README.md's configuration table (## Configuration) has no row for key %q", k.name)
		}
		if inReadme[k.name] > 1 {
			t.Errorf("README.md's configuration table lists key %q %d times", k.name, inReadme[k.name])
		}
		if _, ok := shipped[k.name]; !ok {
			t.Errorf("configs/dlsse.yaml lacks key %q (it documents every key with its default)", k.name)
		}
	}
	for k := range inReadme {
		if _, ok := keyByName[k]; !ok {
			t.Errorf("README.md's configuration table names %q, which is not a key of Config (cmd/dlsse/config.go)", k)
		}
	}
	for k := range shipped {
		if _, ok := keyByName[k]; !ok {
			t.Errorf("configs/dlsse.yaml names %q, which is not a key of Config (cmd/dlsse/config.go)", k)
		}
	}
}

// TestReadmeDefaults: the defaults README.md's configuration table states
// are the code's.
func TestReadmeDefaults(t *testing.T) {
	_, stated := readmeConfigTable(t)
	d := toMap(defaults())
	for name, text := range stated {
		k, ok := keyByName[name]
		if !ok {
			continue // TestDocumentedKeys reports it
		}
		if _, isKey := keyByName[text]; isKey && text != "" {
			continue // "the same as that key", e.g. token_origins
		}
		v, err := k.decode(text)
		if err != nil {
			t.Errorf("README.md: %s's default `%s`: %v", name, text, err)
			continue
		}
		if !reflect.DeepEqual(normalizedValue(v), normalizedValue(d[name])) {
			t.Errorf("README.md says %s defaults to `%s`, the code to %s", name, text, k.format(d[name]))
		}
	}
}

// normalizedValue makes an empty list nil.
func normalizedValue(v any) any {
	if l, ok := v.([]string); ok && len(l) == 0 {
		return []string(nil)
	}
	return v
}

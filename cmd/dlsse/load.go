package main

import (
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/confmap"
	"github.com/knadh/koanf/providers/env/v2"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/providers/structs"
	"github.com/knadh/koanf/v2"
)

// loaded is a configuration and where its values came from.
type loaded struct {
	cfg Config
	// from names, for every key a source set, that source the way an
	// error message does: "configs/dlsse.yaml: listen", "DLSSE_LISTEN",
	// "flag -listen". Keys left at their defaults are absent.
	from map[string]string
	// warnings are problems that do not stop dlsse: DLSSE_* variables
	// that name no key.
	warnings []string
}

// loadConfig reads the defaults, then the YAML file (if any), then DLSSE_*
// environment variables, then the flags that were set; later sources win.
// Every source's values are checked against the keys before they are
// merged, so an error names the key and the source that held it. An unknown
// key in the file is an error; an unknown DLSSE_* variable a warning (the
// environment is shared with other programs, and Kubernetes adds variables
// of its own).
func loadConfig(flags *flag.FlagSet, path string, environ map[string]string) (loaded, error) {
	l := loaded{from: map[string]string{}}
	k := koanf.New(".")
	if err := k.Load(structs.Provider(defaults(), "koanf"), nil); err != nil {
		return loaded{}, fmt.Errorf("config: defaults: %w", err)
	}
	// merge checks one source's values, decodes them and lays them over k.
	merge := func(values map[string]any, where func(key string) string) error {
		typed := make(map[string]any, len(values))
		for _, name := range slices.Sorted(maps.Keys(values)) {
			v, err := keyByName[name].decode(values[name])
			if err != nil {
				return fmt.Errorf("config: %s: %w", where(name), err)
			}
			typed[name] = v
			l.from[name] = where(name)
		}
		return k.Load(confmap.Provider(typed, ""), nil)
	}

	if path != "" {
		fk := koanf.New(".")
		if err := fk.Load(file.Provider(path), yaml.Parser()); err != nil {
			var pe *fs.PathError
			if errors.As(err, &pe) {
				err = pe.Err // the path is said once, below
			}
			return loaded{}, fmt.Errorf("config: %s: %w", path, err)
		}
		values := fk.Raw()
		for _, name := range slices.Sorted(maps.Keys(values)) {
			if _, known := keyByName[name]; !known {
				return loaded{}, fmt.Errorf("config: %s: unknown key %q (%s)", path, name, unknownKeyHint(name, func(k configKey) string { return strconv.Quote(k.name) }))
			}
		}
		if err := merge(values, func(key string) string { return path + ": " + key }); err != nil {
			return loaded{}, err
		}
	}

	ek := koanf.New(".")
	err := ek.Load(env.Provider("", env.Opt{
		Prefix:      envPrefix,
		EnvironFunc: func() []string { return environList(environ) },
	}), nil)
	if err != nil {
		return loaded{}, fmt.Errorf("config: environment: %w", err)
	}
	fromEnv := map[string]any{}
	envNames := map[string]string{}
	for name, v := range ek.Raw() {
		if s, _ := v.(string); s == "" {
			continue // unset, for all that matters
		}
		key, known := keyOfEnv(name)
		switch {
		case known:
			fromEnv[key] = v
			envNames[key] = name
		case !kubernetesServiceLink.MatchString(name):
			l.warnings = append(l.warnings, fmt.Sprintf("%s is not a dlsse setting and is ignored (%s)", name, unknownKeyHint(name[len(envPrefix):], configKey.envName)))
		}
	}
	slices.Sort(l.warnings)
	if err := merge(fromEnv, func(key string) string { return envNames[key] }); err != nil {
		return loaded{}, err
	}

	fromFlags := map[string]any{}
	flags.Visit(func(f *flag.Flag) {
		if cf, ok := f.Value.(*configFlag); ok {
			fromFlags[cf.key.name] = cf.text
		}
	})
	if err := merge(fromFlags, func(key string) string { return "flag -" + keyByName[key].flagName() }); err != nil {
		return loaded{}, err
	}

	if err := k.UnmarshalWithConf("", &l.cfg, koanf.UnmarshalConf{Tag: "koanf"}); err != nil {
		return loaded{}, fmt.Errorf("config: %w", err) // cannot happen: every value has its field's type
	}
	if key, problem := l.cfg.check(); key != "" {
		where := l.from[key]
		if where == "" {
			where = key
		}
		return loaded{}, fmt.Errorf("config: %s: %s", where, problem)
	}
	return l, nil
}

// envPrefix starts every environment variable dlsse reads.
const envPrefix = "DLSSE_"

// keyOfEnv is the key an environment variable sets, if any: DLSSE_ and the
// key in capitals.
func keyOfEnv(name string) (string, bool) {
	key := strings.ToLower(strings.TrimPrefix(name, envPrefix))
	k, known := keyByName[key]
	return key, known && k.envName() == name
}

// kubernetesServiceLink matches the variables Kubernetes gives every pod
// for a Service named dlsse (DLSSE_SERVICE_HOST, DLSSE_PORT_8080_TCP and so
// on): not settings, and not worth a warning.
var kubernetesServiceLink = regexp.MustCompile(`^DLSSE_(SERVICE_HOST|SERVICE_PORT(_[A-Z0-9_]+)?|PORT(_[0-9]+_(TCP|UDP|SCTP)(_(ADDR|PORT|PROTO))?)?)$`)

// environList is an environment map as os.Environ's list.
func environList(environ map[string]string) []string {
	out := make([]string, 0, len(environ))
	for name, v := range environ {
		out = append(out, name+"="+v)
	}
	return out
}

// unknownKeyHint follows an unknown key in an error or a warning: the
// nearest known key, written by show, or where the keys are listed.
func unknownKeyHint(name string, show func(configKey) string) string {
	names := make([]string, len(configKeys))
	for i, k := range configKeys {
		names[i] = k.name
	}
	if best, ok := closest(strings.ToLower(strings.ReplaceAll(name, "-", "_")), names); ok {
		return "did you mean " + show(keyByName[best]) + "?"
	}
	return "dlsse -h lists the keys"
}

// toMap turns a Config into koanf's key map.
func toMap(c Config) map[string]any {
	k := koanf.New(".")
	_ = k.Load(structs.Provider(c, "koanf"), nil)
	return k.All()
}

package main

import (
	"runtime/debug"
	"strings"
)

// buildVersion, when set at link time (-ldflags "-X
// main.buildVersion=v1.2.3"), is the version: for builds without the VCS
// information Go records by itself, such as the container's, whose build
// context leaves .git out.
var buildVersion string

// version is dlsse's version as the build recorded it: the module version
// (Go derives one from the VCS tag or commit, e.g.
// v0.0.0-20260101120000-0123456789ab+dirty) or buildVersion, then the
// commit when the version does not already name it, and the Go version.
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		bi = &debug.BuildInfo{}
	}
	return formatVersion(buildVersion, bi)
}

func formatVersion(override string, bi *debug.BuildInfo) string {
	v := override
	if v == "" {
		v = bi.Main.Version
	}
	if v == "" || v == "(devel)" {
		v = "devel"
	}
	var rev, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				modified = "+dirty"
			}
		}
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if rev != "" && !strings.Contains(v, rev) {
		v += " (" + rev + modified + ")"
	}
	if bi.GoVersion != "" {
		v += " " + bi.GoVersion
	}
	return v
}

package main

// The container image and the Kubernetes sample cannot be built or applied
// here (no container engine, no cluster), so these tests check what can go
// wrong with them from the repository: the Dockerfile's toolchain against
// go.mod, its ENTRYPOINT and HEALTHCHECK run as dlsse commands, the build
// context keeps what the build needs, and the manifest's probes, ports and
// variables are dlsse's.

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// repoRoot is the repository, seen from this package's directory.
const repoRoot = "../.."

func readRepoFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	cmd  string // upper case: FROM, RUN, ...
	args string
}

func parseDockerfile(text string) []instruction {
	var out []instruction
	var cur strings.Builder
	for line := range strings.Lines(text) {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "#") || (line == "" && cur.Len() == 0) {
			continue
		}
		if more, ok := strings.CutSuffix(line, `\`); ok {
			cur.WriteString(more + " ")
			continue
		}
		cur.WriteString(line)
		cmd, args, _ := strings.Cut(strings.TrimSpace(cur.String()), " ")
		out = append(out, instruction{strings.ToUpper(cmd), strings.TrimSpace(args)})
		cur.Reset()
	}
	return out
}

// image is what the tests read from the Dockerfile.
type image struct {
	instructions []instruction
	entrypoint   []string // exec form
	healthcheck  []string // exec form, after CMD
	hcTimeout    time.Duration
	copies       map[string]string // destination in the image → source in the repository or build stage
}

func readImage(t *testing.T) image {
	t.Helper()
	img := image{instructions: parseDockerfile(readRepoFile(t, "Dockerfile")), copies: map[string]string{}}
	execForm := func(what, args string) []string {
		var argv []string
		if err := json.Unmarshal([]byte(args), &argv); err != nil || len(argv) == 0 {
			// Shell form needs /bin/sh, which distroless lacks.
			t.Fatalf("Dockerfile: %s %s is not in exec form ([\"/dlsse\", ...]): distroless has no shell", what, args)
		}
		return argv
	}
	for _, in := range img.instructions {
		switch in.cmd {
		case "ENTRYPOINT":
			img.entrypoint = execForm("ENTRYPOINT", in.args)
		case "HEALTHCHECK":
			rest := in.args
			for strings.HasPrefix(rest, "--") {
				opt, after, _ := strings.Cut(rest, " ")
				if v, ok := strings.CutPrefix(opt, "--timeout="); ok {
					d, err := time.ParseDuration(v)
					if err != nil {
						t.Fatalf("Dockerfile: HEALTHCHECK %s: %v", opt, err)
					}
					img.hcTimeout = d
				}
				rest = strings.TrimSpace(after)
			}
			cmdArgs, ok := strings.CutPrefix(rest, "CMD ")
			if !ok {
				t.Fatalf("Dockerfile: HEALTHCHECK %s: want CMD [...]", in.args)
			}
			img.healthcheck = execForm("HEALTHCHECK CMD", strings.TrimSpace(cmdArgs))
		case "COPY":
			f := strings.Fields(in.args)
			var src []string
			for _, a := range f[:len(f)-1] {
				if !strings.HasPrefix(a, "--") || strings.HasPrefix(a, "--from=") {
					src = append(src, a)
				}
			}
			img.copies[f[len(f)-1]] = strings.Join(src, " ")
		}
	}
	if img.entrypoint == nil || img.healthcheck == nil {
		t.Fatal("Dockerfile: no ENTRYPOINT or no HEALTHCHECK")
	}
	return img
}

// TestDockerfileToolchain: the build image is go.mod's exact Go version
// (or its toolchain line), with GOTOOLCHAIN=local so a mismatch fails
// rather than downloads.
func TestDockerfileToolchain(t *testing.T) {
	mod := readRepoFile(t, "go.mod")
	want := ""
	for _, re := range []string{`(?m)^go (\S+)$`, `(?m)^toolchain go(\S+)$`} { // toolchain wins
		if m := regexp.MustCompile(re).FindStringSubmatch(mod); m != nil {
			want = m[1]
		}
	}
	if strings.Count(want, ".") != 2 {
		t.Fatalf("go.mod's Go version %q is not exact (1.x.y)", want)
	}
	img := readImage(t)
	var from, env string
	for _, in := range img.instructions {
		if in.cmd == "FROM" && strings.HasPrefix(in.args, "golang:") && from == "" {
			from = in.args
		}
		if in.cmd == "ENV" && from != "" {
			env += " " + in.args
		}
	}
	tag, _, _ := strings.Cut(strings.TrimPrefix(from, "golang:"), " ")
	tag, _, _ = strings.Cut(tag, "@")
	if tag != want && !strings.HasPrefix(tag, want+"-") {
		t.Errorf("Dockerfile builds with golang:%s, go.mod wants Go %s: use golang:%s-bookworm", tag, want, want)
	}
	if !strings.Contains(env, "GOTOOLCHAIN=local") {
		t.Errorf("Dockerfile's build stage does not set GOTOOLCHAIN=local")
	}
}

// TestDockerignore: the build context leaves out what is large, secret or
// built, and keeps everything the build reads.
func TestDockerignore(t *testing.T) {
	var patterns []string
	for line := range strings.Lines(readRepoFile(t, ".dockerignore")) {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			if strings.HasPrefix(line, "!") {
				t.Fatalf(".dockerignore: %s: this test's matcher knows no exceptions; teach it", line)
			}
			patterns = append(patterns, strings.TrimPrefix(line, "/"))
		}
	}
	// ignored is a small Docker matcher: a pattern matches a path or any
	// directory above it; **/ matches at any depth.
	ignored := func(p string) bool {
		for _, pat := range patterns {
			anyDepth := strings.HasPrefix(pat, "**/")
			pat = strings.TrimPrefix(pat, "**/")
			for dir := p; dir != "."; dir = path.Dir(dir) {
				if ok, _ := path.Match(pat, dir); ok {
					return true
				}
				if anyDepth {
					if ok, _ := path.Match(pat, path.Base(dir)); ok {
						return true
					}
				}
			}
		}
		return false
	}
	for _, p := range []string{".git", "node_modules", "test/browser/node_modules", "gateway/web/sdk/node_modules/x.js",
		"third_party/botframework-webchat/webchat.js", "test-output/browser/plain.png", "cmd/dlsse/dlsse.test", "dlsse"} {
		if !ignored(p) {
			t.Errorf(".dockerignore lets %s into the build context", p)
		}
	}
	// Everything the build reads: go.mod, go.sum, the shipped config, every
	// Go source file and every file embedded from gateway/web.
	needed := []string{"go.mod", "go.sum", "configs/dlsse.yaml"}
	err := filepath.WalkDir(repoRoot, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(repoRoot, p)
		rel = filepath.ToSlash(rel)
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "node_modules" || rel == "third_party") {
			return filepath.SkipDir
		}
		if !d.IsDir() && (strings.HasSuffix(rel, ".go") && !strings.HasSuffix(rel, "_test.go") || strings.HasPrefix(rel, "gateway/web/")) {
			needed = append(needed, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range needed {
		if ignored(p) {
			t.Errorf(".dockerignore leaves out %s, which the build needs", p)
		}
	}
}

// logWatch is a log writer that tells when a line with a given message has
// been written.
type logWatch struct {
	syncBuffer
	want string
	once sync.Once
	seen chan struct{}
}

func (w *logWatch) Write(p []byte) (int, error) {
	n, err := w.syncBuffer.Write(p)
	if strings.Contains(string(p), w.want) {
		w.once.Do(func() { close(w.seen) })
	}
	return n, err
}

// TestImageCommands runs the image's ENTRYPOINT and HEALTHCHECK as dlsse
// commands: dlsse starts on the shipped config as the image starts it, the
// health check passes against it, the manifest's probe paths answer 200,
// and after it stops the health check fails.
func TestImageCommands(t *testing.T) {
	img := readImage(t)
	// The binary both run is the one the build stage makes.
	bin := img.entrypoint[0]
	if img.healthcheck[0] != bin {
		t.Fatalf("HEALTHCHECK runs %s, ENTRYPOINT %s", img.healthcheck[0], bin)
	}
	if src := img.copies[bin]; !strings.HasPrefix(src, "--from=") {
		t.Fatalf("Dockerfile does not COPY --from the build stage to %s", bin)
	}
	if img.healthcheck[1] != "healthcheck" {
		t.Fatalf("HEALTHCHECK runs %q, not dlsse healthcheck", img.healthcheck)
	}
	// The image's files are the repository's.
	args := append([]string(nil), img.entrypoint[1:]...)
	for i, a := range args {
		if src, ok := img.copies[a]; ok {
			args[i] = filepath.Join(repoRoot, src)
		}
	}
	hcArgs := img.healthcheck[1:]
	c := newCLI()
	if err := c.parse(args); err != nil {
		t.Fatalf("ENTRYPOINT %q: %v", img.entrypoint, err)
	}
	if _, err := loadConfig(c.fs, *c.config, nil); err != nil {
		t.Fatalf("ENTRYPOINT %q: %v", img.entrypoint, err)
	}
	if img.hcTimeout > 0 {
		hc := flagValue(t, hcArgs, "-timeout", "3s")
		if d, err := time.ParseDuration(hc); err != nil || d >= img.hcTimeout {
			t.Errorf("dlsse healthcheck -timeout %s is not below HEALTHCHECK --timeout=%s", hc, img.hcTimeout)
		}
	}

	// As in a container that sets DLSSE_LISTEN: dlsse and its health check
	// both read it.
	env := map[string]string{"DLSSE_LISTEN": freeAddr(t), "DLSSE_UPSTREAM_URL": "http://127.0.0.1:1"}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logs := &logWatch{want: "dlsse serving", seen: make(chan struct{})}
	ran := make(chan error, 1)
	go func() { ran <- run(ctx, args, env, io.Discard, logs) }()
	select {
	case <-logs.seen:
	case err := <-ran:
		t.Fatalf("ENTRYPOINT %q ended: %v\n%s", img.entrypoint, err, logs.String())
	case <-time.After(testTimeout):
		t.Fatal("dlsse did not start")
	}

	probe := func() error {
		var out syncBuffer
		return run(context.Background(), hcArgs, env, &out, &out)
	}
	if err := probe(); err != nil {
		t.Errorf("HEALTHCHECK %q against a serving dlsse: %v", img.healthcheck, err)
	}
	for _, p := range readManifest(t).probePaths() {
		resp, err := http.Get("http://" + env["DLSSE_LISTEN"] + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("the manifest's probe %s answers %s", p, resp.Status)
		}
	}

	cancel()
	if err := <-ran; err != nil {
		t.Fatalf("dlsse: %v", err)
	}
	var opErr *net.OpError
	if err := probe(); err == nil || !errors.As(err, &opErr) {
		t.Errorf("HEALTHCHECK after dlsse stopped: %v, want a refused connection", err)
	}
}

// flagValue is the value of a flag in args, or def.
func flagValue(t *testing.T, args []string, name, def string) string {
	t.Helper()
	for i, a := range args {
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
		if a == name && i+1 < len(args) {
			return args[i+1]
		}
	}
	return def
}

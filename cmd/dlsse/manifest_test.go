package main

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strconv"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// manifestPath is the Kubernetes sample.
const manifestPath = "deploy/kubernetes.yaml"

// The parts of the manifest the tests read.
type (
	manifest struct {
		deployments []deployment
		services    []service
	}
	deployment struct {
		Metadata struct{ Name string }
		Spec     struct {
			Selector struct {
				MatchLabels map[string]string `yaml:"matchLabels"`
			}
			Template struct {
				Metadata struct{ Labels map[string]string }
				Spec     podSpec
			}
		}
	}
	podSpec struct {
		EnableServiceLinks            *bool `yaml:"enableServiceLinks"`
		TerminationGracePeriodSeconds int   `yaml:"terminationGracePeriodSeconds"`
		SecurityContext               struct {
			RunAsNonRoot bool `yaml:"runAsNonRoot"`
		} `yaml:"securityContext"`
		Containers []container
	}
	container struct {
		Name    string
		Image   string
		Command []string
		Args    []string
		Ports   []struct {
			Name          string
			ContainerPort int `yaml:"containerPort"`
		}
		Env            []envVar
		LivenessProbe  *probe `yaml:"livenessProbe"`
		ReadinessProbe *probe `yaml:"readinessProbe"`
		Resources      struct {
			Requests map[string]string
			Limits   map[string]string
		}
		SecurityContext struct {
			AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
			ReadOnlyRootFilesystem   bool  `yaml:"readOnlyRootFilesystem"`
			Capabilities             struct{ Drop []string }
		} `yaml:"securityContext"`
	}
	envVar struct {
		Name      string
		Value     *string
		ValueFrom *struct {
			SecretKeyRef *struct{ Name, Key string } `yaml:"secretKeyRef"`
		} `yaml:"valueFrom"`
	}
	probe struct {
		HTTPGet *struct {
			Path string
			Port any // a number or a port's name
		} `yaml:"httpGet"`
	}
	service struct {
		Spec struct {
			Selector map[string]string
			Ports    []struct {
				Port       int
				TargetPort any `yaml:"targetPort"`
			}
		}
	}
)

// readManifest parses every document of the sample with a real YAML parser.
func readManifest(t *testing.T) manifest {
	t.Helper()
	dec := yaml.NewDecoder(bytes.NewReader([]byte(readRepoFile(t, manifestPath))))
	var m manifest
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", manifestPath, err)
		}
		var head struct{ APIVersion, Kind string }
		if err := doc.Decode(&head); err != nil {
			t.Fatalf("%s: %v", manifestPath, err)
		}
		switch head.Kind {
		case "Deployment":
			var d deployment
			if err := doc.Decode(&d); err != nil {
				t.Fatalf("%s: Deployment: %v", manifestPath, err)
			}
			m.deployments = append(m.deployments, d)
		case "Service":
			var s service
			if err := doc.Decode(&s); err != nil {
				t.Fatalf("%s: Service: %v", manifestPath, err)
			}
			m.services = append(m.services, s)
		default:
			t.Fatalf("%s: a %q, which this test does not check", manifestPath, head.Kind)
		}
	}
	if len(m.deployments) != 1 || len(m.services) != 1 || len(m.deployments[0].Spec.Template.Spec.Containers) != 1 {
		t.Fatalf("%s: want one Deployment of one container and one Service", manifestPath)
	}
	return m
}

func (m manifest) container() container { return m.deployments[0].Spec.Template.Spec.Containers[0] }

// probePaths are the paths the probes ask.
func (m manifest) probePaths() []string {
	c := m.container()
	var out []string
	for _, p := range []*probe{c.LivenessProbe, c.ReadinessProbe} {
		if p != nil && p.HTTPGet != nil {
			out = append(out, p.HTTPGet.Path)
		}
	}
	return out
}

// TestKubernetesManifest: the sample's probes are dlsse's (liveness
// /healthz, readiness /readyz) on the port dlsse listens on, its variables
// are dlsse's keys with values dlsse takes, the secret comes from a Secret,
// and the pod runs locked down.
func TestKubernetesManifest(t *testing.T) {
	m := readManifest(t)
	d, svc, c := m.deployments[0], m.services[0], m.container()
	pod := d.Spec.Template.Spec

	if len(c.Command) > 0 || len(c.Args) > 0 {
		t.Errorf("the container overrides the image's ENTRYPOINT (%q %q): configure it with DLSSE_* variables", c.Command, c.Args)
	}
	// What the variables make of dlsse's configuration.
	env := map[string]string{}
	for _, e := range c.Env {
		if _, known := keyOfEnv(e.Name); !known {
			t.Errorf("variable %s is not a dlsse setting", e.Name)
			continue
		}
		switch {
		case e.Value != nil:
			env[e.Name] = *e.Value
		case e.Name == "DLSSE_DIRECTLINE_SECRET" && e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil:
		default:
			t.Errorf("variable %s has neither a value nor, for the secret, a secretKeyRef", e.Name)
		}
	}
	if secret := findEnv(c, "DLSSE_DIRECTLINE_SECRET"); secret == nil || secret.ValueFrom == nil || secret.ValueFrom.SecretKeyRef == nil {
		t.Errorf("DLSSE_DIRECTLINE_SECRET does not come from a Secret")
	}
	l, err := loadConfig(newCLI().fs, "", env)
	if err != nil {
		t.Fatalf("the manifest's variables: %v", err)
	}
	for _, w := range l.warnings {
		t.Errorf("the manifest's variables: %s", w)
	}
	_, listenPort, err := net.SplitHostPort(l.cfg.Listen)
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(listenPort)

	// Ports: a named port resolves to the container's.
	resolve := func(p any) int {
		switch p := p.(type) {
		case int:
			return p
		case string:
			for _, cp := range c.Ports {
				if cp.Name == p {
					return cp.ContainerPort
				}
			}
		}
		return -1
	}
	if len(c.Ports) != 1 || c.Ports[0].ContainerPort != port {
		t.Errorf("containerPort %v, dlsse listens on %d", c.Ports, port)
	}
	for name, tt := range map[string]struct {
		p    *probe
		path string
	}{"livenessProbe": {c.LivenessProbe, "/healthz"}, "readinessProbe": {c.ReadinessProbe, "/readyz"}} {
		switch {
		case tt.p == nil || tt.p.HTTPGet == nil:
			t.Errorf("no %s.httpGet", name)
		case tt.p.HTTPGet.Path != tt.path:
			t.Errorf("%s asks %s, want %s", name, tt.p.HTTPGet.Path, tt.path)
		case resolve(tt.p.HTTPGet.Port) != port:
			t.Errorf("%s asks port %v, dlsse listens on %d", name, tt.p.HTTPGet.Port, port)
		}
	}
	if len(svc.Spec.Ports) == 0 || resolve(svc.Spec.Ports[0].TargetPort) != port {
		t.Errorf("the Service's targetPort %v is not dlsse's port %d", svc.Spec.Ports, port)
	}

	// Labels: the Deployment and the Service select the pods.
	labels := d.Spec.Template.Metadata.Labels
	for what, sel := range map[string]map[string]string{"Deployment": d.Spec.Selector.MatchLabels, "Service": svc.Spec.Selector} {
		if len(sel) == 0 {
			t.Errorf("the %s selects nothing", what)
		}
		for k, v := range sel {
			if labels[k] != v {
				t.Errorf("the %s selects %s=%s, the pods are labelled %v", what, k, v, labels)
			}
		}
	}

	// Shutdown fits in the grace period.
	if grace := time.Duration(pod.TerminationGracePeriodSeconds) * time.Second; grace <= l.cfg.ShutdownDrain+l.cfg.ShutdownTimeout {
		t.Errorf("terminationGracePeriodSeconds %v is not above shutdown_drain %v + shutdown_timeout %v", grace, l.cfg.ShutdownDrain, l.cfg.ShutdownTimeout)
	}

	// Locked down, with resources.
	if !pod.SecurityContext.RunAsNonRoot {
		t.Error("the pod does not set runAsNonRoot")
	}
	sc := c.SecurityContext
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || !sc.ReadOnlyRootFilesystem || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" {
		t.Errorf("the container's securityContext %+v does not forbid escalation, write the root filesystem and drop ALL capabilities", sc)
	}
	if c.Resources.Requests["memory"] == "" || c.Resources.Requests["cpu"] == "" || c.Resources.Limits["memory"] == "" {
		t.Errorf("resources %+v: want cpu and memory requests and a memory limit", c.Resources)
	}
}

func findEnv(c container, name string) *envVar {
	for i := range c.Env {
		if c.Env[i].Name == name {
			return &c.Env[i]
		}
	}
	return nil
}

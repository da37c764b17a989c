package deploy_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/tako-run/tako/config"
)

// The Kubernetes recipe's names and the worker pool's label and taint.
const (
	k8sDir        = "kubernetes"
	k8sNamespace  = "tako"
	k8sAPI        = "tako-api"
	k8sWorker     = "tako-worker"
	k8sContainer  = "tako"
	workerPoolKey = "tako.run/worker"
	workerPoolVal = "true"
)

// k8sDecoder decodes YAML or JSON into the Kubernetes API types of the
// kinds the manifests use, strictly: an unknown, misspelt, wrongly cased
// or repeated field is an error, as it is for `kubectl apply
// --validate=strict`.
func k8sDecoder(t *testing.T) runtime.Decoder {
	t.Helper()
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, appsv1.AddToScheme, policyv1.AddToScheme} {
		if err := add(scheme); err != nil {
			t.Fatalf("kubernetes scheme: %v", err)
		}
	}
	return serializer.NewCodecFactory(scheme, serializer.EnableStrict).UniversalDeserializer()
}

// decodeManifests decodes every document of data, named file in messages.
// Documents holding nothing but comments are skipped.
func decodeManifests(dec runtime.Decoder, file string, data []byte) ([]runtime.Object, error) {
	var objs []runtime.Object
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for i := 1; ; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", file, i, err)
		}
		if blankYAML(doc) {
			continue
		}
		obj, _, err := dec.Decode(doc, nil, nil)
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", file, i, err)
		}
		objs = append(objs, obj)
	}
}

// blankYAML reports whether doc holds only comments, blank lines and
// document separators.
func blankYAML(doc []byte) bool {
	for line := range strings.SplitSeq(string(doc), "\n") {
		line = strings.TrimSpace(line)
		if line != "" && line != "---" && !strings.HasPrefix(line, "#") {
			return false
		}
	}
	return true
}

// k8sObject is what the tests look objects up by.
type k8sObject interface {
	runtime.Object
	GetName() string
	GetNamespace() string
}

// find returns the object of type T named name, failing t without one.
func find[T k8sObject](t *testing.T, objs []runtime.Object, name string) T {
	t.Helper()
	for _, obj := range objs {
		if o, ok := obj.(T); ok && o.GetName() == name {
			return o
		}
	}
	var zero T
	t.Fatalf("no %T named %s in %s/", zero, name, k8sDir)
	return zero
}

// TestKubernetesStrict: the decoder the recipe is checked with refuses
// what the API server would.
func TestKubernetesStrict(t *testing.T) {
	t.Parallel()
	dec := k8sDecoder(t)
	const service = "apiVersion: v1\nkind: Service\nmetadata:\n  name: x\nspec:\n  %s\n"
	for _, tc := range []struct{ name, doc, want string }{
		{"misspelt field", fmt.Sprintf(service, "selektor: {a: b}"), `unknown field "spec.selektor"`},
		{"wrong case", fmt.Sprintf(service, "Selector: {a: b}"), `unknown field "spec.Selector"`},
		{"repeated field", fmt.Sprintf(service, "type: ClusterIP\n  type: NodePort"), `"type" already set`},
		{"unknown kind", "apiVersion: v1\nkind: Servise\nmetadata: {name: x}\n", `no kind "Servise"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := decodeManifests(dec, "doc.yaml", []byte(tc.doc))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("decode: %v, want an error with %q", err, tc.want)
			}
		})
	}
	if objs, err := decodeManifests(dec, "doc.yaml", []byte(fmt.Sprintf(service, "selector: {a: b}"))); err != nil || len(objs) != 1 {
		t.Errorf("a valid Service: %d objects, %v", len(objs), err)
	}
}

// TestKubernetes: every manifest decodes strictly into the Kubernetes API
// types, and the api Deployment, the worker DaemonSet, their Service and
// disruption budgets run the tako-server image as tako expects: the role,
// an environment tako's configuration loader accepts, probes on /health,
// scrape annotations, and for workers the Docker socket, the work
// directory at its host path and the worker pool's label and taint.
func TestKubernetes(t *testing.T) {
	t.Parallel()
	dec := k8sDecoder(t)
	files, err := filepath.Glob(filepath.Join(k8sDir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in %s/ (%v)", k8sDir, err)
	}
	var objs []runtime.Object
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		decoded, err := decodeManifests(dec, file, data)
		if err != nil {
			t.Fatal(err)
		}
		objs = append(objs, decoded...)
	}
	find[*corev1.Namespace](t, objs, k8sNamespace)
	for _, obj := range objs {
		o := obj.(k8sObject)
		if _, ns := obj.(*corev1.Namespace); !ns && o.GetNamespace() != k8sNamespace {
			t.Errorf("%T %s is in namespace %q, want %q", obj, o.GetName(), o.GetNamespace(), k8sNamespace)
		}
	}

	image := serverImage(t)
	api := find[*appsv1.Deployment](t, objs, k8sAPI)
	worker := find[*appsv1.DaemonSet](t, objs, k8sWorker)
	apiLabels, workerLabels := labels.Set(api.Spec.Template.Labels), labels.Set(worker.Spec.Template.Labels)
	var secrets []*corev1.SecretKeySelector

	t.Run("api", func(t *testing.T) {
		if r := api.Spec.Replicas; r == nil || *r != 2 {
			t.Errorf("replicas %v, want 2", r)
		}
		selects(t, "the Deployment", api.Spec.Selector, apiLabels, workerLabels)
		_, _, refs := checkPod(t, api.Spec.Template, image, roleAPI)
		secrets = append(secrets, refs...)
	})

	t.Run("worker", func(t *testing.T) {
		selects(t, "the DaemonSet", worker.Spec.Selector, workerLabels, apiLabels)
		pod := worker.Spec.Template.Spec
		if got := pod.NodeSelector[workerPoolKey]; got != workerPoolVal {
			t.Errorf("nodeSelector %s=%q, want %q", workerPoolKey, got, workerPoolVal)
		}
		taint := corev1.Taint{Key: workerPoolKey, Value: workerPoolVal, Effect: corev1.TaintEffectNoSchedule}
		tolerated := false
		for _, tol := range pod.Tolerations {
			tolerated = tolerated || tol.ToleratesTaint(logr.Discard(), &taint, false)
		}
		if !tolerated {
			t.Errorf("no toleration of the worker pool's taint %s", taint.ToString())
		}

		c, cfg, refs := checkPod(t, worker.Spec.Template, image, roleWorker)
		secrets = append(secrets, refs...)
		if c == nil {
			return
		}
		if src, readOnly := hostMount(pod, c, dockerSocket); src != dockerSocket || readOnly {
			t.Errorf("the Docker socket is mounted from host path %q (read-only %v), want %s", src, readOnly, dockerSocket)
		}
		// Slot directories are mounted into job containers by host path:
		// the work directory's host path is its path in the container.
		work := cfg.Runner.WorkDir
		if src, readOnly := hostMount(pod, c, work); src != work || readOnly {
			t.Errorf("runner.work_dir %s is mounted from host path %q (read-only %v), want the same path", work, src, readOnly)
		}
	})

	t.Run("service", func(t *testing.T) {
		svc := find[*corev1.Service](t, objs, k8sAPI)
		sel := labels.SelectorFromSet(svc.Spec.Selector)
		if len(svc.Spec.Selector) == 0 || !sel.Matches(apiLabels) || sel.Matches(workerLabels) {
			t.Errorf("the Service selects %v: want the api pods %v and not the workers %v", svc.Spec.Selector, apiLabels, workerLabels)
		}
		c := containerOf(t, api.Spec.Template.Spec)
		ok := false
		for _, p := range svc.Spec.Ports {
			ok = ok || (p.Port == port && c != nil && portOf(c, p.TargetPort) == port)
		}
		if !ok {
			t.Errorf("the Service has no port %d to the api's port %d: %+v", port, port, svc.Spec.Ports)
		}
	})

	t.Run("disruption budgets", func(t *testing.T) {
		apiPDB := find[*policyv1.PodDisruptionBudget](t, objs, k8sAPI)
		selects(t, "the api's budget", apiPDB.Spec.Selector, apiLabels, workerLabels)
		replicas := int32(1) // the default
		if api.Spec.Replicas != nil {
			replicas = *api.Spec.Replicas
		}
		if m := apiPDB.Spec.MinAvailable; m == nil || m.Type != intstr.Int || int32(m.IntValue()) >= replicas {
			t.Errorf("the api's budget minAvailable %v: want a number below the %d replicas, or no drain ever ends", m, replicas)
		}
		workerPDB := find[*policyv1.PodDisruptionBudget](t, objs, k8sWorker)
		selects(t, "the workers' budget", workerPDB.Spec.Selector, workerLabels, apiLabels)
		// A DaemonSet has no scale subresource: only an integer
		// minAvailable works for its pods.
		if m := workerPDB.Spec.MinAvailable; m == nil || m.Type != intstr.Int || workerPDB.Spec.MaxUnavailable != nil {
			t.Errorf("the workers' budget: minAvailable %v, maxUnavailable %v; a DaemonSet's pods take an integer minAvailable only",
				m, workerPDB.Spec.MaxUnavailable)
		}
	})

	t.Run("readme", func(t *testing.T) {
		// The README's commands make what the manifests expect to find.
		want := []string{
			"kubectl label node", fmt.Sprintf("%s=%s", workerPoolKey, workerPoolVal),
			"kubectl taint node", fmt.Sprintf("%s=%s:%s", workerPoolKey, workerPoolVal, corev1.TaintEffectNoSchedule),
			"kubectl apply -f deploy/" + k8sDir + "/",
		}
		for _, ref := range secrets {
			want = append(want, "kubectl create secret generic "+ref.Name, "--from-literal="+ref.Key+"=")
		}
		readmeHas(t, k8sDir, want...)
	})
}

// selects checks that sel, the selector of what, matches the labels of
// the pods it is for and not those of others.
func selects(t *testing.T, what string, sel *metav1.LabelSelector, pods, others labels.Set) {
	t.Helper()
	s, err := metav1.LabelSelectorAsSelector(sel)
	switch {
	case err != nil:
		t.Errorf("%s: selector: %v", what, err)
	case s.Empty() || !s.Matches(pods) || s.Matches(others):
		t.Errorf("%s selects %v: want the pods labelled %v and not %v", what, s, pods, others)
	}
}

// checkPod checks the pod template of the workload with role: one tako
// container of image, its port, probes, annotations and an environment
// tako's loader accepts. It returns the container (nil when there is
// none), the configuration tako would run with and the Secret keys the
// environment reads.
func checkPod(t *testing.T, tmpl corev1.PodTemplateSpec, image, role string) (*corev1.Container, *config.Config, []*corev1.SecretKeySelector) {
	t.Helper()
	for k, v := range map[string]string{
		"prometheus.io/scrape": "true",
		"prometheus.io/port":   fmt.Sprint(port),
		"prometheus.io/path":   "/metrics",
	} {
		if got := tmpl.Annotations[k]; got != v {
			t.Errorf("pod annotation %s=%q, want %q", k, got, v)
		}
	}
	pod := tmpl.Spec
	// Service links set TAKO_<SERVICE>_SERVICE_HOST and the like for every
	// Service of the namespace, and tako refuses a TAKO_ variable that
	// names no key.
	if pod.EnableServiceLinks == nil || *pod.EnableServiceLinks {
		t.Error("enableServiceLinks is not false: Kubernetes would add TAKO_API_SERVICE_HOST and the like, which tako refuses")
	}
	c := containerOf(t, pod)
	if c == nil {
		return nil, nil, nil
	}
	if c.Image != image || c.ImagePullPolicy != corev1.PullIfNotPresent {
		t.Errorf("image %s (%s), want %s (%s): what `tako image` builds", c.Image, c.ImagePullPolicy, image, corev1.PullIfNotPresent)
	}
	if portOf(c, intstr.FromInt32(port)) != port {
		t.Errorf("no containerPort %d: %+v", port, c.Ports)
	}
	for name, p := range map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe, "startup": c.StartupProbe} {
		switch {
		case p == nil && name == "startup":
		case p == nil:
			t.Errorf("no %s probe", name)
		case p.HTTPGet == nil || p.HTTPGet.Path != healthPath || portOf(c, p.HTTPGet.Port) != port ||
			(p.HTTPGet.Scheme != "" && p.HTTPGet.Scheme != corev1.URISchemeHTTP):
			t.Errorf("the %s probe %+v, want GET %s on port %d", name, p.ProbeHandler, healthPath, port)
		}
	}

	if len(c.EnvFrom) > 0 {
		t.Errorf("envFrom %+v: list each variable in env, so that this test can check it", c.EnvFrom)
	}
	var env []string
	var refs []*corev1.SecretKeySelector
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env = append(env, e.Name+"="+e.Value)
		case e.ValueFrom.SecretKeyRef != nil:
			env = append(env, e.Name+"="+placeholder(e.Name))
			refs = append(refs, e.ValueFrom.SecretKeyRef)
		default:
			t.Errorf("env %s: only values and secretKeyRef are checked", e.Name)
		}
	}
	for _, secret := range []string{"TAKO_DATABASE_URL", "TAKO_AUTH_API_KEYS_DEFAULT"} {
		if !slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool {
			return e.Name == secret && e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil
		}) {
			t.Errorf("%s does not come from a Secret (secretKeyRef)", secret)
		}
	}
	return c, loadEnv(t, env, role), refs
}

// containerOf returns the pod's tako container, failing t unless it is
// the pod's only one.
func containerOf(t *testing.T, pod corev1.PodSpec) *corev1.Container {
	t.Helper()
	if len(pod.Containers) != 1 || pod.Containers[0].Name != k8sContainer {
		t.Errorf("containers %d, want one named %s", len(pod.Containers), k8sContainer)
		return nil
	}
	return &pod.Containers[0]
}

// portOf returns the TCP port number that p (a number or a port's name)
// is in container c, 0 when c has no such port.
func portOf(c *corev1.Container, p intstr.IntOrString) int32 {
	for _, cp := range c.Ports {
		if cp.Protocol != "" && cp.Protocol != corev1.ProtocolTCP {
			continue
		}
		if (p.Type == intstr.Int && cp.ContainerPort == p.IntVal) || (p.Type == intstr.String && cp.Name == p.StrVal) {
			return cp.ContainerPort
		}
	}
	return 0
}

// hostMount returns the host path mounted at path in container c of pod,
// and whether it is read-only; "" when no hostPath volume is mounted there.
func hostMount(pod corev1.PodSpec, c *corev1.Container, path string) (string, bool) {
	for _, m := range c.VolumeMounts {
		if m.MountPath != path || m.SubPath != "" {
			continue
		}
		for _, v := range pod.Volumes {
			if v.Name == m.Name && v.HostPath != nil {
				return v.HostPath.Path, m.ReadOnly
			}
		}
	}
	return "", false
}

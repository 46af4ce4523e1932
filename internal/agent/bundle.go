package agent

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	support "github.com/siderolabs/go-talos-support/support"
	"github.com/siderolabs/go-talos-support/support/bundle"
	"github.com/siderolabs/go-talos-support/support/collectors"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"github.com/bootcore-dev/bootcore/internal/kube"
	"github.com/bootcore-dev/bootcore/internal/render"
)

// redactingArchive replaces every secret value the agent read (and its base64 form) before a
// file enters the bundle. The collectors never read Secret data; this catches a value that
// leaked into an event, a log line or a pod spec.
type redactingArchive struct {
	bundle.Archive
	secrets [][]byte
}

func (a *redactingArchive) Write(path string, contents []byte) error {
	return a.Archive.Write(path, redact(contents, a.secrets))
}

func redact(data []byte, secrets [][]byte) []byte {
	for _, s := range secrets {
		// Very short values would blank out unrelated text; values that short are not
		// credentials anyway.
		if len(bytes.TrimSpace(s)) < 6 {
			continue
		}
		data = bytes.ReplaceAll(data, s, []byte("[REDACTED]"))
		data = bytes.ReplaceAll(data, []byte(base64.StdEncoding.EncodeToString(s)), []byte("[REDACTED]"))
	}
	return data
}

type zipArchive struct {
	mu sync.Mutex
	w  *zip.Writer
}

func (z *zipArchive) Write(path string, contents []byte) error {
	z.mu.Lock()
	defer z.mu.Unlock()
	f, err := z.w.Create(path)
	if err != nil {
		return err
	}
	_, err = f.Write(contents)
	return err
}

func (z *zipArchive) Close() error { return z.w.Close() }

// writeBundle makes the result of a run that failed with access to the cluster: exit 1 and a
// support bundle (secrets are the values read, redacted from it).
func writeBundle(ctx context.Context, e env, secrets [][]byte, failure error) *Result {
	res := &Result{ExitCode: ExitFailed, Err: failure}
	var ie *InputError
	if errors.As(failure, &ie) {
		res.ExitCode = ExitInvalid
		return res
	}
	if e.opts.DryRun {
		return res
	}
	b := &bundleWriter{env: e, secrets: secrets}
	path, err := b.write(ctx, failure)
	if err != nil {
		e.rep.Emit(Event{Type: EventWarning, Message: "writing the support bundle failed: " + err.Error()})
	}
	res.Bundle = path
	return res
}

// bundleWriter writes a support bundle.
type bundleWriter struct {
	env
	secrets [][]byte
}

// write collects what explains a failed hand-over into a zip file and returns its path. It
// uses go-talos-support's Kubernetes collectors plus the agent's own (Flux objects,
// workloads, events, controller logs, Helm release list, Secret names without values).
func (s *bundleWriter) write(_ context.Context, failure error) (string, error) {
	if err := os.MkdirAll(s.opts.BundleDir, 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(s.opts.BundleDir, fmt.Sprintf("bootcore-support-%s-%s.zip", s.cluster.Name, time.Now().UTC().Format("20060102-150405")))
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return "", err
	}
	defer f.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	archive := &redactingArchive{Archive: &zipArchive{w: zip.NewWriter(f)}, secrets: s.secrets}
	var logBuf bytes.Buffer
	opts := bundle.NewOptions(bundle.WithArchive(archive), bundle.WithLogOutput(&logBuf), bundle.WithNumWorkers(2))
	cols := collectors.GetKubernetesCollectors(ctx, opts.Log, s.k.Clientset)
	cols = append(cols, s.bundleCollectors(ctx, failure)...)
	cols = append(cols, s.talosCollectors(ctx, opts.Log)...)
	if err := support.CreateSupportBundle(ctx, opts, cols...); err != nil {
		return path, err
	}
	return path, f.Close()
}

func (s *bundleWriter) bundleCollectors(ctx context.Context, failure error) []*collectors.Collector {
	c := func(path string, fn func() ([]byte, error)) *collectors.Collector {
		return collectors.NewCollector("bootcore/"+path, fn)
	}
	out := []*collectors.Collector{
		c("failure.txt", func() ([]byte, error) { return []byte(failure.Error() + "\n"), nil }),
		c("events.jsonl", func() ([]byte, error) {
			var b bytes.Buffer
			for _, e := range s.rep.Events() {
				data, _ := json.Marshal(e)
				b.Write(data)
				b.WriteByte('\n')
			}
			return b.Bytes(), nil
		}),
		c("cluster-events.yaml", func() ([]byte, error) {
			list, err := s.k.Clientset.CoreV1().Events("").List(ctx, metav1.ListOptions{})
			if err != nil {
				return nil, err
			}
			sort.Slice(list.Items, func(i, j int) bool { return kube.EventTime(list.Items[i]).Before(kube.EventTime(list.Items[j])) })
			var lines []string
			for _, ev := range list.Items {
				lines = append(lines, fmt.Sprintf("%s %s %s %s/%s %s: %s", kube.EventTime(ev).UTC().Format(time.RFC3339), ev.Type,
					ev.InvolvedObject.Kind, ev.InvolvedObject.Namespace, ev.InvolvedObject.Name, ev.Reason, strings.TrimSpace(ev.Message)))
			}
			return []byte(strings.Join(lines, "\n") + "\n"), nil
		}),
		c("secrets.txt", s.secretNames(ctx)),
		c("helm-releases.txt", s.helmReleaseList(ctx)),
	}
	for _, gvk := range kube.FluxKinds {
		out = append(out, c("flux/"+plural(gvk)+".yaml", s.listYAML(ctx, gvk, "")))
	}
	for _, ns := range s.bundleNamespaces() {
		for _, gvk := range []schema.GroupVersionKind{kube.Deployment, kube.DaemonSet} {
			out = append(out, c("workloads/"+ns+"-"+plural(gvk)+".yaml", s.listYAML(ctx, gvk, ns)))
		}
		if ns != "kube-system" { // kube-system pods: go-talos-support's systemPods.yaml
			out = append(out, c("pods/"+ns+".yaml", s.listYAML(ctx, kube.Pod, ns)))
		}
	}
	for _, cm := range [][2]string{{MarkerNamespace, MarkerName}, {TalosInventoryNamespace, TalosInventoryName}, {"flux-system", "cluster-settings"}} {
		out = append(out, c("configmaps/"+cm[0]+"-"+cm[1]+".yaml", s.getYAML(ctx, kube.ConfigMap, cm[0], cm[1])))
	}
	out = append(out, s.logCollectors(ctx, "flux-system")...)
	return out
}

func (s *bundleWriter) bundleNamespaces() []string {
	set := map[string]bool{"kube-system": true, "flux-system": true}
	for _, ns := range s.agent.Namespaces {
		set[ns] = true
	}
	var out []string
	for ns := range set {
		out = append(out, ns)
	}
	sort.Strings(out)
	return out
}

// plural names a kind's file the way its resource is named (gitrepositories, deployments).
func plural(gvk schema.GroupVersionKind) string {
	k := strings.ToLower(gvk.Kind)
	if strings.HasSuffix(k, "y") {
		return strings.TrimSuffix(k, "y") + "ies"
	}
	return k + "s"
}

// clean drops what only adds noise (managed fields) or could carry secrets (last-applied).
func clean(u *unstructured.Unstructured) {
	u.SetManagedFields(nil)
	ann := u.GetAnnotations()
	delete(ann, "kubectl.kubernetes.io/last-applied-configuration")
	if len(ann) == 0 {
		ann = nil
	}
	u.SetAnnotations(ann)
}

func (s *bundleWriter) listYAML(ctx context.Context, gvk schema.GroupVersionKind, namespace string) func() ([]byte, error) {
	return func() ([]byte, error) {
		list, err := s.k.List(ctx, gvk, namespace)
		if err != nil {
			return []byte("# " + err.Error() + "\n"), nil
		}
		var objs []*unstructured.Unstructured
		for i := range list.Items {
			clean(&list.Items[i])
			objs = append(objs, &list.Items[i])
		}
		return render.Encode(objs)
	}
}

func (s *bundleWriter) getYAML(ctx context.Context, gvk schema.GroupVersionKind, namespace, name string) func() ([]byte, error) {
	return func() ([]byte, error) {
		u, err := s.k.Get(ctx, kube.Ref{GVK: gvk, Namespace: namespace, Name: name})
		if err != nil {
			return []byte("# " + err.Error() + "\n"), nil
		}
		clean(u)
		return yaml.Marshal(u.Object)
	}
}

// secretNames lists Secrets by name, type and keys: enough to see one is missing, no values.
func (s *bundleWriter) secretNames(ctx context.Context) func() ([]byte, error) {
	return func() ([]byte, error) {
		var lines []string
		for _, ns := range s.bundleNamespaces() {
			list, err := s.k.Clientset.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{})
			if err != nil {
				lines = append(lines, fmt.Sprintf("%s: %v", ns, err))
				continue
			}
			for _, sec := range list.Items {
				keys := make([]string, 0, len(sec.Data))
				for k := range sec.Data {
					keys = append(keys, k)
				}
				sort.Strings(keys)
				lines = append(lines, fmt.Sprintf("%s/%s type=%s keys=%s", ns, sec.Name, sec.Type, strings.Join(keys, ",")))
			}
		}
		return []byte(strings.Join(lines, "\n") + "\n"), nil
	}
}

// helmReleaseList reads Helm's release Secrets by their labels only (the Secret data holds the
// release, values included, and is not read).
func (s *bundleWriter) helmReleaseList(ctx context.Context) func() ([]byte, error) {
	return func() ([]byte, error) {
		list, err := s.k.Clientset.CoreV1().Secrets("").List(ctx, metav1.ListOptions{LabelSelector: "owner=helm"})
		if err != nil {
			return []byte(err.Error() + "\n"), nil
		}
		var lines []string
		for _, sec := range list.Items {
			l := sec.Labels
			lines = append(lines, fmt.Sprintf("%s/%s revision=%s status=%s modified=%s", sec.Namespace, l["name"], l["version"], l["status"], l["modifiedAt"]))
		}
		sort.Strings(lines)
		return []byte(strings.Join(lines, "\n") + "\n"), nil
	}
}

// logCollectors fetch the last lines of every container log in namespace (the Flux
// controllers). A log the API cannot serve is recorded as the error instead.
func (s *bundleWriter) logCollectors(ctx context.Context, namespace string) []*collectors.Collector {
	pods, err := s.k.Clientset.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return []*collectors.Collector{collectors.NewCollector("bootcore/logs/"+namespace+"/error.txt", func() ([]byte, error) {
			return []byte(err.Error() + "\n"), nil
		})}
	}
	var out []*collectors.Collector
	for _, pod := range pods.Items {
		for _, ctr := range pod.Spec.Containers {
			path := fmt.Sprintf("bootcore/logs/%s/%s/%s.log", namespace, pod.Name, ctr.Name)
			out = append(out, collectors.NewCollector(path, func() ([]byte, error) {
				req := s.k.Clientset.CoreV1().Pods(namespace).GetLogs(pod.Name, &corev1.PodLogOptions{Container: ctr.Name, TailLines: ptr.To(int64(2000))})
				rc, err := req.Stream(ctx)
				if err != nil {
					return []byte("# logs unavailable: " + err.Error() + "\n"), nil
				}
				defer rc.Close()
				return io.ReadAll(rc)
			}))
		}
	}
	return out
}

// talosSupport is a Talos API that offers go-talos-support's node collectors.
type talosSupport interface {
	SupportCollectors(ctx context.Context, log collectors.Logger, nodes []string) []*collectors.Collector
}

// talosCollectors adds the Talos side of the bundle (as talosctl support does) when the agent
// holds a Talos client: per control-plane node, dmesg, service logs, resources, version.
func (s *bundleWriter) talosCollectors(ctx context.Context, log collectors.Logger) []*collectors.Collector {
	t, ok := s.opts.Talos.(talosSupport)
	if !ok || s.opts.Talos == nil {
		return nil
	}
	nodes := s.opts.Talos.Nodes()
	if len(nodes) == 0 {
		var err error
		if nodes, err = controlPlaneAddresses(ctx, s.k); err != nil {
			return nil
		}
	}
	return t.SupportCollectors(ctx, log, nodes)
}

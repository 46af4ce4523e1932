package agent

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/bootcore-dev/bootcore/internal/fluxtree"
	"github.com/bootcore-dev/bootcore/internal/spec"
	"github.com/bootcore-dev/bootcore/internal/status"
)

// GroupVersionKinds the phases read.
var (
	gvkNamespace      = schema.GroupVersionKind{Version: "v1", Kind: "Namespace"}
	gvkSecret         = schema.GroupVersionKind{Version: "v1", Kind: "Secret"}
	gvkConfigMap      = schema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}
	gvkDeployment     = schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}
	gvkDaemonSet      = schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "DaemonSet"}
	gvkGitRepository  = schema.GroupVersionKind{Group: fluxtree.SourceGroup, Version: "v1", Kind: "GitRepository"}
	gvkKustomization  = schema.GroupVersionKind{Group: fluxtree.KustomizeGroup, Version: "v1", Kind: "Kustomization"}
	gvkHelmRelease    = schema.GroupVersionKind{Group: fluxtree.HelmGroup, Version: "v2", Kind: "HelmRelease"}
	gvkFluxInstance   = schema.GroupVersionKind{Group: "fluxcd.controlplane.io", Version: "v1", Kind: "FluxInstance"}
	requestedAtAnnKey = "reconcile.fluxcd.io/requestedAt"
)

// allReady checks targets once, read-only; why names the first that is not Ready.
func (s *state) allReady(ctx context.Context, targets []target) (bool, string, error) {
	for _, t := range targets {
		u, err := s.k.get(ctx, t.GVK, t.Namespace, t.Name)
		if apierrors.IsNotFound(err) || isNoMatch(err) {
			return false, t.String() + " not found", nil
		}
		if err != nil {
			return false, "", err
		}
		if ok, msg := t.Ready(u); !ok {
			return false, t.String() + ": " + msg, nil
		}
	}
	return true, fmt.Sprintf("%d objects Ready", len(targets)), nil
}

// ---- connect ----

type connectPhase struct{ s *state }

func (p *connectPhase) Name() string { return PhaseConnect }
func (p *connectPhase) Title() string {
	return fmt.Sprintf("connecting to cluster %s through %s", p.s.cluster.Name, p.s.opts.Connector.Describe())
}

// Done: connecting is a check; it always runs.
func (p *connectPhase) Done(context.Context) (bool, string, error) { return false, "", nil }

func (p *connectPhase) Run(ctx context.Context) error {
	s := p.s
	cfg, err := s.opts.Connector.Connect(ctx)
	if err != nil {
		return err
	}
	if s.k, err = newKube(cfg); err != nil {
		return err
	}
	s.server = cfg.Host
	if err := checkEndpoint(s.cluster.Name, s.cluster.Endpoint, cfg.Host); err != nil {
		if !s.opts.Force {
			return err
		}
		s.rep.Emit(Event{Type: EventWarning, Phase: PhaseConnect, Message: err.Error() + " (--force: going on anyway)"})
	}
	if s.uid, err = clusterUID(ctx, s.k.client); err != nil {
		return err
	}
	if s.marker, err = readMarker(ctx, s.k.client); err != nil {
		return err
	}
	if err := checkIdentity(s.cluster.Name, s.uid, s.marker); err != nil {
		if !s.opts.Force {
			return err
		}
		s.rep.Emit(Event{Type: EventWarning, Phase: PhaseConnect, Message: err.Error() + " (--force: going on anyway)"})
	}
	if v, err := s.k.client.Discovery().ServerVersion(); err == nil {
		s.versions["kubernetes"] = v.GitVersion
	}
	msg := fmt.Sprintf("API server %s is cluster %s (kube-system UID %s)", cfg.Host, s.cluster.Name, s.uid)
	if s.marker != nil {
		msg += fmt.Sprintf("; handed over to Flux at %s", s.marker.HandedOverAt.UTC().Format(time.RFC3339))
	}
	s.rep.Emit(Event{Type: EventProgress, Phase: PhaseConnect, Message: msg})
	return nil
}

// ---- wait-control-plane ----

type waitControlPlanePhase struct{ s *state }

func (p *waitControlPlanePhase) Name() string { return PhaseWaitControlPlane }
func (p *waitControlPlanePhase) Title() string {
	return "waiting for every control-plane node (" + ControlPlaneLabel + ") to be Ready"
}

func (p *waitControlPlanePhase) Done(ctx context.Context) (bool, string, error) {
	nodes, err := p.s.k.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: ControlPlaneLabel})
	if err != nil {
		return false, "", err
	}
	if len(nodes.Items) == 0 {
		return false, "no control-plane node yet", nil
	}
	for i := range nodes.Items {
		if ok, msg := nodeReady(&nodes.Items[i]); !ok {
			return false, "node " + nodes.Items[i].Name + ": " + msg, nil
		}
	}
	return true, fmt.Sprintf("%d control-plane nodes Ready", len(nodes.Items)), nil
}

func (p *waitControlPlanePhase) Run(ctx context.Context) error {
	return p.s.waitControlPlane(ctx, PhaseWaitControlPlane)
}

// ---- wait-cni ----

type waitCNIPhase struct{ s *state }

func (p *waitCNIPhase) Name() string { return PhaseWaitCNI }
func (p *waitCNIPhase) Title() string {
	return "waiting for the CNI and cluster DNS workloads Talos installed at boot to roll out, and for cluster DNS to answer"
}

// targets are the DaemonSets and Deployments of the phase-1 renders (cilium, cilium-operator,
// coredns, ...).
func (p *waitCNIPhase) targets() ([]target, *bootObjects, error) {
	boot, err := p.s.Boot()
	if err != nil {
		return nil, nil, err
	}
	var out []target
	for _, o := range append(append([]*unstructured.Unstructured(nil), boot.CNI...), boot.DNS...) {
		gvk := o.GroupVersionKind()
		if gvk.Group == "apps" && (gvk.Kind == "DaemonSet" || gvk.Kind == "Deployment") {
			out = append(out, target{GVK: gvk, Namespace: o.GetNamespace(), Name: o.GetName(), Ready: kstatusReady})
		}
	}
	if len(out) == 0 {
		return nil, nil, fmt.Errorf("%s: the CNI manifest has no DaemonSet or Deployment", boot.Path)
	}
	return out, boot, nil
}

func (p *waitCNIPhase) Done(ctx context.Context) (bool, string, error) {
	t, boot, err := p.targets()
	if err != nil {
		return false, "", err
	}
	if ok, why, err := p.s.allReady(ctx, t); !ok || err != nil {
		return ok, why, err
	}
	return p.s.clusterDNSReady(ctx, boot)
}

func (p *waitCNIPhase) Run(ctx context.Context) error {
	t, boot, err := p.targets()
	if err != nil {
		return err
	}
	if err := p.s.waitTargets(ctx, PhaseWaitCNI, t); err != nil {
		return err
	}
	return p.s.waitClusterDNS(ctx, boot)
}

// ---- prerequisites ----

type prerequisitesPhase struct{ s *state }

func (p *prerequisitesPhase) Name() string { return PhasePrerequisites }
func (p *prerequisitesPhase) Title() string {
	secrets := make([]string, 0, len(p.s.agent.Secrets))
	for _, sec := range p.s.agent.Secrets {
		secrets = append(secrets, sec.Name)
	}
	if len(secrets) == 0 {
		secrets = []string{"none"}
	}
	return fmt.Sprintf("creating namespaces (%s) and bootstrap Secrets (%s)", strings.Join(p.s.agent.Namespaces, ", "), strings.Join(secrets, ", "))
}

func (p *prerequisitesPhase) Done(ctx context.Context) (bool, string, error) {
	s := p.s
	for _, ns := range s.agent.Namespaces {
		if _, err := s.k.client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); apierrors.IsNotFound(err) {
			return false, "Namespace " + ns + " missing", nil
		} else if err != nil {
			return false, "", err
		}
	}
	for _, want := range s.agent.Secrets {
		ns, name := spec.SplitName(want.Name)
		live, err := s.k.client.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return false, "Secret " + want.Name + " missing", nil
		}
		if err != nil {
			return false, "", err
		}
		for k := range want.Data {
			if len(live.Data[k]) == 0 {
				return false, fmt.Sprintf("Secret %s has no key %s", want.Name, k), nil
			}
		}
		// With the inputs at hand, a changed value re-applies the Secret; without them (a
		// run-once check) the keys being there is enough.
		if s.resolved {
			for _, sec := range s.secrets {
				if sec.Namespace == ns && sec.Name == name && !sameData(sec.Data, live.Data) {
					return false, "Secret " + want.Name + " differs from its inputs", nil
				}
			}
		}
	}
	return true, fmt.Sprintf("%d namespaces and %d Secrets present", len(s.agent.Namespaces), len(s.agent.Secrets)), nil
}

func sameData(want, live map[string][]byte) bool {
	for k, v := range want {
		if !bytes.Equal(live[k], v) {
			return false
		}
	}
	return true
}

func (p *prerequisitesPhase) Run(ctx context.Context) error {
	s := p.s
	for _, ns := range s.agent.Namespaces {
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(gvkNamespace)
		u.SetName(ns)
		res, err := s.k.apply(ctx, u, s.opts.DryRun)
		if err != nil {
			return err
		}
		s.change(PhasePrerequisites, "Namespace "+ns, res, "")
	}
	for _, sec := range s.secrets {
		obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(sec)
		if err != nil {
			return err
		}
		u := &unstructured.Unstructured{Object: obj}
		unstructured.RemoveNestedField(u.Object, "metadata", "creationTimestamp")
		res, err := s.k.apply(ctx, u, s.opts.DryRun)
		if err != nil {
			// The apply error is the API server's; it does not echo data values.
			return err
		}
		keys := make([]string, 0, len(sec.Data))
		for k := range sec.Data {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		s.change(PhasePrerequisites, describeRef("Secret", sec.Namespace, sec.Name), res, "keys "+strings.Join(keys, ", "))
	}
	return nil
}

// change reports what an apply did (or would do).
func (s *state) change(phase, object string, res applyResult, detail string) {
	verb := string(res)
	if s.opts.DryRun && res != applyUnchanged {
		verb = "would be " + verb
	}
	msg := object + " " + verb
	if detail != "" {
		msg += " (" + detail + ")"
	}
	s.rep.Emit(Event{Type: EventChange, Phase: phase, Object: object, Message: msg})
}

// ---- handover ----

type handoverPhase struct{ s *state }

func (p *handoverPhase) Name() string { return PhaseHandover }
func (p *handoverPhase) Title() string {
	return "waiting for Flux to take over: GitRepository flux-system, the Kustomizations and HelmReleases, the core workloads"
}

// targets are the hand-over checks: the Git source at its latest revision, every Flux
// Kustomization and HelmRelease of the cluster's tree Ready, and the core workloads rolled out.
func (p *handoverPhase) targets(ctx context.Context, token string) ([]target, error) {
	s := p.s
	tree, err := s.Tree(ctx)
	if err != nil {
		return nil, err
	}
	gitReady := both(fluxReady, func(u *unstructured.Unstructured) (bool, string) {
		rev, _, _ := unstructured.NestedString(u.Object, "status", "artifact", "revision")
		if rev == "" {
			return false, "no artifact yet"
		}
		if token != "" {
			handled, _, _ := unstructured.NestedString(u.Object, "status", "lastHandledReconcileAt")
			if handled != token {
				return false, "fetching the branch head"
			}
		}
		s.gitRevision = rev
		return true, "revision " + rev
	})
	out := []target{{GVK: gvkGitRepository, Namespace: "flux-system", Name: "flux-system", Ready: gitReady}}
	for _, id := range fluxtree.SortedKeys(tree.Kustomizations) {
		ks := tree.Kustomizations[id]
		out = append(out, target{GVK: gvkKustomization, Namespace: ks.GetNamespace(), Name: ks.GetName(), Ready: both(fluxReady, s.appliedSourceRevision)})
	}
	for _, o := range tree.Objects {
		if o.GroupVersionKind().Group == fluxtree.HelmGroup && o.GetKind() == "HelmRelease" {
			out = append(out, target{GVK: gvkHelmRelease, Namespace: o.GetNamespace(), Name: o.GetName(), Ready: fluxReady})
		}
	}
	settings, err := status.Settings(s.opts.Repo, s.cluster)
	if err != nil {
		return nil, err
	}
	workloads, err := status.HandoverWorkloads(s.agent, s.cluster, settings)
	if err != nil {
		return nil, err
	}
	for _, w := range workloads {
		out = append(out, target{GVK: w.GVK, Namespace: w.Namespace, Name: w.Name, Ready: w.Ready})
	}
	if s.opts.FluxInstall == InstallHelm {
		out = append(out, target{GVK: gvkFluxInstance, Namespace: "flux-system", Name: "flux", Ready: fluxReady})
	}
	return out, nil
}

// appliedSourceRevision: a Kustomization has applied its source's current artifact.
func (s *state) appliedSourceRevision(u *unstructured.Unstructured) (bool, string) {
	kind, _, _ := unstructured.NestedString(u.Object, "spec", "sourceRef", "kind")
	name, _, _ := unstructured.NestedString(u.Object, "spec", "sourceRef", "name")
	ns, _, _ := unstructured.NestedString(u.Object, "spec", "sourceRef", "namespace")
	if ns == "" {
		ns = u.GetNamespace()
	}
	applied, _, _ := unstructured.NestedString(u.Object, "status", "lastAppliedRevision")
	if kind != "GitRepository" {
		return applied != "", "applied " + applied
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	src, err := s.k.get(ctx, gvkGitRepository, ns, name)
	if err != nil {
		return false, "source GitRepository " + ns + "/" + name + ": " + err.Error()
	}
	rev, _, _ := unstructured.NestedString(src.Object, "status", "artifact", "revision")
	if rev == "" || applied != rev {
		return false, fmt.Sprintf("applied revision %q, source is at %q", applied, rev)
	}
	return true, "applied " + applied
}

func (p *handoverPhase) Done(ctx context.Context) (bool, string, error) {
	t, err := p.targets(ctx, "")
	if err != nil {
		return false, "", err
	}
	return p.s.allReady(ctx, t)
}

func (p *handoverPhase) Run(ctx context.Context) error {
	s := p.s
	token := ""
	if !s.opts.DryRun {
		// Ask source-controller to fetch now, as `flux reconcile source git` does: Ready
		// for this token means the artifact is the branch head as of this run.
		token = s.now().UTC().Format(time.RFC3339Nano)
		patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, requestedAtAnnKey, token)
		err := s.k.patchMerge(ctx, gvkGitRepository, "flux-system", "flux-system", []byte(patch), false)
		if apierrors.IsNotFound(err) || isNoMatch(err) {
			token = "" // not created yet: its first fetch is the head
		} else if err != nil {
			return fmt.Errorf("requesting a reconcile of GitRepository flux-system/flux-system: %w", err)
		}
	}
	t, err := p.targets(ctx, token)
	if err != nil {
		return err
	}
	return s.waitTargets(ctx, PhaseHandover, t)
}

// ---- record ----

type recordPhase struct{ s *state }

func (p *recordPhase) Name() string { return PhaseRecord }
func (p *recordPhase) Title() string {
	return "recording the hand-over in ConfigMap " + MarkerNamespace + "/" + MarkerName
}

// Done when the marker exists and nothing had to be (re)done in this run.
func (p *recordPhase) Done(context.Context) (bool, string, error) {
	if p.s.marker == nil {
		return false, "no marker", nil
	}
	if p.s.ranAny {
		return false, "phases ran in this run", nil
	}
	return true, "marker present", nil
}

func (p *recordPhase) Run(ctx context.Context) error {
	s := p.s
	if s.gitRevision == "" {
		if u, err := s.k.get(ctx, gvkGitRepository, "flux-system", "flux-system"); err == nil {
			s.gitRevision, _, _ = unstructured.NestedString(u.Object, "status", "artifact", "revision")
		}
	}
	phases := map[string]time.Time{}
	for k, v := range s.phaseTimes {
		phases[k] = v
	}
	now := s.now()
	phases[PhaseRecord] = now
	m := &Marker{
		Cluster: s.cluster.Name, ClusterUID: s.uid, Versions: s.versions, GitRevision: s.gitRevision,
		FluxInstall: s.opts.FluxInstall, Phases: phases, HandedOverAt: now,
	}
	obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(m.ConfigMap())
	if err != nil {
		return err
	}
	u := &unstructured.Unstructured{Object: obj}
	unstructured.RemoveNestedField(u.Object, "metadata", "creationTimestamp")
	// Apply replaces the keys the agent owns: a re-run's marker drops stale phase times.
	res, err := s.k.apply(ctx, u, s.opts.DryRun)
	if err != nil {
		return err
	}
	s.change(PhaseRecord, "ConfigMap "+MarkerNamespace+"/"+MarkerName, res, "git revision "+s.gitRevision)
	return nil
}

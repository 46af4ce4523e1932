package agent

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/bootcore-dev/bootcore/internal/fluxtree"
	"github.com/bootcore-dev/bootcore/internal/kube"
	"github.com/bootcore-dev/bootcore/internal/spec"
)

// prerequisitesPhase creates what must exist before Flux: the namespaces of agent.namespaces
// and the bootstrap Secrets of agent.secrets (the 1Password Connect token, Git credentials).
type prerequisitesPhase struct {
	env
	// secrets are the bootstrap Secrets with their values, read by Prepare; nil until then.
	secrets []*corev1.Secret
	values  [][]byte
}

func (p *prerequisitesPhase) Name() string { return PhasePrerequisites }
func (p *prerequisitesPhase) Title() string {
	secrets := make([]string, 0, len(p.agent.Secrets))
	for _, sec := range p.agent.Secrets {
		secrets = append(secrets, sec.Name)
	}
	if len(secrets) == 0 {
		secrets = []string{"none"}
	}
	return fmt.Sprintf("creating namespaces (%s) and bootstrap Secrets (%s)", strings.Join(p.agent.Namespaces, ", "), strings.Join(secrets, ", "))
}

// secretValues are the values read, for the support bundle to redact.
func (p *prerequisitesPhase) secretValues() [][]byte { return p.values }

// Prepare reads the bootstrap Secrets' values and checks the Git credentials against the
// GitRepository that uses them.
func (p *prerequisitesPhase) Prepare(ctx context.Context) error {
	secrets, values, err := resolveSecrets(osSourcesWith(p.opts.Repo, p.opts.Getenv), p.agent.Secrets)
	if err != nil {
		return err
	}
	p.secrets, p.values = secrets, values

	repo, ok := p.tree.Get(fluxtree.SourceGroup, "GitRepository", "flux-system", "flux-system")
	if !ok {
		return &InputError{Err: fmt.Errorf("%s: no GitRepository flux-system/flux-system (the Flux entry's source)", p.cluster.FluxSystem)}
	}
	secretName, _, _ := unstructured.NestedString(repo.Object, "spec", "secretRef", "name")
	if secretName == "" {
		return nil
	}
	url, _, _ := unstructured.NestedString(repo.Object, "spec", "url")
	for _, sec := range p.secrets {
		if sec.Namespace == "flux-system" && sec.Name == secretName {
			return checkGitSecret("flux-system/flux-system", url, sec)
		}
	}
	if _, err := p.k.Clientset.CoreV1().Secrets("flux-system").Get(ctx, secretName, metav1.GetOptions{}); err == nil {
		return nil // created earlier, e.g. by hand: Flux can use it
	}
	return &InputError{Err: fmt.Errorf("GitRepository flux-system/flux-system (%s) reads Secret flux-system/%s, which is neither in the cluster nor in agent.secrets of %s",
		p.tree.Locate("GitRepository", "flux-system"), secretName, spec.DefaultPath)}
}

func (p *prerequisitesPhase) Done(ctx context.Context) (Outcome[struct{}], error) {
	no := func(why string) (Outcome[struct{}], error) { return Outcome[struct{}]{Why: why}, nil }
	for _, ns := range p.agent.Namespaces {
		if _, err := p.k.Clientset.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); apierrors.IsNotFound(err) {
			return no("Namespace " + ns + " missing")
		} else if err != nil {
			return Outcome[struct{}]{}, err
		}
	}
	for _, want := range p.agent.Secrets {
		ns, name := spec.SplitName(want.Name)
		live, err := p.k.Clientset.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return no("Secret " + want.Name + " missing")
		}
		if err != nil {
			return Outcome[struct{}]{}, err
		}
		for k := range want.Data {
			if len(live.Data[k]) == 0 {
				return no(fmt.Sprintf("Secret %s has no key %s", want.Name, k))
			}
		}
		// With the inputs at hand (prepared), a changed value re-applies the Secret; without
		// them (the run-once check) the keys being there is enough.
		for _, sec := range p.secrets {
			if sec.Namespace == ns && sec.Name == name && !sameData(sec.Data, live.Data) {
				return no("Secret " + want.Name + " differs from its inputs")
			}
		}
	}
	return Outcome[struct{}]{Done: true, Why: fmt.Sprintf("%d namespaces and %d Secrets present", len(p.agent.Namespaces), len(p.agent.Secrets))}, nil
}

func sameData(want, live map[string][]byte) bool {
	for k, v := range want {
		if !bytes.Equal(live[k], v) {
			return false
		}
	}
	return true
}

func (p *prerequisitesPhase) Run(ctx context.Context) (struct{}, error) {
	return struct{}{}, p.apply(ctx, false)
}

func (p *prerequisitesPhase) DryRun(ctx context.Context) (struct{}, error) {
	return struct{}{}, p.apply(ctx, true)
}

func (p *prerequisitesPhase) apply(ctx context.Context, dryRun bool) error {
	var objs []*unstructured.Unstructured
	details := map[string]string{}
	for _, ns := range p.agent.Namespaces {
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(kube.Namespace)
		u.SetName(ns)
		objs = append(objs, u)
		details[kube.DescribeObject(u)] = ""
	}
	for _, sec := range p.secrets {
		obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(sec)
		if err != nil {
			return err
		}
		u := &unstructured.Unstructured{Object: obj}
		unstructured.RemoveNestedField(u.Object, "metadata", "creationTimestamp")
		objs = append(objs, u)
		keys := make([]string, 0, len(sec.Data))
		for k := range sec.Data {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		details[kube.DescribeObject(u)] = "keys " + strings.Join(keys, ", ")
	}
	// The apply's errors are the API server's; they do not echo Secret values.
	return p.applyObjects(ctx, PhasePrerequisites, objs, dryRun, details)
}

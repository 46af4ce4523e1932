package agent

import (
	"context"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/bootcore-dev/bootcore/internal/kube"
)

// handoverFacts are what the hand-over reached: the Git revision Flux applied.
type handoverFacts struct {
	revision string
}

// handoverPhase waits until Flux has taken over: GitRepository flux-system at the branch head,
// every Kustomization and HelmRelease of the cluster's tree Ready, the core workloads rolled
// out (status.Required's Handover list).
type handoverPhase struct{ env }

var gitSource = kube.Ref{GVK: kube.GitRepository, Namespace: "flux-system", Name: "flux-system"}

const requestedAtAnnotation = "reconcile.fluxcd.io/requestedAt"

func (p *handoverPhase) Name() string { return PhaseHandover }
func (p *handoverPhase) Title() string {
	return "waiting for Flux to take over: GitRepository flux-system, the Kustomizations and HelmReleases, the core workloads"
}

// targets are the Required list, the Git source held to its fetch of this run (token) when
// there is one.
func (p *handoverPhase) targets(token string) []kube.Target {
	out := make([]kube.Target, 0, len(p.required.Handover))
	for _, t := range p.required.Handover {
		if t.Ref == gitSource {
			t.Ready = kube.All(kube.Flux, fetchedAt(token))
		}
		out = append(out, t)
	}
	return out
}

// fetchedAt: the source has an artifact and, with a token, handled the reconcile request
// carrying it (so its artifact is the branch head as of this run).
func fetchedAt(token string) kube.Readiness {
	return func(u *unstructured.Unstructured, _ kube.Lookup) (bool, string) {
		rev := revisionOf(u)
		if rev == "" {
			return false, "no artifact yet"
		}
		if token != "" {
			if handled, _, _ := unstructured.NestedString(u.Object, "status", "lastHandledReconcileAt"); handled != token {
				return false, "fetching the branch head"
			}
		}
		return true, "revision " + rev
	}
}

func revisionOf(u *unstructured.Unstructured) string {
	rev, _, _ := unstructured.NestedString(u.Object, "status", "artifact", "revision")
	return rev
}

func (p *handoverPhase) Done(ctx context.Context) (Outcome[handoverFacts], error) {
	var facts handoverFacts
	for _, st := range p.k.Read(ctx, p.targets("")) {
		if st.Err != nil {
			return Outcome[handoverFacts]{}, st.Err
		}
		if !st.Ready {
			return Outcome[handoverFacts]{Why: st.String() + ": " + st.Message}, nil
		}
		if st.Ref == gitSource {
			facts.revision = revisionOf(st.Object)
		}
	}
	return Outcome[handoverFacts]{Done: true, Why: fmt.Sprintf("%d objects Ready", len(p.required.Handover)), Facts: facts}, nil
}

func (p *handoverPhase) DryRun(ctx context.Context) (handoverFacts, error) {
	return handoverFacts{}, p.wouldWait(ctx, PhaseHandover, p.targets(""))
}

func (p *handoverPhase) Run(ctx context.Context) (handoverFacts, error) {
	// Ask source-controller to fetch now, as `flux reconcile source git` does: Ready for this
	// token means the artifact is the branch head as of this run.
	token := time.Now().UTC().Format(time.RFC3339Nano)
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, requestedAtAnnotation, token)
	err := p.k.MergePatch(ctx, gitSource, []byte(patch), false)
	if apierrors.IsNotFound(err) || meta.IsNoMatchError(err) {
		token = "" // not created yet: its first fetch is the head
	} else if err != nil {
		return handoverFacts{}, fmt.Errorf("requesting a reconcile of %s: %w", gitSource, err)
	}
	if err := p.wait(ctx, PhaseHandover, p.targets(token)); err != nil {
		return handoverFacts{}, err
	}
	src, err := p.k.Get(ctx, gitSource)
	if err != nil {
		return handoverFacts{}, err
	}
	return handoverFacts{revision: revisionOf(src)}, nil
}

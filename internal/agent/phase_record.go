package agent

import (
	"context"
	"slices"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/bootcore-dev/bootcore/internal/kube"
)

// recordFacts are what the hand-over marker records, from the phases before.
type recordFacts struct {
	clusterUID  string
	versions    map[string]string
	gitRevision string
	finished    map[string]time.Time
}

// recordPhase writes the hand-over marker: which cluster, which versions and Git revision,
// when each phase finished. A later run finding it (and every phase done) writes nothing.
type recordPhase struct {
	env
	// rerun: phases did work in this run, so the marker is written again.
	rerun bool
	facts recordFacts
}

func (p *recordPhase) Name() string { return PhaseRecord }
func (p *recordPhase) Title() string {
	return "recording the hand-over in ConfigMap " + MarkerNamespace + "/" + MarkerName
}

// Done when the marker exists and nothing had to be (re)done in this run.
func (p *recordPhase) Done(ctx context.Context) (Outcome[struct{}], error) {
	if p.rerun {
		return Outcome[struct{}]{Why: "phases ran in this run"}, nil
	}
	m, err := readMarker(ctx, p.k.Clientset)
	if err != nil || m == nil {
		return Outcome[struct{}]{Why: "no marker"}, err
	}
	return Outcome[struct{}]{Done: true, Why: "marker present"}, nil
}

func (p *recordPhase) Run(ctx context.Context) (struct{}, error) {
	return struct{}{}, p.write(ctx, false)
}

func (p *recordPhase) DryRun(ctx context.Context) (struct{}, error) {
	return struct{}{}, p.write(ctx, true)
}

func (p *recordPhase) write(ctx context.Context, dryRun bool) error {
	rev := p.facts.gitRevision
	if rev == "" {
		if u, err := p.k.Get(ctx, gitSource); err == nil {
			rev = revisionOf(u)
		}
	}
	now := time.Now()
	phases := map[string]time.Time{PhaseRecord: now}
	for name, at := range p.facts.finished {
		if slices.Contains(PhaseNames, name) {
			phases[name] = at
		}
	}
	m := &Marker{
		Cluster: p.cluster.Name, ClusterUID: p.facts.clusterUID, Versions: p.facts.versions, GitRevision: rev,
		FluxInstall: p.opts.FluxInstall, Phases: phases, HandedOverAt: now,
	}
	obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(m.ConfigMap())
	if err != nil {
		return err
	}
	u := &unstructured.Unstructured{Object: obj}
	unstructured.RemoveNestedField(u.Object, "metadata", "creationTimestamp")
	// The apply replaces the keys the agent owns: a re-run's marker drops stale phase times.
	return p.applyObjects(ctx, PhaseRecord, []*unstructured.Unstructured{u}, dryRun, map[string]string{kube.DescribeObject(u): "git revision " + rev})
}

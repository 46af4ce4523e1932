package agent

import (
	"bytes"
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bootcore-dev/bootcore/internal/spec"
)

// The marker records what the phases before handed on; a dry run writes none; a re-run's
// marker replaces the last one's phase times rather than adding to them; and once written,
// the check passes unless phases ran again in this run.
func TestRecordWritesTheHandOverMarker(t *testing.T) {
	_, k := onBed(t, "record")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := k.Clientset.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: MarkerNamespace}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	installed := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	phase := func(rerun bool, finished map[string]time.Time) *recordPhase {
		in := &inputs{opts: Options{FluxInstall: InstallHelm}, cluster: spec.Cluster{Name: "infra"}}
		return &recordPhase{env: env{inputs: in, k: k, rep: NewReporter(&bytes.Buffer{}, true)}, rerun: rerun, facts: recordFacts{
			clusterUID: "uid-1", versions: map[string]string{"flux-operator": "0.49.0"}, gitRevision: "main@sha1:0123abcd", finished: finished,
		}}
	}

	first := phase(true, map[string]time.Time{PhaseInstallFlux: installed, PhaseLock: installed})
	if out, err := first.Done(ctx); err != nil || out.Done || out.Why != "phases ran in this run" {
		t.Fatalf("check with phases run: %+v, %v", out, err)
	}
	if out, err := phase(false, nil).Done(ctx); err != nil || out.Done || out.Why != "no marker" {
		t.Fatalf("check without a marker: %+v, %v", out, err)
	}
	if _, err := first.DryRun(ctx); err != nil {
		t.Fatal(err)
	}
	if m, err := readMarker(ctx, k.Clientset); err != nil || m != nil {
		t.Fatalf("the dry run wrote a marker: %+v, %v", m, err)
	}

	if _, err := first.Run(ctx); err != nil {
		t.Fatal(err)
	}
	m, err := readMarker(ctx, k.Clientset)
	if err != nil || m == nil {
		t.Fatalf("marker: %+v, %v", m, err)
	}
	if m.Cluster != "infra" || m.ClusterUID != "uid-1" || m.GitRevision != "main@sha1:0123abcd" || m.FluxInstall != InstallHelm || m.Versions["flux-operator"] != "0.49.0" {
		t.Errorf("marker = %+v", m)
	}
	// The lock is not a hand-over phase: a later run's skip logic never looks for it.
	if !m.Phases[PhaseInstallFlux].Equal(installed) || m.Phases[PhaseRecord].IsZero() || !m.Phases[PhaseLock].IsZero() {
		t.Errorf("phases = %v, want install-flux at %s and record, not lock", m.Phases, installed)
	}
	if out, err := phase(false, nil).Done(ctx); err != nil || !out.Done {
		t.Fatalf("check after the run: %+v, %v", out, err)
	}

	handedOver := installed.Add(time.Minute)
	if _, err := phase(true, map[string]time.Time{PhaseHandover: handedOver}).Run(ctx); err != nil {
		t.Fatal(err)
	}
	m, err = readMarker(ctx, k.Clientset)
	if err != nil || m == nil {
		t.Fatalf("marker: %+v, %v", m, err)
	}
	if _, stale := m.Phases[PhaseInstallFlux]; stale || !m.Phases[PhaseHandover].Equal(handedOver) {
		t.Errorf("re-run's phases = %v, want handover only (and record)", m.Phases)
	}
}

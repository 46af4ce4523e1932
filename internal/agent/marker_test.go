package agent

import (
	"context"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes/fake"
)

func TestMarkerRoundTrip(t *testing.T) {
	at := time.Date(2026, 11, 27, 3, 4, 5, 0, time.UTC)
	m := &Marker{Cluster: "infra", ClusterUID: "u", GitRevision: "main@sha1:abc", FluxInstall: "helm",
		Versions: map[string]string{"bootcore": "v1", "chart.flux-operator": "0.58.1"},
		Phases:   map[string]time.Time{PhaseHandover: at}, HandedOverAt: at}
	c := fake.NewClientset(m.ConfigMap())
	got, err := readMarker(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if got.Cluster != "infra" || got.GitRevision != "main@sha1:abc" || !got.Phases[PhaseHandover].Equal(at) ||
		got.Versions["chart.flux-operator"] != "0.58.1" || !got.HandedOverAt.Equal(at) {
		t.Errorf("marker = %+v", got)
	}
	if none, err := readMarker(context.Background(), fake.NewClientset()); none != nil || err != nil {
		t.Errorf("no marker: %v, %v", none, err)
	}
	bad := m.ConfigMap()
	bad.Data["phase.x"] = "yesterday"
	if _, err := readMarker(context.Background(), fake.NewClientset(bad)); err == nil || !strings.Contains(err.Error(), "phase.x") {
		t.Errorf("bad phase time: %v", err)
	}
}

package agent

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/bootcore-dev/bootcore/integration/testbed"
	"github.com/bootcore-dev/bootcore/internal/spec"
)

// restConfig connects with a config in hand (the bed's admin credentials).
type restConfig struct{ cfg *rest.Config }

func (r restConfig) Connect(context.Context) (*rest.Config, error) { return r.cfg, nil }
func (r restConfig) Describe() string                              { return "the bed's admin config" }

// connect names the cluster it reached and refuses another one: an API server at another
// address than the spec's endpoint, or a cluster whose hand-over marker names another cluster
// (the guard), unless --force, which only warns.
func TestConnectRefusesTheWrongCluster(t *testing.T) {
	c := testbed.StartT(t, testbed.Options{Name: "connect", ControlPlanes: 1, Workers: -1})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	connect := func(endpoint string, force bool) (connection, *Reporter, error) {
		rep := NewReporter(&bytes.Buffer{}, true)
		in := &inputs{opts: Options{Connector: restConfig{c.Config}, Force: force}, cluster: spec.Cluster{Name: "infra", Endpoint: endpoint}}
		conn, err := (&connectPhase{in: in, rep: rep}).Run(ctx)
		return conn, rep, err
	}

	conn, rep, err := connect(c.Config.Host, false)
	if err != nil {
		t.Fatal(err)
	}
	ns, err := conn.k.Clientset.CoreV1().Namespaces().Get(ctx, metav1.NamespaceSystem, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if conn.uid != string(ns.UID) || conn.marker != nil || !strings.HasPrefix(conn.versions["kubernetes"], "v1.") {
		t.Errorf("connection: uid %q (kube-system %q), marker %+v, versions %v", conn.uid, ns.UID, conn.marker, conn.versions)
	}
	if !hasMessage(rep, "is cluster infra (kube-system UID "+conn.uid+")") {
		t.Errorf("events: %+v", rep.Events())
	}

	var wrong *WrongClusterError
	if _, _, err := connect("https://10.0.0.1:6443", false); !errors.As(err, &wrong) || !strings.Contains(err.Error(), "endpoint in the spec is 10.0.0.1:6443") {
		t.Errorf("other endpoint: %v", err)
	}

	if _, err := conn.k.Clientset.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: MarkerNamespace}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	apps := &Marker{Cluster: "apps", ClusterUID: conn.uid, HandedOverAt: time.Now()}
	if _, err := conn.k.Clientset.CoreV1().ConfigMaps(MarkerNamespace).Create(ctx, apps.ConfigMap(), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := connect(c.Config.Host, false); !errors.As(err, &wrong) || !strings.Contains(err.Error(), `records cluster "apps", not "infra"`) {
		t.Errorf("cluster handed over as apps: %v", err)
	}
	forced, rep, err := connect(c.Config.Host, true)
	if err != nil || forced.marker == nil || forced.marker.Cluster != "apps" {
		t.Fatalf("--force: %+v, %v", forced, err)
	}
	if !hasMessage(rep, "(--force: going on anyway)") {
		t.Errorf("--force gave no warning: %+v", rep.Events())
	}
}

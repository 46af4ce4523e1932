package status

import (
	"bytes"
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"
)

func parse(t *testing.T, doc string) *unstructured.Unstructured {
	t.Helper()
	// As the API server's JSON decodes: integers are int64.
	data, err := yaml.YAMLToJSON([]byte("apiVersion: v1\nkind: Test\n" + doc))
	if err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(data); err != nil {
		t.Fatal(err)
	}
	return u
}

// The Secret a store's provider needs is found wherever the provider keeps its references, in
// the store's namespace unless the reference names one.
func TestSecretRefs(t *testing.T) {
	store := parse(t, `
spec:
  provider:
    onepassword:
      connectHost: http://connect:8080
      auth:
        secretRef:
          connectTokenSecretRef: {name: onepassword-connect, namespace: external-secrets, key: token}
    aws:
      auth:
        secretRef:
          accessKeyIDSecretRef: {name: aws, key: id}
`)
	provider, _, _ := unstructured.NestedMap(store.Object, "spec", "provider")
	var got []string
	for _, r := range SecretRefs(provider, "apps") {
		got = append(got, r.Namespace+"/"+r.Name+" "+r.Path)
	}
	want := "apps/aws aws.auth.secretRef.accessKeyIDSecretRef, external-secrets/onepassword-connect onepassword.auth.secretRef.connectTokenSecretRef"
	if strings.Join(got, ", ") != want {
		t.Errorf("refs = %v, want %s", got, want)
	}
}

func TestPrintTable(t *testing.T) {
	r := &Report{Cluster: "infra", Server: "https://10.0.0.10:6443", Checks: []Check{
		{Name: "DaemonSet kube-system/cilium", Ready: true, Message: "Current: All replicas scheduled as expected. Replicas: 3"},
		{Name: "ClusterSecretStore onepassword", Message: "missing Secret external-secrets/onepassword-connect"},
	}}
	var b bytes.Buffer
	r.PrintTable(&b)
	want := `NAME                            READY  MESSAGE
DaemonSet kube-system/cilium    true   Current: All replicas scheduled as expected. Replicas: 3
ClusterSecretStore onepassword  false  missing Secret external-secrets/onepassword-connect
cluster infra (https://10.0.0.10:6443): 1 of 2 checks not Ready
`
	if b.String() != want {
		t.Errorf("table:\n%s\nwant\n%s", b.String(), want)
	}
}

// A cluster that does not answer is an UnreachableError (exit 3), not a failed check; a
// cluster the spec does not name is a spec error naming the file.
func TestUnreachableAndUnknownCluster(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there any more
	cfg := &rest.Config{Host: "https://" + addr, Timeout: 5 * time.Second}
	const lab = "../../integration/testdata/lab"
	k, err := NewChecker(context.Background(), lab, "infra", cfg)
	if err != nil {
		t.Fatal(err)
	}
	r, err := k.Run(context.Background())
	if r != nil || !IsUnreachable(err) || !strings.Contains(err.Error(), addr) {
		t.Errorf("report %v, error %v; want an UnreachableError naming %s", r, err, addr)
	}
	if _, err := NewChecker(context.Background(), lab, "staging", cfg); err == nil || !strings.Contains(err.Error(), `no cluster "staging"`) || !strings.Contains(err.Error(), "bootstrap/bootcore.yaml") {
		t.Errorf("unknown cluster: %v", err)
	}
}

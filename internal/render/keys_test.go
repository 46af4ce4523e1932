package render

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"testing"

	"helm.sh/helm/v3/pkg/chart/loader"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Defect 3 of issue 13: External Secrets (>= 2.1) quotes "-----BEGIN PRIVATE KEY-----" in its
// CRDs' field descriptions. That is no key: PrivateKey finds none in any of the 25 real CRDs,
// while a real key is found in clear or base64, wherever it sits.
func TestPrivateKeyParsesPEM(t *testing.T) {
	ch, err := loader.Load(upstreamCharts + "external-secrets-2.9.0.tgz")
	if err != nil {
		t.Fatal(err)
	}
	res, err := RenderRelease(Input{Chart: ch, ReleaseName: "external-secrets", Namespace: "external-secrets", KubeVersion: "1.35.4", Values: map[string]any{"installCRDs": true}})
	if err != nil {
		t.Fatal(err)
	}
	crds, quoting := 0, 0
	for _, o := range res.Objects {
		if o.GetKind() != "CustomResourceDefinition" {
			continue
		}
		crds++
		data, err := Encode([]*unstructured.Unstructured{o.Unstructured})
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(data, []byte("-----BEGIN PRIVATE KEY-----")) {
			quoting++
		}
		if field, ok := PrivateKey(o.Object); ok {
			t.Errorf("CRD %s: a private key reported at %s", o.GetName(), field)
		}
	}
	if crds != 25 || quoting == 0 {
		t.Fatalf("%d CRDs, %d quoting the PEM marker; the test needs the real chart's 25 and the quote", crds, quoting)
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	block := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	for name, obj := range map[string]map[string]any{
		"clear":  {"kind": "ConfigMap", "data": map[string]any{"tls.key": "prefix text\n" + block}},
		"base64": {"kind": "ConfigMap", "binaryData": map[string]any{"k": base64.StdEncoding.EncodeToString([]byte(block))}},
		"list":   {"kind": "Pod", "spec": map[string]any{"env": []any{map[string]any{"value": block}}}},
	} {
		if _, ok := PrivateKey(obj); !ok {
			t.Errorf("%s: the private key is not found", name)
		}
	}
	if field, ok := PrivateKey(map[string]any{"data": map[string]any{"x": block}}); !ok || field != "data.x" {
		t.Errorf("field = %q, want data.x", field)
	}
}

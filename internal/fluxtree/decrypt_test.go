package fluxtree

import (
	"testing"

	kyaml "sigs.k8s.io/kustomize/kyaml/yaml"
)

// isSOPS answers from the top-level keys when it can; it must agree with kustomize-controller's
// test on the decoded object (sops metadata with a mac) for every way a "sops" key can get
// into the object.
func TestIsSOPSIsTheDecodedTest(t *testing.T) {
	decoded := func(doc string) bool {
		n, err := kyaml.Parse(doc)
		if err != nil {
			t.Fatal(err)
		}
		m, err := n.Map()
		if err != nil {
			return false
		}
		meta, ok := m["sops"].(map[string]any)
		return ok && meta["mac"] != nil
	}
	const secret = "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\n"
	for _, doc := range []string{
		secret + "data: {a: b}\n",
		secret + "sops: {mac: \"ENC[x]\", age: []}\n",
		secret + "sops: {age: []}\n",
		secret + "sops: {mac: null}\n",
		secret + "sops: [mac]\n",
		secret + "\"sops\": {mac: x}\n",
		secret + "!!str sops: {mac: x}\n",
		"base: &b {sops: {mac: x}}\n<<: *b\n" + secret,
		"base: &b {mac: x}\n" + secret + "sops: *b\n",
		"k: &k sops\n" + secret + "*k : {mac: x}\n",
		"k: &k other\n" + secret + "*k : {mac: x}\n",
	} {
		n, err := kyaml.Parse(doc)
		if err != nil {
			t.Fatal(err)
		}
		res, err := resourceFactory.ResourcesFromRNodes([]*kyaml.RNode{n})
		if err != nil || len(res) != 1 {
			t.Fatal(err, len(res))
		}
		if got, want := isSOPS(res[0]), decoded(doc); got != want {
			t.Errorf("isSOPS = %v, the decoded test says %v:\n%s", got, want, doc)
		}
	}
}

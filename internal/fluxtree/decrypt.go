package fluxtree

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"

	"sigs.k8s.io/kustomize/api/provider"
	"sigs.k8s.io/kustomize/api/resource"
	kyaml "sigs.k8s.io/kustomize/kyaml/yaml"
	"sigs.k8s.io/yaml"

	"github.com/bootcore-dev/bootcore/internal/sopsage"
)

var resourceFactory = provider.NewDefaultDepProvider().GetResourceFactory()

func resourceFromMap(m map[string]any) (*resource.Resource, error) {
	return resourceFactory.FromMap(m)
}

// isSOPS says the built object carries SOPS metadata (kustomize-controller's test).
func isSOPS(res *resource.Resource) bool {
	// The test decodes the whole object for one top-level key, for every object of the tree.
	// A mapping none of whose keys is "sops", a merge key or an alias (either could bring a
	// "sops" key in) decodes without one: not SOPS.
	if n := res.YNode(); n != nil && n.Kind == kyaml.MappingNode {
		candidate := false
		for i := 0; i < len(n.Content); i += 2 {
			if k := n.Content[i]; k.Value == "sops" || k.Value == "<<" || k.Kind == kyaml.AliasNode {
				candidate = true
				break
			}
		}
		if !candidate {
			return false
		}
	}
	m, err := res.Map()
	if err != nil {
		return false
	}
	meta, ok := m["sops"].(map[string]any)
	return ok && meta["mac"] != nil
}

// stripSOPS returns the object without its sops metadata and encrypted values: the object
// as its kind and name, whose values only the cluster knows.
func stripSOPS(res *resource.Resource) map[string]any {
	m, _ := res.Map()
	delete(m, "sops")
	delete(m, "data")
	delete(m, "stringData")
	return m
}

// decryptSOPS decrypts a SOPS-encrypted object with the age key given in SOPS_AGE_KEY or
// SOPS_AGE_KEY_FILE, as kustomize-controller decrypts it with the key of spec.decryption.
// Without a key it returns nil: the object is decrypted in-cluster only. The object as built
// is tried first; when kustomize changed it (a namespace, labels: the MAC covers them), the
// document of the repository file that declares it.
func (t *Tree) decryptSOPS(res *resource.Resource) (map[string]any, error) {
	if !t.decrypt {
		return nil, nil
	}
	data, err := res.AsYAML()
	if err != nil {
		return nil, err
	}
	m, err := sopsage.Decrypt(data)
	if err == nil {
		return m, nil
	}
	// This runs off the walk's goroutine: only the file index's declarations (written once,
	// from the snapshot) are read, not the walked directories.
	t.files.declarations()
	candidates := t.files.where[res.GetKind()+"/"+res.GetName()]
	for _, f := range candidates {
		if doc := t.sourceDocument(f, res.GetKind(), res.GetName()); doc != nil {
			if m, ferr := sopsage.Decrypt(doc); ferr == nil {
				m["metadata"] = mustMap(res)["metadata"] // what kustomize set (namespace, labels) stays
				return m, nil
			}
		}
	}
	file := "file unknown"
	if len(candidates) > 0 {
		file = candidates[0]
	}
	return nil, &sopsError{fmt.Errorf("%s %s (%s): SOPS decryption with the age key of SOPS_AGE_KEY/SOPS_AGE_KEY_FILE: %w", res.GetKind(), res.GetName(), file, err)}
}

// sopsError is a decryption problem (reported as a tree problem, not a substitution one).
type sopsError struct{ err error }

func (e *sopsError) Error() string { return e.err.Error() }
func (e *sopsError) Unwrap() error { return e.err }

func mustMap(res *resource.Resource) map[string]any {
	m, _ := res.Map()
	return m
}

// sourceDocument returns the YAML document of file that declares kind/name.
func (t *Tree) sourceDocument(file, kind, name string) []byte {
	data, err := os.ReadFile(filepath.Join(t.abs, filepath.FromSlash(file)))
	if err != nil {
		return nil
	}
	for _, doc := range bytes.Split(data, []byte("\n---")) {
		var meta struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
		}
		if yaml.Unmarshal(doc, &meta) == nil && meta.Kind == kind && meta.Metadata.Name == name {
			return doc
		}
	}
	return nil
}

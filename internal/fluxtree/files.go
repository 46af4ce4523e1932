package fluxtree

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"
)

var clientScheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	_ = corev1.AddToScheme(s)
	return s
}()

func fromUnstructured(u *unstructured.Unstructured, obj client.Object) error {
	return runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, obj)
}

// fileIndex remembers which repository file declares which kind/name, because kustomize
// builds lose the origin and users need file names in error messages.
type fileIndex struct {
	root  string
	where map[string]string // "Kind/name" -> path relative to root
}

func indexFiles(root string) (*fileIndex, error) {
	idx := &fileIndex{root: root, where: map[string]string{}}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != root && strings.HasPrefix(d.Name(), ".") {
				return filepath.SkipDir
			}
			return nil
		}
		if ext := filepath.Ext(p); ext != ".yaml" && ext != ".yml" {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		for _, doc := range bytes.Split(data, []byte("\n---")) {
			var meta struct {
				Kind     string `json:"kind"`
				Metadata struct {
					Name string `json:"name"`
				} `json:"metadata"`
			}
			if yaml.Unmarshal(doc, &meta) != nil || meta.Kind == "" {
				continue // templates and non-Kubernetes YAML are not indexed
			}
			key := meta.Kind + "/" + meta.Metadata.Name
			if _, ok := idx.where[key]; !ok {
				idx.where[key] = rel
			}
		}
		return nil
	})
	return idx, err
}

func (f *fileIndex) locateKind(kind, name string) string {
	if p, ok := f.where[kind+"/"+name]; ok {
		return p
	}
	return "file unknown"
}

func (f *fileIndex) locate(u *unstructured.Unstructured) string {
	return f.locateKind(u.GetKind(), u.GetName())
}

package fluxtree

import (
	"bytes"
	"path"
	"regexp"
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
	where map[string][]string // "Kind/name" -> paths relative to root
	lines map[string]int      // "path|Kind/name" -> line of the document that declares it
	// walked are the directories Flux Kustomizations built; a declaration inside one of them
	// is preferred over a same-named one elsewhere (e.g. a test fixture inside the repo).
	walked map[string]bool // relative directories; "" or "." is the whole repository
	// unreadable are files and directories (relative) kustomize's in-memory file system refuses.
	unreadable []string
	// remote are the remote entries left out of each kustomization file (by in-memory path).
	remote map[string][]remoteRef
	// ignored are the paths (relative; directories end in "/") not in Flux's artifact, or
	// refused by the in-memory copy.
	ignored []string
}

// ignoredUnder returns gitignore patterns, anchored at dir, for what the snapshot left out
// below dir.
func (f *fileIndex) ignoredUnder(dir string) string {
	var b strings.Builder
	prefix := dir + "/"
	if dir == "" || dir == "." {
		prefix = ""
	}
	for _, p := range f.ignored {
		if strings.HasPrefix(p, prefix) {
			b.WriteString("/" + strings.TrimPrefix(p, prefix) + "\n")
		}
	}
	return b.String()
}

// add indexes the documents of one YAML file (path relative to the repository root).
func (idx *fileIndex) add(rel string, data []byte) {
	line := 1
	for i, doc := range bytes.Split(data, []byte("\n---")) {
		if i > 0 {
			line++ // the separator's own line
		}
		docLine := line
		line += bytes.Count(doc, []byte("\n"))
		var meta struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
		}
		if yaml.Unmarshal(doc, &meta) != nil || meta.Kind == "" {
			if i == 0 && isKustomizationFile(path.Base(rel)) {
				idx.addGenerators(rel, data)
			}
			continue // templates and non-Kubernetes YAML are not indexed
		}
		if meta.Kind == "Kustomization" && isKustomizationFile(path.Base(rel)) {
			idx.addGenerators(rel, data)
		}
		key := meta.Kind + "/" + meta.Metadata.Name
		idx.where[key] = append(idx.where[key], rel)
		if _, seen := idx.lines[rel+"|"+key]; !seen {
			idx.lines[rel+"|"+key] = docLine + leadingLines(doc, i > 0)
		}
	}
}

// addGenerators indexes the ConfigMaps and Secrets a kustomization file generates, so that a
// generated object is reported at the generator entry that made it.
func (idx *fileIndex) addGenerators(rel string, data []byte) {
	var k struct {
		ConfigMaps []struct {
			Name string `json:"name"`
		} `json:"configMapGenerator"`
		Secrets []struct {
			Name string `json:"name"`
		} `json:"secretGenerator"`
	}
	if yaml.Unmarshal(data, &k) != nil {
		return
	}
	add := func(kind, name string) {
		if name == "" {
			return
		}
		key := kind + "/" + name
		idx.where[key] = append(idx.where[key], rel)
		line := 0
		if i := bytes.Index(data, []byte("name: "+name)); i >= 0 {
			line = bytes.Count(data[:i], []byte("\n")) + 1
		}
		if _, seen := idx.lines[rel+"|"+key]; !seen {
			idx.lines[rel+"|"+key] = line
		}
	}
	for _, g := range k.ConfigMaps {
		add("ConfigMap", g.Name)
	}
	for _, g := range k.Secrets {
		add("Secret", g.Name)
	}
}

// hashSuffix is the content hash kustomize appends to generated ConfigMap and Secret names.
var hashSuffix = regexp.MustCompile(`-[a-z0-9]{10}$`)

func (f *fileIndex) locateKind(kind, name string) string {
	if _, ok := f.where[kind+"/"+name]; !ok && (kind == "ConfigMap" || kind == "Secret") {
		name = hashSuffix.ReplaceAllString(name, "")
	}
	candidates := f.where[kind+"/"+name]
	for _, c := range candidates {
		// Is c inside a walked directory? Look its ancestors up (a tree of thousands of
		// Kustomizations would make a scan of the walked list per lookup quadratic).
		for d := path.Dir(c); ; d = path.Dir(d) {
			if f.walked[d] || d == "." && f.walked[""] {
				return c
			}
			if d == "." || d == "/" {
				break
			}
		}
	}
	if len(candidates) > 0 {
		return candidates[0]
	}
	return "file unknown"
}

func (f *fileIndex) locate(u *unstructured.Unstructured) string {
	return f.locateKind(u.GetKind(), u.GetName())
}

// leadingLines skips the rest of the separator line and blank or comment lines before a document.
func leadingLines(doc []byte, afterSeparator bool) int {
	n := 0
	lines := bytes.Split(doc, []byte("\n"))
	if afterSeparator && len(lines) > 0 {
		lines = lines[1:] // the remainder of the "---" line
		n++
	}
	for _, l := range lines {
		t := bytes.TrimSpace(l)
		if len(t) > 0 && t[0] != '#' && string(t) != "---" {
			break
		}
		n++
	}
	return n
}

// position returns the file and line declaring kind/name (line 0 when unknown).
func (f *fileIndex) position(kind, name string) (string, int) {
	p := f.locateKind(kind, name)
	if _, ok := f.where[kind+"/"+name]; !ok && (kind == "ConfigMap" || kind == "Secret") {
		name = hashSuffix.ReplaceAllString(name, "")
	}
	return p, f.lines[p+"|"+kind+"/"+name]
}

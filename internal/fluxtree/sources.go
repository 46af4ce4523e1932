package fluxtree

import (
	"encoding/base64"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// thisRepository decides which GitRepositories are this repository, as Flux would see it:
// the one the entry reconciles itself from (a Kustomization of the entry whose path holds the
// entry directory, which is therefore read from this repository), the spec's choice (by name,
// or by URL in notThisRepository), and when neither names one, flux-system/flux-system (what flux bootstrap and
// flux-operator create). Another GitRepository with the same URL and ref is the same source;
// the same URL with another branch is not.
func (t *Tree) thisRepository(fluxSystem string) (map[string]bool, map[string]bool) {
	self := map[string]bool{}
	if t.opts.GitRepository != "" {
		self[t.opts.GitRepository] = true
	}
	entry := path.Clean(filepath.ToSlash(fluxSystem))
	for _, o := range t.Objects {
		if o.GroupVersionKind().Group != KustomizeGroup || o.GetKind() != "Kustomization" {
			continue
		}
		p, _, _ := unstructured.NestedString(o.Object, "spec", "path")
		p = strings.TrimPrefix(path.Clean("/"+p), "/")
		if p != "" && p != entry && !strings.HasPrefix(entry+"/", p+"/") {
			continue
		}
		if kind, name, ns := sourceRef(o.Unstructured); kind == "GitRepository" {
			self[ns+"/"+name] = true
		}
	}
	if len(self) == 0 {
		self["flux-system/flux-system"] = true
	}
	// Same URL and ref as a GitRepository named above: the same source (see notThisRepository).
	ids := map[string]bool{}
	for id := range self {
		ns, name, _ := strings.Cut(id, "/")
		if o, ok := t.Get(SourceGroup, "GitRepository", ns, name); ok {
			ids[gitIdentity(o.Unstructured)] = true
		}
	}
	return self, ids
}

// notThisRepository returns why ks is not walked, or "" when its source is this repository.
func (t *Tree) notThisRepository(ks *unstructured.Unstructured) string {
	kind, name, ns := sourceRef(ks)
	id := ns + "/" + name
	switch {
	case kind != "GitRepository":
		return fmt.Sprintf("not walked: source %s %s is not this repository", kind, id)
	case t.self[id]:
		return ""
	}
	o, ok := t.Get(SourceGroup, "GitRepository", ns, name)
	if !ok {
		return fmt.Sprintf("not walked: source GitRepository %s is not in this cluster's tree and is not this repository (set gitRepository in the spec if it is)", id)
	}
	url, _, _ := unstructured.NestedString(o.Object, "spec", "url")
	if t.selfIDs[gitIdentity(o.Unstructured)] || t.opts.URL != "" && normalizeGitURL(url) == normalizeGitURL(t.opts.URL) {
		return ""
	}
	return fmt.Sprintf("not walked: source GitRepository %s (%s %s) is another repository or ref", id, url, gitRef(o.Unstructured))
}

func sourceRef(ks *unstructured.Unstructured) (kind, name, namespace string) {
	kind, _, _ = unstructured.NestedString(ks.Object, "spec", "sourceRef", "kind")
	name, _, _ = unstructured.NestedString(ks.Object, "spec", "sourceRef", "name")
	namespace, _, _ = unstructured.NestedString(ks.Object, "spec", "sourceRef", "namespace")
	if kind == "" {
		kind = "GitRepository"
	}
	if namespace == "" {
		namespace = ks.GetNamespace()
	}
	return kind, name, namespace
}

func gitRef(o *unstructured.Unstructured) string {
	ref, _, _ := unstructured.NestedStringMap(o.Object, "spec", "ref")
	for _, k := range []string{"commit", "name", "semver", "tag", "branch"} {
		if ref[k] != "" {
			return k + " " + ref[k]
		}
	}
	return "default branch"
}

func gitIdentity(o *unstructured.Unstructured) string {
	url, _, _ := unstructured.NestedString(o.Object, "spec", "url")
	return normalizeGitURL(url) + " " + gitRef(o)
}

// normalizeGitURL makes the https, ssh and scp-like spellings of one repository equal.
func normalizeGitURL(u string) string {
	u = strings.ToLower(strings.TrimSpace(u))
	if i := strings.Index(u, "://"); i >= 0 {
		u = u[i+3:]
	} else if at := strings.Index(u, "@"); at >= 0 {
		u = strings.Replace(u[at+1:], ":", "/", 1)
	}
	if at := strings.Index(u, "@"); at >= 0 && at < strings.Index(u+"/", "/") {
		u = u[at+1:]
	}
	return strings.TrimSuffix(strings.TrimSuffix(u, "/"), ".git")
}

// runtimeSecret says why Secret namespace/name exists in-cluster although no Kustomization
// applies it from Git ("" when nothing makes it).
func (t *Tree) runtimeSecret(namespace, name string) string {
	id := namespace + "/" + name
	for _, s := range t.opts.RuntimeSecrets {
		if s == id {
			return "provided at bootstrap (spec)"
		}
	}
	if es := t.externalSecretFor(namespace, name); es != "" {
		return "created by ExternalSecret " + es
	}
	return ""
}

// externalSecretFor names the ExternalSecret of the tree whose target is namespace/name.
func (t *Tree) externalSecretFor(namespace, name string) string {
	for _, o := range t.Objects {
		if o.GetKind() != "ExternalSecret" || o.GetNamespace() != namespace || !strings.HasPrefix(o.GetAPIVersion(), "external-secrets.io/") {
			continue
		}
		target, _, _ := unstructured.NestedString(o.Object, "spec", "target", "name")
		if target == "" {
			target = o.GetName()
		}
		if target == name {
			return namespace + "/" + o.GetName()
		}
	}
	return ""
}

// asServed returns the Secret as the API server would serve it: stringData merged into data.
func asServed(u *unstructured.Unstructured) *unstructured.Unstructured {
	sd, ok, _ := unstructured.NestedStringMap(u.Object, "stringData")
	if !ok {
		return u
	}
	c := u.DeepCopy()
	data, _, _ := unstructured.NestedStringMap(c.Object, "data")
	if data == nil {
		data = map[string]string{}
	}
	for k, v := range sd {
		data[k] = base64.StdEncoding.EncodeToString([]byte(v))
	}
	unstructured.RemoveNestedField(c.Object, "stringData")
	_ = unstructured.SetNestedStringMap(c.Object, data, "data")
	return c
}

// sopsKeyGiven says an age key for SOPS was given (SOPS_AGE_KEY or SOPS_AGE_KEY_FILE), as
// kustomize-controller is given one through spec.decryption.secretRef.
func sopsKeyGiven() bool {
	return os.Getenv("SOPS_AGE_KEY") != "" || os.Getenv("SOPS_AGE_KEY_FILE") != ""
}

// noteOffline records the remote entries left out of the kustomization files the build of ks read.
func (t *Tree) noteOffline(ks *unstructured.Unstructured, read []string) {
	id := ks.GetNamespace() + "/" + ks.GetName()
	seen := map[string]bool{}
	for _, k := range read {
		if seen[k] {
			continue
		}
		seen[k] = true
		krel, _ := filepath.Rel(t.abs, k)
		for _, r := range t.files.remote[k] {
			t.Skipped = append(t.Skipped, Skip{Kustomization: id, File: filepath.ToSlash(krel), Line: r.Line,
				Reason: fmt.Sprintf("needs network: %s is not fetched offline; the rest of the Kustomization is checked", r.URL)})
		}
	}
}

// unreadableIn names a file the in-memory copy refused that err is about, or "".
func (t *Tree) unreadableIn(err error) string {
	msg := err.Error()
	for _, u := range t.files.unreadable {
		if strings.Contains(msg, path.Base(u)) {
			return u
		}
	}
	return ""
}

func hasKustomizationFile(fsys filesys.FileSystem, dir string) bool {
	for _, name := range kustomizationFiles {
		if fsys.Exists(filepath.Join(dir, name)) {
			return true
		}
	}
	return false
}

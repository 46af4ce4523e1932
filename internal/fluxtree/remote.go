package fluxtree

import (
	"bytes"
	"strings"

	"sigs.k8s.io/yaml"
)

// Remote kustomize bases (git URLs) and URL file sources need the network, which kustomize
// would reach by running git or an HTTP client during the build. The walk is offline: it
// leaves such entries out of the kustomization, builds the rest, and reports each left-out
// entry as skipped ("needs network") for the Kustomization whose build read it.

// remoteRef is one left-out entry of a kustomization file.
type remoteRef struct {
	URL  string
	Line int
}

// isRemote mirrors kustomize's reading of an entry it cannot find locally: a URL, an scp-like
// git address or a bare host path of the hosts kustomize knows.
func isRemote(s string) bool {
	if k, v, ok := strings.Cut(s, "="); ok && !strings.Contains(k, "/") {
		s = v // generator file source "key=path"
	}
	return strings.Contains(s, "://") || strings.HasPrefix(s, "git@") ||
		strings.HasPrefix(s, "github.com/") || strings.HasPrefix(s, "gitlab.com/") || strings.HasPrefix(s, "bitbucket.org/")
}

// stripRemote returns the kustomization without its remote entries, and the entries with
// their line in data. data is returned unchanged when it has none (or does not parse:
// kustomize reports that).
func stripRemote(data []byte) ([]byte, []remoteRef) {
	if !bytes.Contains(data, []byte("://")) && !bytes.Contains(data, []byte("git@")) && !bytes.Contains(data, []byte(".com/")) && !bytes.Contains(data, []byte(".org/")) {
		return data, nil
	}
	var k map[string]any
	if yaml.Unmarshal(data, &k) != nil || k == nil {
		return data, nil
	}
	var refs []remoteRef
	drop := func(s string) bool {
		if !isRemote(s) {
			return false
		}
		line := 0
		if i := bytes.Index(data, []byte(s)); i >= 0 {
			line = bytes.Count(data[:i], []byte("\n")) + 1
		}
		refs = append(refs, remoteRef{URL: s, Line: line})
		return true
	}
	filter := func(list any) ([]any, bool) {
		items, ok := list.([]any)
		if !ok {
			return nil, false
		}
		out := items[:0:0]
		changed := false
		for _, it := range items {
			if s, ok := it.(string); ok && drop(s) {
				changed = true
				continue
			}
			out = append(out, it)
		}
		return out, changed
	}
	changed := false
	for _, field := range []string{"resources", "components", "bases", "crds", "patchesStrategicMerge"} {
		if out, ok := filter(k[field]); ok {
			k[field] = out
			changed = true
		}
	}
	if patches, ok := k["patches"].([]any); ok {
		out := patches[:0:0]
		for _, p := range patches {
			if m, ok := p.(map[string]any); ok {
				if path, _ := m["path"].(string); path != "" && drop(path) {
					changed = true
					continue
				}
			}
			out = append(out, p)
		}
		k["patches"] = out
	}
	for _, gen := range []string{"configMapGenerator", "secretGenerator"} {
		list, _ := k[gen].([]any)
		for _, g := range list {
			m, ok := g.(map[string]any)
			if !ok {
				continue
			}
			for _, field := range []string{"files", "envs"} {
				if out, ok := filter(m[field]); ok {
					m[field] = out
					changed = true
				}
			}
		}
	}
	if len(refs) == 0 || !changed {
		return data, nil
	}
	out, err := yaml.Marshal(k)
	if err != nil {
		return data, nil
	}
	return out, refs
}

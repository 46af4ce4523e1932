package fluxtree

import (
	"bytes"
	"path/filepath"
	"strings"
	"sync/atomic"

	"sigs.k8s.io/kustomize/api/resource"
	kustypes "sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/kustomize/kyaml/resid"
	"sigs.k8s.io/yaml"
)

// Real repositories list every app's Flux Kustomization in one kustomization.yaml
// (kubernetes/apps/kustomization.yaml with hundreds of `- ./<app>/ks.yaml`). kustomize checks
// each resource it accumulates against every resource accumulated so far for a duplicate id,
// and does it again when it drops local-config resources at the end (resWrangler.Append,
// ResAccumulator.Intersection), computing both ids from the YAML nodes every time: O(n²) in
// the number of entries, ~1.5 s of CPU for the 2000 entries of the scale benchmark, a third of
// its walk.
//
// buildFlat builds such a list in chunks of flatChunk entries, each chunk a krusty build of the
// same kustomization file holding only that chunk's entries, and concatenates the results. It
// is only taken when that is the same as the one build, which holds when the kustomization
// has no field but `resources` and lists only plain files:
//
//   - each file's resources are read, annotated and appended on their own (accumulateFile);
//     no generator, transformer, validator, var, configuration, CRD, component, sort option or
//     build metadata exists to act on all of them;
//   - what the build does at the end is per resource (hash suffixes, local-config, build and
//     origin annotations; vars come only from kustomization files) but for two steps that look across resources: the
//     duplicate-id check, done here across chunks (a duplicate and the one build runs, for
//     kustomize's own error), and the fix-up of name references, which only rewrites
//     references to resources renamed during the build (its candidates are resources with a
//     previous id);
//   - a plain file is renamed during the build, or leaves it as local-config (after the
//     duplicate-id check saw it), only through kustomize's annotations
//     (internal.config.kubernetes.io/needsHashSuffix, …/previousNames,
//     config.kubernetes.io/local-config): a file that mentions config.kubernetes.io and the
//     one build runs.
//
// Any other doubt (an entry that is a directory, a URL, a missing file, the kustomization file
// itself, a chunk that fails to build) and the one build runs, so errors are kustomize's own.
// TestBuildFlatIsTheOneBuild compares both on every case above.

// flatChunk is how many entries one chunk build takes: large enough that the per-build cost
// (loading the kustomization, the default transformer configuration) stays small, small
// enough that the quadratic part does (a variable for the tests).
var flatChunk = 64

// flatBuilds counts the chunked builds taken (for the tests).
var flatBuilds atomic.Int64

// flatEntries returns the resources of manifest when it is a kustomization with no other
// field and more than one chunk of entries, all plain files of fsys other than kfile that
// do not mention kustomize's annotations; nil otherwise.
func flatEntries(fsys filesys.FileSystem, dir, kfile string, manifest []byte) []string {
	// Every Kustomization's manifest comes here; most list a few entries. n entries of a YAML
	// sequence are separated by n-1 line breaks (block style) or commas (flow style): without
	// more than flatChunk of those the list is one chunk, and the manifest need not be decoded.
	if bytes.Count(manifest, []byte("\n"))+bytes.Count(manifest, []byte(",")) < flatChunk {
		return nil
	}
	var k map[string]any
	if yaml.Unmarshal(manifest, &k) != nil || len(k) != 3 ||
		k["apiVersion"] != kustypes.KustomizationVersion || k["kind"] != kustypes.KustomizationKind {
		return nil
	}
	list, ok := k["resources"].([]any)
	if !ok || len(list) <= flatChunk {
		return nil
	}
	entries := make([]string, 0, len(list))
	for _, e := range list {
		s, ok := e.(string)
		if !ok || s == "" || strings.Contains(s, "://") {
			return nil
		}
		// kustomize's file loader (restrictions none) reads a relative entry from the
		// kustomization's directory.
		p := s
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		if p == kfile || !fsys.Exists(p) || fsys.IsDir(p) {
			return nil
		}
		data, err := fsys.ReadFile(p)
		if err != nil || bytes.Contains(data, []byte("config.kubernetes.io")) {
			return nil
		}
		entries = append(entries, s)
	}
	return entries
}

// buildFlat builds dir in chunks (see above); ok is false when it does not apply or did not
// succeed, and then kfile holds manifest again for the one build.
func buildFlat(fsys filesys.FileSystem, dir, kfile string, manifest []byte) (res []*resource.Resource, read []string, ok bool) {
	entries := flatEntries(fsys, dir, kfile, manifest)
	if entries == nil {
		return nil, nil, false
	}
	defer func() {
		if !ok && fsys.WriteFile(kfile, manifest) != nil {
			panic("fluxtree: in-memory kustomization file not restored")
		}
	}()
	ids := make(map[resid.ResId]bool, len(entries))
	for start := 0; start < len(entries); start += flatChunk {
		chunk := entries[start:min(start+flatChunk, len(entries))]
		data, err := yaml.Marshal(map[string]any{"apiVersion": kustypes.KustomizationVersion, "kind": kustypes.KustomizationKind, "resources": chunk})
		if err != nil || fsys.WriteFile(kfile, data) != nil {
			return nil, nil, false
		}
		m, r, err := build(fsys, dir)
		if err != nil {
			return nil, nil, false
		}
		read = append(read, r...)
		for _, x := range m.Resources() {
			id := x.CurId()
			if ids[id] {
				return nil, nil, false
			}
			ids[id] = true
			res = append(res, x)
		}
	}
	if fsys.WriteFile(kfile, manifest) != nil {
		return nil, nil, false
	}
	flatBuilds.Add(1)
	return res, read, true
}

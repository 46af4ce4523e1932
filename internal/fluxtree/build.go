package fluxtree

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/fluxcd/pkg/sourceignore"
	"sigs.k8s.io/kustomize/api/konfig"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/resmap"
	kustypes "sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/kustomize/kyaml/openapi"
)

// snapshot reads the repository into memory the way Flux's source artifact presents it:
// source-controller's default exclusions (VCS files, images and archives, CI configuration)
// and every .sourceignore are applied; hidden directories (.git, tool caches, which are not
// in Git anyway) are left out; regular files only. The builds run on this copy because
// Flux's kustomization generator writes kustomization.yaml files into the directories it
// builds, and the user's working tree must never be written to. An in-memory copy also
// cannot reach anything outside the repository, which is what Flux's SecureBuild guarantees
// with its secure on-disk file system. The same walk indexes the YAML files for messages
// (one read of the repository per walk).
//
// kustomize's in-memory file system refuses some names Git and Flux accept (a space, a
// non-ASCII character): such files are left out and listed in unreadable, so that only a
// Kustomization that builds their directory hears about them.
//
// A walk gets a view of a snapshot (repoSnapshot.view): the snapshot itself is not written
// after it is read, so that the walks of a run can share one (WithSnapshot).
func snapshot(root string) (filesys.FileSystem, *fileIndex, error) {
	s, err := readSnapshot(root)
	if err != nil {
		return nil, nil, err
	}
	work, idx := s.view()
	return work, idx, nil
}

// repoSnapshot is the repository as read once: the in-memory file system (never written
// after readSnapshot) and the file index's shared part.
type repoSnapshot struct {
	mem filesys.FileSystem
	idx *fileIndex // walked is unused here; each view gets its own
}

// view is one walk's copy-on-write file system over the snapshot and its own file index
// (walked directories, remote entries found by its builds) over the shared declarations.
func (s *repoSnapshot) view() (filesys.FileSystem, *fileIndex) {
	idx := *s.idx
	idx.walked = map[string]bool{}
	idx.remote = make(map[string][]remoteRef, len(s.idx.remote))
	for k, v := range s.idx.remote {
		idx.remote[k] = v
	}
	return newCowFS(s.mem), &idx
}

func readSnapshot(root string) (*repoSnapshot, error) {
	mem := filesys.MakeFsInMemory()
	idx := &fileIndex{root: root, declIndex: &declIndex{where: map[string][]string{}, lines: map[string]int{}}, remote: map[string][]remoteRef{}}
	patterns, err := sourceignore.LoadIgnorePatterns(root, nil)
	if err != nil {
		return nil, fmt.Errorf("reading repository %s: %w", root, err)
	}
	ignore := sourceignore.NewDefaultMatcher(patterns, nil)
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		parts := strings.Split(filepath.ToSlash(rel), "/")
		if p != root && ignore.Match(parts, d.IsDir()) {
			if d.IsDir() {
				idx.ignored = append(idx.ignored, filepath.ToSlash(rel)+"/")
				return filepath.SkipDir
			}
			idx.ignored = append(idx.ignored, filepath.ToSlash(rel))
			return nil
		}
		if d.IsDir() {
			if p != root && strings.HasPrefix(d.Name(), ".") {
				idx.ignored = append(idx.ignored, filepath.ToSlash(rel)+"/")
				return filepath.SkipDir
			}
			if err := mem.MkdirAll(p); err != nil {
				idx.unreadable = append(idx.unreadable, filepath.ToSlash(rel))
				return filepath.SkipDir
			}
			return nil
		}
		yamlFile := filepath.Ext(p) == ".yaml" || filepath.Ext(p) == ".yml"
		if !d.Type().IsRegular() && !yamlFile {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			if isKustomizationFile(d.Name()) {
				stripped, refs := stripRemote(data)
				if len(refs) > 0 {
					idx.remote[p] = refs
				}
				if err := mem.WriteFile(p, stripped); err != nil {
					idx.unreadable = append(idx.unreadable, filepath.ToSlash(rel))
				}
			} else if err := mem.WriteFile(p, data); err != nil {
				idx.unreadable = append(idx.unreadable, filepath.ToSlash(rel))
				return nil
			}
		}
		// A Talos patch gen wrote is megabytes of inline manifests the index skips anyway
		// (add): not kept, so a Tree does not hold a copy of it for its lifetime.
		if yamlFile && !isTalosPatch(data) {
			idx.pending = append(idx.pending, indexedFile{filepath.ToSlash(rel), data})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading repository %s: %w", root, err)
	}
	return &repoSnapshot{mem: mem, idx: idx}, nil
}

// Flux's kustomize.Build resets kyaml's global OpenAPI schema and decodes the built-in
// Kubernetes schema again before every build (~30 ms, most of a walk's time), so that a
// kustomization's `openapi:` field cannot leak a schema into the next build. build keeps
// that isolation but pays for it only when needed: the built-in schema is decoded once and
// kept while builds leave it alone; after a build that may have changed it (a kustomization
// file mentioning openapi, a schema version other than the built-in one, a panic or an
// error) the next build starts from a fresh decode, as Flux's always does.
var (
	buildMu sync.Mutex // kustomize builds are not safe to run concurrently (kustomize#3659)
	// schemaDirty says kyaml's global schema may not be the pristine built-in one.
	schemaDirty   = true
	builtinSchema = func() string { openapi.ResetOpenAPI(); return openapi.GetSchemaVersion() }()
)

// build is fluxcd/pkg/kustomize.Build (v1.35.6) with the schema reset described above:
// the same krusty options (load restrictions none: files anywhere in the file system,
// which here is the in-memory repository; only built-in plugins) and panic recovery.
func build(fsys filesys.FileSystem, dir string) (res resmap.ResMap, read []string, err error) {
	buildMu.Lock()
	defer buildMu.Unlock()
	if schemaDirty || openapi.GetSchemaVersion() != builtinSchema {
		openapi.ResetOpenAPI()
		_ = openapi.Schema()
	}
	schemaDirty = true // until this build is known to have left the schema alone
	watch := &openapiWatch{FileSystem: fsys}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("recovered from kustomize build panic: %v", r)
		}
		if err == nil && !watch.seen && openapi.GetSchemaVersion() == builtinSchema {
			schemaDirty = false
		}
	}()
	k := krusty.MakeKustomizer(&krusty.Options{
		LoadRestrictions: kustypes.LoadRestrictionsNone,
		PluginConfig:     kustypes.DisabledPluginConfig(),
	})
	res, err = k.Run(watch, dir)
	return res, watch.read, err
}

// openapiWatch notes when kustomize reads a kustomization file that mentions openapi (the
// field that makes krusty change the global schema).
type openapiWatch struct {
	filesys.FileSystem
	seen bool
	// read are the kustomization files the build read (to report the remote entries left out).
	read []string
}

var kustomizationFiles = konfig.RecognizedKustomizationFileNames()

func isKustomizationFile(base string) bool {
	for _, name := range kustomizationFiles {
		if base == name {
			return true
		}
	}
	return false
}

func (w *openapiWatch) ReadFile(path string) ([]byte, error) {
	data, err := w.FileSystem.ReadFile(path)
	if err == nil && !w.seen {
		base := filepath.Base(path)
		if isKustomizationFile(base) && bytes.Contains(bytes.ToLower(data), []byte("openapi")) {
			w.seen = true
		}
	}
	if err == nil && isKustomizationFile(filepath.Base(path)) {
		w.read = append(w.read, path)
	}
	return data, err
}

// replaceFile writes data to path and returns the function that puts back what was there
// (the repository's own kustomization file, or nothing), as Flux's CleanDirectory does on
// disk: a later build of a parent directory must see the repository, not this generation.
func replaceFile(fsys filesys.FileSystem, path string, data []byte) (func() error, error) {
	restore := func() error { return fsys.RemoveAll(path) }
	if fsys.Exists(path) {
		orig, err := fsys.ReadFile(path)
		if err != nil {
			return nil, err
		}
		restore = func() error { return fsys.WriteFile(path, orig) }
	}
	if err := fsys.WriteFile(path, data); err != nil {
		return nil, err
	}
	return restore, nil
}

// ReleaseSchema drops kyaml's global OpenAPI schema, which the walks keep decoded between
// builds (~5 MiB of Go values for the built-in Kubernetes schema), for a caller that builds no
// more for a while: the agent after its one walk (issue #16, its peak RSS). A later build
// decodes it again.
func ReleaseSchema() {
	buildMu.Lock()
	defer buildMu.Unlock()
	openapi.ResetOpenAPI()
	schemaDirty = true
}

// Package fluxtree computes, offline, what Flux would apply to one cluster from the Git
// repository: it starts at the cluster's flux-system entry and follows every Flux
// Kustomization it produces, building each path with Flux's own kustomize wrapper
// (fluxcd/pkg/kustomize) and applying postBuild substitution with Flux's own code.
package fluxtree

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/fluxcd/pkg/kustomize"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/kustomize/api/resmap"
	"sigs.k8s.io/kustomize/api/resource"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// Flux API groups the walk understands.
const (
	KustomizeGroup = "kustomize.toolkit.fluxcd.io"
	HelmGroup      = "helm.toolkit.fluxcd.io"
	SourceGroup    = "source.toolkit.fluxcd.io"
)

// Object is one object Flux would apply, after kustomize build and substitution.
type Object struct {
	*unstructured.Unstructured
	// AppliedBy is the Flux Kustomization ("namespace/name") whose build produced the object.
	AppliedBy string
	// Encrypted says the object is a SOPS-encrypted Secret that was not decrypted (no age key
	// given): kustomize-controller decrypts it in-cluster, its values are known only there.
	Encrypted bool
	// Runtime, when set, says some ${VAR} of the object could not be resolved because it comes
	// from a Secret provided at runtime (named here); Flux resolves it in-cluster.
	Runtime string
}

// Options tell the walk what is known in-cluster but not in the repository.
type Options struct {
	// GitRepository ("namespace/name") names the Flux GitRepository that is this repository;
	// URL matches it by spec.url. Default: the GitRepository the entry reconciles itself from,
	// else flux-system/flux-system (what flux bootstrap and flux-operator create).
	GitRepository string
	URL           string
	// RuntimeSecrets ("namespace/name") are Secrets created outside Git (at bootstrap, by the
	// agent): a substituteFrom naming one is satisfied, its variables are known only in-cluster.
	RuntimeSecrets []string
}

// Skip is a Kustomization (or part of one) the walk did not build, with the reason.
type Skip struct {
	Kustomization string // "namespace/name"
	File          string
	Line          int
	Reason        string
}

func (s Skip) String() string { return fmt.Sprintf("Kustomization %s: %s", s.Kustomization, s.Reason) }

// Key identifies an object by group, kind, namespace and name.
type Key struct{ Group, Kind, Namespace, Name string }

func (k Key) String() string {
	if k.Namespace == "" {
		return fmt.Sprintf("%s %s", k.Kind, k.Name)
	}
	return fmt.Sprintf("%s %s/%s", k.Kind, k.Namespace, k.Name)
}

// Tree is the rendered Flux tree of one cluster.
type Tree struct {
	Root    string
	Objects []*Object
	// Kustomizations are the Flux Kustomizations reached, keyed by "namespace/name".
	Kustomizations map[string]*unstructured.Unstructured
	// Skipped lists Kustomizations whose source is not this repository (not walked) and
	// remote entries of kustomizations that need the network (left out of the build).
	Skipped []Skip

	opts Options
	// self are the GitRepositories ("namespace/name") that are this repository; selfIDs the
	// URL and ref of those in the entry (another GitRepository with both is the same source).
	self    map[string]bool
	selfIDs map[string]bool
	// decrypt says SOPS-encrypted Secrets are decrypted (an age key is given).
	decrypt bool

	index map[Key]*Object
	files *fileIndex
	abs   string // absolute Root: the generator and the in-memory copy use it
	// inflight are substitutions running off the walk's goroutine, in walk order (see flush).
	inflight []*substitution
	workers  chan struct{}
	// problems, when not nil, collects errors so the walk goes on (LoadAll).
	problems *[]Problem
	// problemList is what a LoadAll walk collected (kept for the cache).
	problemList []Problem
}

// Problem is one error found while walking, attributed to the Kustomization that hit it.
type Problem struct {
	Kustomization string // "namespace/name", or "entry <dir>" for the flux-system entry
	File          string // file that declares the Kustomization (or the object at fault)
	Line          int
	Err           error
}

func (p Problem) Error() string { return p.Err.Error() }

// fail records err when collecting, else returns it to stop the walk. Substitutions of
// earlier Kustomizations are committed first, so problems keep the walk's order.
func (t *Tree) fail(ks *unstructured.Unstructured, kind, name string, err error) error {
	if ferr := t.flush(); ferr != nil {
		return ferr
	}
	if t.problems == nil {
		return err
	}
	file, line := t.files.position(kind, name)
	*t.problems = append(*t.problems, Problem{Kustomization: ks.GetNamespace() + "/" + ks.GetName(), File: file, Line: line, Err: err})
	return nil
}

// Load walks the tree of one cluster. root is the repository root; fluxSystem the
// cluster's flux-system directory relative to root.
// At most one Options may be given.
func Load(ctx context.Context, root, fluxSystem string, opts ...Options) (*Tree, error) {
	return load(ctx, root, fluxSystem, first(opts), nil)
}

func first(opts []Options) Options {
	if len(opts) > 0 {
		return opts[0]
	}
	return Options{}
}

// LoadAll walks like Load but does not stop at the first problem: it returns every problem
// (for `bootcore check`) and the tree of everything that did build.
func LoadAll(ctx context.Context, root, fluxSystem string, opts ...Options) (*Tree, []Problem, error) {
	var problems []Problem
	t, err := load(ctx, root, fluxSystem, first(opts), &problems)
	if err == nil {
		problems = t.problemList
	}
	return t, problems, err
}

func load(ctx context.Context, root, fluxSystem string, opts Options, problems *[]Problem) (*Tree, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	cache, _ := ctx.Value(cacheKey{}).(*treeCache)
	key := fmt.Sprintf("%s\x00%s\x00%v\x00%t", abs, filepath.Clean(fluxSystem), opts, sopsKeyGiven())
	if t := cache.get(key); t != nil {
		if problems == nil && len(t.problemList) > 0 {
			return nil, t.problemList[0].Err
		}
		return t, nil
	}
	t, err := walkTree(ctx, root, abs, fluxSystem, opts, problems)
	if err == nil && problems != nil {
		t.problemList = *problems
		cache.put(key, t)
	} else if err == nil {
		cache.put(key, t)
	}
	return t, err
}

// WithCache returns a context under which Load and LoadAll reuse the tree an earlier walk of
// the same repository directory and cluster produced without problems. For one run that walks
// an unchanged repository more than once: bootcore check walks each cluster itself and then
// runs gen, which walks them again.
// The walks under it share one snapshot of each repository directory too (WithSnapshot).
func WithCache(ctx context.Context) context.Context {
	return context.WithValue(WithSnapshot(ctx), cacheKey{}, &treeCache{trees: map[string]*Tree{}})
}

// WithSnapshot returns a context under which the walks of the same repository directory read
// it once: the first walk's in-memory snapshot and its file index are shared by every later
// one, each walk building on a copy-on-write view of it (cowFS), so no walk sees another's
// generated kustomization files. For one run over a repository that does not change during
// it (gen walks one tree per cluster, and the repository holds every cluster's entry and
// committed patches: a snapshot per walk made the walks of a fleet O(clusters²)). A context
// that already shares snapshots is returned as is.
func WithSnapshot(ctx context.Context) context.Context {
	if _, ok := ctx.Value(snapshotKey{}).(*snapshots); ok {
		return ctx
	}
	return context.WithValue(ctx, snapshotKey{}, &snapshots{byRoot: map[string]*sharedSnapshot{}})
}

type snapshotKey struct{}

type snapshots struct {
	mu     sync.Mutex
	byRoot map[string]*sharedSnapshot
}

type sharedSnapshot struct {
	once sync.Once
	s    *repoSnapshot
	err  error
}

// readSnapshots counts the repository snapshots read (for the tests).
var readSnapshots atomic.Int64

// viewOf returns a view of the snapshot of the repository at abs: the run's shared one under
// WithSnapshot (read by the first walk that needs it; concurrent walks wait for it), else a
// snapshot of its own.
func viewOf(ctx context.Context, abs string) (filesys.FileSystem, *fileIndex, error) {
	shared, _ := ctx.Value(snapshotKey{}).(*snapshots)
	if shared == nil {
		readSnapshots.Add(1)
		return snapshot(abs)
	}
	shared.mu.Lock()
	e := shared.byRoot[abs]
	if e == nil {
		e = &sharedSnapshot{}
		shared.byRoot[abs] = e
	}
	shared.mu.Unlock()
	e.once.Do(func() {
		readSnapshots.Add(1)
		e.s, e.err = readSnapshot(abs)
	})
	if e.err != nil {
		return nil, nil, e.err
	}
	work, files := e.s.view()
	return work, files, nil
}

type cacheKey struct{}

type treeCache struct {
	mu    sync.Mutex
	trees map[string]*Tree
}

func (c *treeCache) get(key string) *Tree {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.trees[key]
}

func (c *treeCache) put(key string, t *Tree) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.trees[key] = t
}

func walkTree(ctx context.Context, root, abs, fluxSystem string, opts Options, problems *[]Problem) (*Tree, error) {
	work, files, err := viewOf(ctx, abs)
	if err != nil {
		return nil, err
	}
	if problems != nil {
		// LoadAll's caller (bootcore check) reports every finding and release with its file:
		// index the files on the core the walk leaves idle before its first substitutions.
		go files.declarations()
	}

	t := &Tree{
		Root:           root,
		Kustomizations: map[string]*unstructured.Unstructured{},
		index:          map[Key]*Object{},
		files:          files,
		problems:       problems,
		abs:            abs,
		workers:        make(chan struct{}, runtime.GOMAXPROCS(0)),
		opts:           opts,
		decrypt:        sopsKeyGiven(),
	}
	defer t.wait()

	// The flux-system entry is applied by bootstrap with a plain kustomize build.
	entry := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": KustomizeGroup + "/v1", "kind": "Kustomization",
		"metadata": map[string]any{"name": "(entry)", "namespace": "flux-system"},
		"spec":     map[string]any{"path": fluxSystem},
	}}
	if err := t.apply(ctx, work, entry, "entry "+fluxSystem); err != nil {
		return nil, err
	}
	if err := t.flush(); err != nil {
		return nil, err
	}
	t.self, t.selfIDs = t.thisRepository(fluxSystem)

	// Breadth-first over the Kustomizations the builds produce. One whose substituteFrom
	// objects do not exist yet waits until a later build produces them, as it would in-cluster.
	if err := t.flush(); err != nil {
		return nil, err
	}
	pending := t.newKustomizations()
	for len(pending) > 0 {
		var waiting []*unstructured.Unstructured
		progressed := false
		for _, ks := range pending {
			// Substitutions still running may produce the objects ks substitutes from.
			if !t.substituteFromPresent(ks) {
				if err := t.flush(); err != nil {
					return nil, err
				}
			}
			if missing := t.missingSubstituteFrom(ks); missing != "" {
				waiting = append(waiting, ks)
				continue
			}
			progressed = true
			if err := t.walk(ctx, work, ks); err != nil {
				return nil, err
			}
		}
		if !progressed {
			for _, ks := range waiting {
				missing := t.missingSubstituteFrom(ks)
				hint := ""
				if strings.HasPrefix(missing, "Secret ") {
					// Real trees apply such Secrets from a bootstrap script or a secret manager.
					hint = fmt.Sprintf(" (a Secret created outside Git before Flux runs belongs in bootstrapSecrets of bootstrap/bootcore.yaml: [%s])", strings.TrimPrefix(missing, "Secret "))
				}
				err := fmt.Errorf("Kustomization %s/%s (%s): postBuild.substituteFrom %s is not produced by any Kustomization of this cluster%s",
					ks.GetNamespace(), ks.GetName(), t.files.locate(ks), missing, hint)
				if err := t.fail(ks, ks.GetKind(), ks.GetName(), err); err != nil {
					return nil, err
				}
			}
			break
		}
		if err := t.flush(); err != nil {
			return nil, err
		}
		pending = append(waiting, t.newKustomizations()...)
	}
	if err := t.flush(); err != nil {
		return nil, err
	}
	return t, nil
}

// newKustomizations returns Flux Kustomizations produced but not yet walked, in a stable order.
func (t *Tree) newKustomizations() []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range t.Objects {
		if o.GroupVersionKind().Group != KustomizeGroup || o.GetKind() != "Kustomization" {
			continue
		}
		id := o.GetNamespace() + "/" + o.GetName()
		if _, seen := t.Kustomizations[id]; seen {
			continue
		}
		t.Kustomizations[id] = o.Unstructured
		out = append(out, o.Unstructured)
	}
	return out
}

func (t *Tree) walk(ctx context.Context, work filesys.FileSystem, ks *unstructured.Unstructured) error {
	id := ks.GetNamespace() + "/" + ks.GetName()
	if reason := t.notThisRepository(ks); reason != "" {
		file, line := t.files.position(ks.GetKind(), ks.GetName())
		t.Skipped = append(t.Skipped, Skip{Kustomization: id, File: file, Line: line, Reason: reason})
		return nil
	}
	return t.apply(ctx, work, ks, "Kustomization "+id)
}

// apply builds ks.spec.path the way kustomize-controller does and records the objects.
func (t *Tree) apply(ctx context.Context, work filesys.FileSystem, ks *unstructured.Unstructured, what string) error {
	rel, _, _ := unstructured.NestedString(ks.Object, "spec", "path")
	rel = strings.TrimPrefix(filepath.Clean("/"+rel), "/")
	dir := filepath.Join(t.abs, rel)
	t.files.walked[filepath.ToSlash(rel)] = true
	if !work.IsDir(dir) {
		return t.fail(ks, ks.GetKind(), ks.GetName(), fmt.Errorf("%s (%s): spec.path %q does not exist in the repository", what, t.files.locate(ks), rel))
	}
	// Flux's generator computes the kustomization.yaml kustomize-controller would build
	// (reading the repository, never writing it); it goes into the in-memory copy only.
	// The generator scans the working tree; Flux scans the artifact: what the snapshot left
	// out under dir is ignored by the generator too.
	generator := kustomize.NewGenerator(t.abs, *ks)
	if ignored := t.files.ignoredUnder(rel); ignored != "" && !hasKustomizationFile(work, dir) {
		generator = kustomize.NewGeneratorWithIgnore(t.abs, ignored, *ks)
	}
	manifest, kfile, _, err := generator.GenerateManifest(dir)
	var restore func() error
	if err == nil {
		// The generator read the repository's own file: leave out its remote entries too.
		var refs []remoteRef
		if manifest, refs = stripRemote(manifest); len(refs) > 0 && t.files.remote[kfile] == nil {
			t.files.remote[kfile] = refs
		}
		restore, err = replaceFile(work, kfile, manifest)
	}
	if err != nil {
		return t.fail(ks, ks.GetKind(), ks.GetName(), fmt.Errorf("%s: generating kustomization for %s: %w", what, rel, err))
	}
	// A long list of plain files is built in chunks, the one build's result without kustomize's
	// quadratic duplicate-id checks (flat.go); anything else is the one build.
	var resources []*resource.Resource
	var read []string
	if chunked, r, ok := buildFlat(work, dir, kfile, manifest); ok {
		resources, read = chunked, r
	} else {
		var m resmap.ResMap
		if m, read, err = build(work, dir); err == nil {
			resources = m.Resources()
		}
	}
	if rerr := restore(); rerr != nil {
		return rerr
	}
	t.noteOffline(ks, read)
	if err != nil && t.unreadableIn(err) != "" {
		file, line := t.files.position(ks.GetKind(), ks.GetName())
		t.Skipped = append(t.Skipped, Skip{Kustomization: ks.GetNamespace() + "/" + ks.GetName(), File: file, Line: line,
			Reason: fmt.Sprintf("not checked: its build reads %s, a file name kustomize's in-memory file system refuses (Flux builds on disk)", t.unreadableIn(err))})
		return nil
	}
	if err != nil {
		return t.fail(ks, ks.GetKind(), ks.GetName(), fmt.Errorf("%s: kustomize build %s: %w", what, rel, err))
	}
	t.substituteAsync(ctx, ks, what, resources)
	return nil
}

func (t *Tree) add(o *Object) {
	k := keyOf(o.Unstructured)
	if _, dup := t.index[k]; dup {
		return // applied by two Kustomizations; Flux would fight, the first one wins here
	}
	t.index[k] = o
	t.Objects = append(t.Objects, o)
}

func keyOf(u *unstructured.Unstructured) Key {
	gvk := u.GroupVersionKind()
	return Key{Group: gvk.Group, Kind: gvk.Kind, Namespace: u.GetNamespace(), Name: u.GetName()}
}

// Get returns the object with the given group, kind, namespace and name.
func (t *Tree) Get(group, kind, namespace, name string) (*Object, bool) {
	o, ok := t.index[Key{group, kind, namespace, name}]
	return o, ok
}

// Locate names the repository file an object most likely comes from, for messages.
func (t *Tree) Locate(kind, name string) string { return t.files.locateKind(kind, name) }

// Vars returns the postBuild variables of the Kustomization that applies o, as Flux computes them.
func (t *Tree) Vars(ctx context.Context, o *Object) (map[string]string, error) {
	ks, ok := t.Kustomizations[o.AppliedBy]
	if !ok {
		return map[string]string{}, nil
	}
	vars, err := kustomize.LoadVariables(ctx, &objectReader{tree: t}, *ks)
	if err != nil {
		return nil, err
	}
	inline, _, _ := unstructured.NestedStringMap(ks.Object, "spec", "postBuild", "substitute")
	for k, v := range inline {
		vars[k] = strings.ReplaceAll(v, "\n", "")
	}
	return vars, nil
}

// missingSubstituteFrom names the first non-optional substituteFrom object not yet produced.
func (t *Tree) missingSubstituteFrom(ks *unstructured.Unstructured) string {
	for _, ref := range substituteFromRefs(ks) {
		if ref.optional {
			continue
		}
		if _, ok := t.Get("", ref.kind, ks.GetNamespace(), ref.name); !ok && (ref.kind != "Secret" || t.runtimeSecret(ks.GetNamespace(), ref.name) == "") {
			return fmt.Sprintf("%s %s/%s", ref.kind, ks.GetNamespace(), ref.name)
		}
	}
	return ""
}

// objectReader serves Flux's LoadVariables from the objects produced so far, the way the
// API server would serve it in-cluster. Only Get is used by Flux's code.
type objectReader struct {
	client.Client
	tree *Tree
}

func (r *objectReader) Get(_ context.Context, key types.NamespacedName, obj client.Object, _ ...client.GetOption) error {
	gvks, _, err := clientScheme.ObjectKinds(obj)
	if err != nil {
		return err
	}
	kind := gvks[0].Kind
	o, ok := r.tree.Get("", kind, key.Namespace, key.Name)
	switch {
	case ok && kind == "Secret" && o.Encrypted, !ok && kind == "Secret" && r.tree.runtimeSecret(key.Namespace, key.Name) != "":
		// Provided at runtime: it exists in-cluster, its values are not known here.
		obj.SetName(key.Name)
		obj.SetNamespace(key.Namespace)
		return nil
	case !ok:
		return apierrors.NewNotFound(schema.GroupResource{Resource: strings.ToLower(kind) + "s"}, key.Name)
	case kind == "Secret":
		return fromUnstructured(asServed(o.Unstructured), obj)
	}
	return fromUnstructured(o.Unstructured, obj)
}

// SortedKeys is a helper for deterministic iteration.
func SortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Position returns the repository file and line that declare kind/name, for findings.
func (t *Tree) Position(kind, name string) (string, int) { return t.files.position(kind, name) }

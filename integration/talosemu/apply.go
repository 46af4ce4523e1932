package talosemu

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"time"

	gokssa "github.com/siderolabs/go-kubernetes/kubernetes/ssa"
	"github.com/siderolabs/go-kubernetes/kubernetes/ssa/object"
	"github.com/siderolabs/talos/pkg/machinery/config"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
)

// The names Talos uses.
const (
	FieldManager       = "talos"
	InventoryNamespace = "kube-system"
	InventoryName      = "talos-bootstrap-manifests-inventory"
	// InventoryAnnotation is config.k8s.io/owning-inventory.
	InventoryAnnotation = gokssa.InventoryAnnotationKey
)

// Objects flattens manifests (already sorted by ID) into objects and orders
// them as Talos >= 1.13 does: Namespaces, then CRDs, each by name, then the
// rest in file order.
func Objects(manifests []Manifest) ([]*unstructured.Unstructured, error) {
	var objs []*unstructured.Unstructured
	for _, m := range manifests {
		dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader([]byte(m.Contents)), 4096)
		for {
			obj := &unstructured.Unstructured{}
			if err := dec.Decode(&obj.Object); err != nil {
				if errors.Is(err, io.EOF) {
					break
				}
				return nil, fmt.Errorf("manifest %s: %w", m.Name, err)
			}
			if len(obj.Object) == 0 {
				continue
			}
			objs = append(objs, obj)
		}
	}
	rank := func(o *unstructured.Unstructured) int {
		switch gk := o.GroupVersionKind().GroupKind(); {
		case gk.Group == "" && gk.Kind == "Namespace":
			return 0
		case gk.Group == "apiextensions.k8s.io" && gk.Kind == "CustomResourceDefinition":
			return 1
		default:
			return 2
		}
	}
	// As ManifestApplyController.apply sorts: Namespaces by name, then CRDs by name, then the
	// rest in manifest order.
	sort.SliceStable(objs, func(i, j int) bool {
		ri, rj := rank(objs[i]), rank(objs[j])
		if ri != rj {
			return ri < rj
		}
		return ri < 2 && objs[i].GetName() < objs[j].GetName()
	})
	return objs, nil
}

// Node is one emulated Talos control-plane node's manifest controller.
type Node struct {
	Name   string       // node name, the lock holder identity
	Config *rest.Config // Talos uses an admin kubeconfig it generates itself
	Logf   func(format string, args ...any)
}

// Result is what one run did. Object names read "Kind namespace/name".
type Result struct {
	Created  []string // created by this run
	Existing []string // existed already: left alone, recorded in the inventory
}

// Boot emulates what the node does with the manifests of cfg after it boots
// (Talos's own, see BootstrapManifests, and the inline manifests): apply runs,
// retried with exponential backoff (0.5s doubling up to 5s) until one succeeds
// or timeout passes. The Result sums all runs.
func (n *Node) Boot(ctx context.Context, cfg config.Config, timeout time.Duration) (Result, error) {
	objs, err := Objects(AllManifests(cfg))
	if err != nil {
		return Result{}, err
	}
	return n.ApplyUntilSuccess(ctx, objs, timeout)
}

// ApplyUntilSuccess is Boot for already flattened objects.
func (n *Node) ApplyUntilSuccess(ctx context.Context, objs []*unstructured.Unstructured, timeout time.Duration) (Result, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var total Result
	var lastErr error
	attempt := 0
	backoff := wait.Backoff{Duration: 500 * time.Millisecond, Factor: 2, Steps: 1 << 20, Cap: 5 * time.Second}
	err := wait.ExponentialBackoffWithContext(ctx, backoff, func(ctx context.Context) (bool, error) {
		attempt++
		res, err := n.ApplyOnce(ctx, objs)
		total.Created = append(total.Created, res.Created...)
		total.Existing = appendMissing(total.Existing, res.Existing...)
		if err != nil {
			lastErr = err
			n.logf("talosemu: %s: manifest apply run %d failed, will retry: %v", n.Name, attempt, err)
			return false, nil
		}
		n.logf("talosemu: %s: manifest apply run %d: %d created, %d existing", n.Name, attempt, len(res.Created), len(res.Existing))
		return true, nil
	})
	if err != nil {
		return total, fmt.Errorf("%s: inline manifests not applied after %d runs: %w (last error: %v)", n.Name, attempt, err, lastErr)
	}
	// An object created in an earlier run is "existing" in a later one.
	total.Existing = removeAll(total.Existing, total.Created)
	return total, nil
}

// ApplyOnce is one run of Talos's manifest apply, following
// ManifestApplyController.apply and applyManifests
// (internal/app/machined/pkg/controllers/k8s/manifest_apply.go, Talos
// ad8823176, the same in v1.13.9 and v1.14):
//
//   - an object already in the inventory is skipped, even if it was deleted
//     from the cluster: Talos never re-creates it;
//   - an existing object not in the inventory is added to it (backfill) and
//     left alone, whatever annotations it carries;
//   - a missing object is created (server-side apply, field manager talos, no
//     force) with the owning-inventory annotation, unless its manifest
//     already names another inventory (an error for that object);
//   - errors that concern one object (unknown kind, invalid or bad request)
//     are collected and the run goes on; any other error (connection,
//     Forbidden, Conflict, ...) aborts the run, and Talos then writes the
//     inventory it has at that point, which is none: the inventory is emptied.
func (n *Node) ApplyOnce(ctx context.Context, objs []*unstructured.Unstructured) (Result, error) {
	var res Result
	client, err := kubernetes.NewForConfig(n.Config)
	if err != nil {
		return res, err
	}
	dyn, err := dynamic.NewForConfig(n.Config)
	if err != nil {
		return res, err
	}
	unlock, err := n.lock(ctx, client)
	if err != nil {
		return res, err
	}
	defer unlock()

	// Fresh discovery per run: a CRD established since the last run is known now.
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(client.Discovery()))
	inv, err := gokssa.GetInventory(ctx, client, InventoryNamespace, InventoryName)
	if err != nil {
		return res, err
	}
	refs, errs, abort := n.apply(ctx, mapper, dyn, objs, inv.Get(), &res)
	if abort != nil {
		refs = nil // apply returned no inventory; Talos writes it anyway
		errs = append(errs, abort)
	}
	inv.Update(refs)
	if err := inv.Write(ctx); err != nil {
		errs = append(errs, fmt.Errorf("updating inventory failed: %w", err))
	}
	return res, errors.Join(errs...)
}

// apply is the loop of ManifestApplyController.apply; abort is the error that ended the run early.
func (n *Node) apply(ctx context.Context, mapper meta.RESTMapper, dyn dynamic.Interface, objs []*unstructured.Unstructured, refs object.ObjMetadataSet, res *Result) (_ object.ObjMetadataSet, errs []error, abort error) {
	for _, orig := range objs {
		obj := orig.DeepCopy()
		gvk := obj.GroupVersionKind()
		mapping, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			if apierrors.IsNotFound(err) || apierrors.IsInvalid(err) || meta.IsNoMatchError(err) {
				errs = append(errs, fmt.Errorf("%s: %w", describe(obj), err))
				continue
			}
			return nil, errs, fmt.Errorf("error creating mapping for object %s: %w", describe(obj), err)
		}
		ri := dynamic.ResourceInterface(dyn.Resource(mapping.Resource))
		if mapping.Scope.Name() == meta.RESTScopeNameNamespace {
			if obj.GetNamespace() == "" {
				obj.SetNamespace(metav1.NamespaceDefault)
			}
			ri = dyn.Resource(mapping.Resource).Namespace(obj.GetNamespace())
		} else {
			// Talos 1.13 recorded cluster-scoped objects with the manifest's namespace: such an
			// entry is dropped and the object skipped.
			if old := (object.ObjMetadata{Namespace: obj.GetNamespace(), Name: obj.GetName(), GroupKind: gvk.GroupKind()}); obj.GetNamespace() != "" && refs.Contains(old) {
				refs = refs.Remove(old)
				continue
			}
			obj.SetNamespace("")
		}
		ref := object.ObjMetadata{Namespace: obj.GetNamespace(), Name: obj.GetName(), GroupKind: gvk.GroupKind()}
		if refs.Contains(ref) {
			res.Existing = append(res.Existing, describe(obj))
			continue
		}
		_, err = ri.Get(ctx, obj.GetName(), metav1.GetOptions{})
		if err == nil {
			refs = refs.Union(object.ObjMetadataSet{ref}) // backfill; the object is left alone
			res.Existing = append(res.Existing, describe(obj))
			continue
		}
		if !apierrors.IsNotFound(err) {
			return nil, errs, fmt.Errorf("error checking resource existence: %w", err)
		}
		ann := obj.GetAnnotations()
		if ann == nil {
			ann = map[string]string{}
		}
		if owner, ok := ann[InventoryAnnotation]; ok && owner != InventoryName {
			errs = append(errs, fmt.Errorf("unexpected foreign inventory annotation on %s (%q)", describe(obj), owner))
			continue
		}
		ann[InventoryAnnotation] = InventoryName
		obj.SetAnnotations(ann)
		if _, err := ri.Apply(ctx, obj.GetName(), obj, metav1.ApplyOptions{FieldManager: FieldManager}); err != nil {
			if apierrors.IsMethodNotSupported(err) || apierrors.IsBadRequest(err) || apierrors.IsInvalid(err) {
				errs = append(errs, fmt.Errorf("error creating %s: %w", describe(obj), err))
				continue
			}
			return nil, errs, fmt.Errorf("error creating %s: %w", describe(obj), err)
		}
		res.Created = append(res.Created, describe(obj))
		refs = refs.Union(object.ObjMetadataSet{ref})
	}
	return refs, errs, nil
}

func (n *Node) logf(format string, args ...any) {
	if n.Logf != nil {
		n.Logf(format, args...)
	}
}

func describe(obj *unstructured.Unstructured) string {
	if ns := obj.GetNamespace(); ns != "" {
		return obj.GetKind() + " " + ns + "/" + obj.GetName()
	}
	return obj.GetKind() + " " + obj.GetName()
}

func appendMissing(list []string, items ...string) []string {
	for _, it := range items {
		found := false
		for _, l := range list {
			found = found || l == it
		}
		if !found {
			list = append(list, it)
		}
	}
	return list
}

func removeAll(list, remove []string) []string {
	var out []string
	for _, l := range list {
		keep := true
		for _, r := range remove {
			keep = keep && l != r
		}
		if keep {
			out = append(out, l)
		}
	}
	return out
}

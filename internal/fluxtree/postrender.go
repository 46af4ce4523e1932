package fluxtree

import (
	"fmt"

	helmv2 "github.com/fluxcd/helm-controller/api/v2"
	kustomizev1 "github.com/fluxcd/pkg/apis/kustomize"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	kustypes "sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/kustomize/kyaml/resid"
	"sigs.k8s.io/yaml"
)

// PostRender does to a release's rendered manifest what helm-controller's post-renderers do
// before it installs: each spec.postRenderers[].kustomize in order (patches, then images, by
// kustomize), then spec.commonMetadata. helm-controller's origin labels come last and are the
// caller's (gen stamps them with Helm's ownership metadata). Objects keep their order.
func PostRender(hr *helmv2.HelmRelease, objs []*unstructured.Unstructured) ([]*unstructured.Unstructured, error) {
	for i, pr := range hr.Spec.PostRenderers {
		if pr.Kustomize == nil || (len(pr.Kustomize.Patches) == 0 && len(pr.Kustomize.Images) == 0) {
			continue
		}
		var err error
		if objs, err = kustomizeObjects(objs, pr.Kustomize); err != nil {
			return nil, fmt.Errorf("spec.postRenderers[%d].kustomize: %w", i, err)
		}
	}
	if md := hr.Spec.CommonMetadata; md != nil {
		for _, o := range objs {
			o.SetLabels(merged(o.GetLabels(), md.Labels))
			o.SetAnnotations(merged(o.GetAnnotations(), md.Annotations))
		}
	}
	return objs, nil
}

// kustomizeObjects runs one kustomize post-renderer over the objects, with the same
// kustomization helm-controller writes: the manifest as its one resource, the patches and images.
func kustomizeObjects(objs []*unstructured.Unstructured, k *helmv2.Kustomize) ([]*unstructured.Unstructured, error) {
	fsys := filesys.MakeFsInMemory()
	var manifest []byte
	for _, o := range objs {
		data, err := yaml.Marshal(o.Object)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", o.GetKind(), o.GetName(), err)
		}
		manifest = append(append(manifest, "---\n"...), data...)
	}
	kus := kustypes.Kustomization{
		TypeMeta:  kustypes.TypeMeta{APIVersion: kustypes.KustomizationVersion, Kind: kustypes.KustomizationKind},
		Resources: []string{"resources.yaml"},
	}
	for _, p := range k.Patches {
		kus.Patches = append(kus.Patches, kustypes.Patch{Patch: p.Patch, Target: selector(p.Target)})
	}
	for _, img := range k.Images {
		kus.Images = append(kus.Images, kustypes.Image{Name: img.Name, NewName: img.NewName, NewTag: img.NewTag, Digest: img.Digest})
	}
	kusData, err := yaml.Marshal(kus)
	if err != nil {
		return nil, err
	}
	if err := fsys.WriteFile("/post-render/resources.yaml", manifest); err != nil {
		return nil, err
	}
	if err := fsys.WriteFile("/post-render/kustomization.yaml", kusData); err != nil {
		return nil, err
	}
	res, _, err := build(fsys, "/post-render")
	if err != nil {
		return nil, err
	}
	// Patches cannot rename objects, so each result takes its input's place; a `$patch: delete`
	// leaves its object out, as it leaves it out of helm-controller's install.
	byID := map[resid.ResId]*unstructured.Unstructured{}
	for _, r := range res.Resources() {
		m, err := r.Map()
		if err != nil {
			return nil, err
		}
		byID[r.OrgId()] = &unstructured.Unstructured{Object: m}
	}
	out := make([]*unstructured.Unstructured, 0, len(objs))
	for _, o := range objs {
		gvk := o.GroupVersionKind()
		id := resid.NewResIdWithNamespace(resid.Gvk{Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind}, o.GetName(), o.GetNamespace())
		if r, ok := byID[id]; ok {
			out = append(out, r)
		}
	}
	return out, nil
}

func selector(s *kustomizev1.Selector) *kustypes.Selector {
	if s == nil {
		return nil
	}
	return &kustypes.Selector{
		ResId: resid.ResId{
			Gvk:       resid.Gvk{Group: s.Group, Version: s.Version, Kind: s.Kind},
			Name:      s.Name,
			Namespace: s.Namespace,
		},
		AnnotationSelector: s.AnnotationSelector,
		LabelSelector:      s.LabelSelector,
	}
}

func merged(into, from map[string]string) map[string]string {
	if len(from) == 0 {
		return into
	}
	if into == nil {
		into = map[string]string{}
	}
	for k, v := range from {
		into[k] = v
	}
	return into
}

package kube

import (
	"context"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// MergePatch applies a JSON merge patch to an object bootcore does not own (an annotation to
// drop or set), as its field manager; with dryRun the API server only validates it. The
// patch goes through the metadata client, so the answer is the object's metadata only: the
// agent patches every boot CRD, and decoding each whole CRD the API server sends back was
// a tenth of a hand-over's CPU (issue #16).
func (c *Client) MergePatch(ctx context.Context, ref Ref, patch []byte, dryRun bool) error {
	ri, err := c.metadataResource(ref)
	if err != nil {
		return err
	}
	opts := metav1.PatchOptions{FieldManager: c.fieldManager}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	_, err = ri.Patch(ctx, ref.Name, types.MergePatchType, patch, opts)
	return err
}

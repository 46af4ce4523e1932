package talosapi_test

import (
	"context"
	"github.com/bootcore-dev/bootcore/talos"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/siderolabs/talos/pkg/machinery/role"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	standin "github.com/bootcore-dev/bootcore/integration/talosapi"
	"github.com/bootcore-dev/bootcore/internal/talosapi"
)

var names = talos.Manifests

const labRepo = "../testdata/lab"

// start runs stand-in nodes for a lab cluster and returns them with bootcore's client.
func start(t *testing.T, cluster string, roles ...role.Role) (*standin.Cluster, *talosapi.Client) {
	t.Helper()
	o, err := standin.ForCluster(labRepo, cluster, []byte("apiVersion: v1\nkind: Config\n# "+cluster+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := standin.Start(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	path := filepath.Join(t.TempDir(), "talosconfig")
	if err := c.WriteTalosconfig(path, roles...); err != nil {
		t.Fatal(err)
	}
	cl, err := talosapi.New(talosapi.Options{Talosconfig: path})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return c, cl
}

// Both config contracts: the client reads each node's config, applies the lab's
// post-handover patch once per node, and a node without bootcore's manifests is skipped.
func TestReleaseBothContracts(t *testing.T) {
	for _, cluster := range []string{"infra", "apps"} {
		t.Run(cluster, func(t *testing.T) {
			c, cl := start(t, cluster)
			ctx := context.Background()
			patch, err := os.ReadFile(filepath.Join(labRepo, "generated", cluster, "post-handover.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			kc, err := cl.Kubeconfig(ctx)
			if err != nil || !strings.Contains(string(kc), "# "+cluster) {
				t.Fatalf("kubeconfig %q, %v", kc, err)
			}
			if !slices.Equal(cl.Nodes(), c.Addresses()) {
				t.Errorf("nodes %v, want the talosconfig's %v", cl.Nodes(), c.Addresses())
			}
			for _, n := range c.Nodes {
				if got := talosapi.Present(n.Config(), names); !slices.Equal(got, names) {
					t.Fatalf("node %s boots with %v, want %v", n.Address, got, names)
				}
				removed, err := cl.Release(ctx, n.Address, patch, names, false)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(removed, names) {
					t.Errorf("node %s: removed %v, want %v", n.Address, removed, names)
				}
				if left := talosapi.Present(n.Config(), names); len(left) > 0 {
					t.Errorf("node %s still has %v", n.Address, left)
				}
				// Idempotent: a second release reads, finds nothing, applies nothing (on
				// the v1alpha1 contract the patch itself would fail a second time).
				if removed, err := cl.Release(ctx, n.Address, patch, names, false); err != nil || removed != nil {
					t.Errorf("node %s: second release removed %v, %v", n.Address, removed, err)
				}
				if n.Applied() != 1 || n.Requests() != 1 {
					t.Errorf("node %s: %d configs applied, %d requests; want 1 and 1", n.Address, n.Applied(), n.Requests())
				}
			}
		})
	}
}

// A dry run goes to the node (it validates) and changes nothing.
func TestReleaseDryRun(t *testing.T) {
	c, cl := start(t, "apps")
	patch, _ := os.ReadFile(filepath.Join(labRepo, "generated", "apps", "post-handover.yaml"))
	n := c.Nodes[0]
	removed, err := cl.Release(context.Background(), n.Address, patch, names, true)
	if err != nil || !slices.Equal(removed, names) {
		t.Fatalf("dry run: %v, %v", removed, err)
	}
	if n.Requests() != 1 || n.Applied() != 0 || len(talosapi.Present(n.Config(), names)) != len(names) {
		t.Errorf("dry run: %d requests, %d applied, manifests %v", n.Requests(), n.Applied(), talosapi.Present(n.Config(), names))
	}
}

// Errors name the node and carry the Talos API's error: rejected config, unreachable node,
// a certificate without the admin role.
func TestReleaseErrors(t *testing.T) {
	ctx := context.Background()
	patch, _ := os.ReadFile(filepath.Join(labRepo, "generated", "infra", "post-handover.yaml"))

	c, cl := start(t, "infra")
	n := c.Nodes[1]
	n.Reject("machine.install.disk: no such disk")
	_, err := cl.Release(ctx, n.Address, patch, names, false)
	if err == nil || !strings.Contains(err.Error(), "node "+n.Address) || !strings.Contains(err.Error(), "no such disk") || status.Code(errorsCause(err)) != codes.InvalidArgument {
		t.Errorf("rejected: %v", err)
	}
	if n.Applied() != 0 || len(talosapi.Present(n.Config(), names)) != len(names) {
		t.Errorf("a rejected node changed: %d applied", n.Applied())
	}

	n = c.Nodes[2]
	n.Stop()
	_, err = cl.Release(ctx, n.Address, patch, names, false)
	if err == nil || !strings.Contains(err.Error(), "node "+n.Address) || status.Code(errorsCause(err)) != codes.Unavailable {
		t.Errorf("unreachable: %v", err)
	}

	c2, reader := start(t, "infra", role.Reader)
	_, err = reader.Release(ctx, c2.Nodes[0].Address, patch, names, false)
	if err == nil || !strings.Contains(err.Error(), "node "+c2.Nodes[0].Address) || status.Code(errorsCause(err)) != codes.PermissionDenied {
		t.Errorf("reader: %v", err)
	}
	if _, err := reader.Kubeconfig(ctx); err == nil || !strings.Contains(err.Error(), "PermissionDenied") {
		t.Errorf("reader kubeconfig: %v", err)
	}

	// Mutual TLS: another cluster's talosconfig (another OS CA) gets nowhere.
	other := filepath.Join(t.TempDir(), "talosconfig")
	if err := c2.WriteTalosconfig(other); err != nil {
		t.Fatal(err)
	}
	stranger, err := talosapi.New(talosapi.Options{Talosconfig: other, Endpoints: []string{c.Nodes[0].Address}, Nodes: []string{c.Nodes[0].Address}})
	if err != nil {
		t.Fatal(err)
	}
	defer stranger.Close()
	if _, err := stranger.Kubeconfig(ctx); err == nil || !strings.Contains(err.Error(), "node "+c.Nodes[0].Address) || !strings.Contains(err.Error(), "Unavailable") {
		t.Errorf("foreign CA: %v", err)
	}
}

// errorsCause unwraps to the gRPC status error.
func errorsCause(err error) error {
	for err != nil {
		if _, ok := status.FromError(err); ok {
			return err
		}
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return err
		}
		err = u.Unwrap()
	}
	return nil
}

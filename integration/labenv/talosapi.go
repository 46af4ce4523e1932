package labenv

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/siderolabs/talos/pkg/machinery/config"

	"github.com/bootcore-dev/bootcore/integration/talosapi"
	"github.com/bootcore-dev/bootcore/integration/talosemu"
	"github.com/bootcore-dev/bootcore/integration/testbed"
)

// StartTalosAPI starts a Talos API STAND-IN (integration/talosapi) for each control-plane
// node of test-bed cluster c, lab cluster name: machine configs built from the lab's
// controlplane patches, Kubeconfig handing out c's admin kubeconfig. It writes an os:admin
// talosconfig for them to talosconfig (every node as endpoint and node), what
// `talosctl gen config` gives a user.
func (l *Lab) StartTalosAPI(ctx context.Context, c *testbed.Cluster, name, talosconfig string) (*talosapi.Cluster, error) {
	kc, err := os.ReadFile(c.KubeconfigPath)
	if err != nil {
		return nil, err
	}
	o, err := talosapi.ForCluster(l.Repo, name, kc)
	if err != nil {
		return nil, err
	}
	nodes, err := c.Nodes(ctx, testbed.LabelControlPlane)
	if err != nil {
		return nil, err
	}
	if len(nodes) == 0 {
		return nil, fmt.Errorf("cluster %s has no control-plane node", name)
	}
	o.Nodes = len(nodes)
	// A config change makes Talos's manifest controller run again on that node, with the new
	// config (manifest_apply.go runs on every change of its inputs).
	o.OnConfig = func(ctx context.Context, node string, cfg config.Provider) error {
		objs, err := talosemu.Objects(talosemu.AllManifests(cfg))
		if err != nil {
			return err
		}
		_, err = (&talosemu.Node{Name: node, Config: c.Config}).ApplyUntilSuccess(ctx, objs, time.Minute)
		return err
	}
	tc, err := talosapi.Start(ctx, o)
	if err != nil {
		return nil, fmt.Errorf("%s: Talos API stand-in: %w", name, err)
	}
	if err := tc.WriteTalosconfig(talosconfig); err != nil {
		tc.Stop()
		return nil, err
	}
	return tc, nil
}

// Package talosapi is bootcore's client of the Talos API (machinery's client, as talosctl):
// it fetches the admin kubeconfig (talosctl kubeconfig) and drops bootcore's inline manifests
// from each control-plane node's machine config once Flux owns their objects (talosctl patch
// machineconfig --mode=no-reboot, with the checks talosctl leaves to the user).
package talosapi

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/cosi-project/runtime/pkg/safe"
	"github.com/siderolabs/go-talos-support/support/collectors"
	machineapi "github.com/siderolabs/talos/pkg/machinery/api/machine"
	"github.com/siderolabs/talos/pkg/machinery/client"
	clientconfig "github.com/siderolabs/talos/pkg/machinery/client/config"
	"github.com/siderolabs/talos/pkg/machinery/config"
	"github.com/siderolabs/talos/pkg/machinery/constants"
	configres "github.com/siderolabs/talos/pkg/machinery/resources/config"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Options select the talosconfig, its context and the nodes, with talosctl's meaning.
type Options struct {
	// Talosconfig is the file; empty: $TALOSCONFIG, then ~/.talos/config.
	Talosconfig string
	// Context overrides the talosconfig's current context.
	Context string
	// Nodes and Endpoints override the context's.
	Nodes     []string
	Endpoints []string
}

// Client is a Talos API client for one cluster's control-plane nodes.
type Client struct {
	c     *client.Client
	path  string
	ctx   string
	nodes []string
}

// DefaultPath is the talosconfig talosctl reads without --talosconfig.
func DefaultPath() (string, error) {
	if p, ok := os.LookupEnv(constants.TalosConfigEnvVar); ok && p != "" {
		return p, nil
	}
	dir, err := clientconfig.GetTalosDirectory()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, constants.TalosconfigFilename), nil
}

// New reads the talosconfig and prepares the client. It does not dial: the first call does.
// (machinery's clientconfig.Open creates a missing file, so the file is read here instead.)
func New(o Options) (*Client, error) {
	path := o.Talosconfig
	if path == "" {
		var err error
		if path, err = DefaultPath(); err != nil {
			return nil, fmt.Errorf("talosconfig: %w", err)
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("talosconfig: %w", err)
	}
	cfg, err := clientconfig.FromBytes(data)
	if err != nil {
		return nil, fmt.Errorf("talosconfig %s: %w", path, err)
	}
	name := cfg.Context
	if o.Context != "" {
		name = o.Context
	}
	cc, ok := cfg.Contexts[name]
	if !ok || name == "" {
		var names []string
		for n := range cfg.Contexts {
			names = append(names, n)
		}
		slices.Sort(names)
		return nil, fmt.Errorf("talosconfig %s: no context %q (contexts: %s)", path, name, strings.Join(names, ", "))
	}
	endpoints := o.Endpoints
	if len(endpoints) == 0 {
		endpoints = cc.Endpoints
	}
	if len(endpoints) == 0 {
		return nil, fmt.Errorf("talosconfig %s: context %q has no endpoints and --endpoints is not set", path, name)
	}
	nodes := o.Nodes
	if len(nodes) == 0 {
		nodes = cc.Nodes
	}
	opts := []client.OptionFunc{client.WithConfig(cfg), client.WithContextName(name), client.WithEndpoints(endpoints...)}
	c, err := client.New(context.Background(), opts...)
	if err != nil {
		return nil, fmt.Errorf("talosconfig %s context %q: %w", path, name, err)
	}
	return &Client{c: c, path: path, ctx: name, nodes: slices.Clone(nodes)}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.c.Close() }

// Nodes are the nodes from --nodes or the talosconfig context; empty when neither names any.
func (c *Client) Nodes() []string { return slices.Clone(c.nodes) }

// Describe names the talosconfig and context for messages (no secrets).
func (c *Client) Describe() string {
	s := fmt.Sprintf("Talos API (talosconfig %s, context %s, endpoints %s", c.path, c.ctx, strings.Join(c.c.GetEndpoints(), ","))
	if len(c.nodes) > 0 {
		s += ", nodes " + strings.Join(c.nodes, ",")
	}
	return s + ")"
}

// Kubeconfig fetches the cluster's admin kubeconfig as talosctl kubeconfig does, from the
// first node that answers (without nodes: from the endpoint itself). The errors name each node.
func (c *Client) Kubeconfig(ctx context.Context) ([]byte, error) {
	if len(c.nodes) == 0 {
		kc, err := c.c.Kubeconfig(ctx)
		if err != nil {
			return nil, fmt.Errorf("fetching the kubeconfig through the Talos API at %s: %w", strings.Join(c.c.GetEndpoints(), ","), err)
		}
		return kc, nil
	}
	var errs []error
	for _, n := range c.nodes {
		kc, err := c.c.Kubeconfig(client.WithNode(ctx, n))
		if err == nil {
			return kc, nil
		}
		errs = append(errs, fmt.Errorf("node %s: %w", n, err))
		// The same certificate is refused by every node; only an unreachable node is worth
		// trying past.
		if code := status.Code(err); ctx.Err() != nil || code == codes.PermissionDenied || code == codes.Unauthenticated {
			break
		}
	}
	return nil, fmt.Errorf("fetching the kubeconfig through the Talos API: %w", errors.Join(errs...))
}

// MachineConfig reads node's active machine config: the MachineConfig resource talosctl get
// machineconfig and talosctl patch machineconfig read.
func (c *Client) MachineConfig(ctx context.Context, node string) (config.Provider, error) {
	r, err := safe.StateGetByID[*configres.MachineConfig](client.WithNode(ctx, node), c.c.COSI, configres.ActiveID)
	if err != nil {
		return nil, fmt.Errorf("node %s: reading the machine config: %w", node, err)
	}
	return r.Provider(), nil
}

// InlineManifests lists which of names are inline manifests in node's machine config.
func (c *Client) InlineManifests(ctx context.Context, node string, names []string) ([]string, error) {
	cfg, err := c.MachineConfig(ctx, node)
	if err != nil {
		return nil, err
	}
	return Present(cfg, names), nil
}

// Release drops the inline manifests names from node's machine config with patch (the
// cluster's post-handover patch): it reads the node's config, skips a node without any of
// them (the patch removes list items by name, and on the v1alpha1 contract a missing item
// fails it), patches with configpatcher, checks the result, applies it without a reboot (with
// dryRun, the node only validates it) and reads it back. It returns the manifests removed.
func (c *Client) Release(ctx context.Context, node string, patch []byte, names []string, dryRun bool) ([]string, error) {
	cfg, err := c.MachineConfig(ctx, node)
	if err != nil {
		return nil, err
	}
	present := Present(cfg, names)
	if len(present) == 0 {
		return nil, nil
	}
	patched, err := PatchConfig(cfg, patch, names)
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", node, err)
	}
	data, err := patched.Bytes()
	if err != nil {
		return nil, fmt.Errorf("node %s: encoding the patched machine config: %w", node, err)
	}
	resp, err := c.c.ApplyConfiguration(client.WithNode(ctx, node), &machineapi.ApplyConfigurationRequest{
		Data: data, Mode: machineapi.ApplyConfigurationRequest_NO_REBOOT, DryRun: dryRun,
	})
	if err != nil {
		return nil, fmt.Errorf("node %s: Talos did not apply the machine config: %w", node, err)
	}
	if dryRun {
		return present, nil
	}
	for _, m := range resp.GetMessages() {
		if m.GetMode() != machineapi.ApplyConfigurationRequest_NO_REBOOT {
			return nil, fmt.Errorf("node %s: Talos applied the machine config in mode %s, not without a reboot (%s)", node, m.GetMode(), m.GetModeDetails())
		}
	}
	left, err := c.InlineManifests(ctx, node, names)
	if err != nil {
		return nil, err
	}
	if len(left) > 0 {
		return nil, fmt.Errorf("node %s: after applying the post-handover patch the machine config still has inline manifest(s) %s", node, strings.Join(left, ", "))
	}
	return present, nil
}

// SupportCollectors are go-talos-support's Talos collectors for each node (dmesg, service logs,
// resources, processes, version), under talos/<node>/ in a support bundle. A collector the
// node cannot serve leaves its file out.
func (c *Client) SupportCollectors(ctx context.Context, log collectors.Logger, nodes []string) []*collectors.Collector {
	var out []*collectors.Collector
	for _, node := range nodes {
		cols, _ := collectors.GetTalosNodeCollectors(client.WithNode(ctx, node), log, c.c)
		out = append(out, collectors.WithSource(collectors.WithFolder(cols, "talos/"+node), node)...)
	}
	return out
}

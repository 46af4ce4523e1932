package agent

import (
	"context"
	"fmt"
	"github.com/bootcore-dev/bootcore/talos"
	"os"
	"path/filepath"
	"strings"
)

// TalosAPI is the Talos API of the cluster's control-plane nodes (internal/talosapi). Every
// error names the node and carries the Talos API's own error.
type TalosAPI interface {
	// Nodes are the nodes from --nodes or the talosconfig context; empty when neither names
	// any (then the control-plane nodes' InternalIPs are used).
	Nodes() []string
	// Describe names the talosconfig and context for messages.
	Describe() string
	// InlineManifests lists which of names are inline manifests in node's machine config.
	InlineManifests(ctx context.Context, node string, names []string) ([]string, error)
	// Release applies patch to node's machine config, validated, without a reboot, and checks
	// that none of names remains; a node without any of them is left alone (nil result).
	// With dryRun the node only validates the result. It returns the manifests removed.
	Release(ctx context.Context, node string, patch []byte, names []string, dryRun bool) ([]string, error)
}

// bootcoreManifests are the inline manifests bootcore gen writes; the post-handover patch
// removes exactly these.
var bootcoreManifests = talos.Manifests

// talosNodes are the control-plane nodes the Talos API is asked about.
func (p *releaseTalosPhase) talosNodes(ctx context.Context) ([]string, error) {
	if nodes := p.s.opts.Talos.Nodes(); len(nodes) > 0 {
		return nodes, nil
	}
	nodes, err := controlPlaneAddresses(ctx, p.s.k.client)
	if err != nil {
		return nil, fmt.Errorf("listing the control-plane nodes for the Talos API: %w", err)
	}
	if len(nodes) == 0 {
		return nil, fmt.Errorf("no control-plane node to reach through the Talos API: pass --nodes")
	}
	return nodes, nil
}

// talosDone: every control-plane node's machine config is without bootcore's manifests.
func (p *releaseTalosPhase) talosDone(ctx context.Context) (bool, string, error) {
	nodes, err := p.talosNodes(ctx)
	if err != nil {
		return false, "", err
	}
	for _, n := range nodes {
		left, err := p.s.opts.Talos.InlineManifests(ctx, n, bootcoreManifests)
		if err != nil {
			return false, "", err
		}
		if len(left) > 0 {
			return false, fmt.Sprintf("node %s: the machine config still has inline manifest(s) %s", n, strings.Join(left, ", ")), nil
		}
	}
	return true, fmt.Sprintf("the machine configs of nodes %s have none of bootcore's inline manifests", strings.Join(nodes, ", ")), nil
}

// releaseNodes applies the post-handover patch through the Talos API, one control-plane node
// at a time, so a rejected config stops the phase with the other nodes either done or untouched.
func (p *releaseTalosPhase) releaseNodes(ctx context.Context) error {
	s := p.s
	path := filepath.Join(s.outDir(), "post-handover.yaml")
	patch, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("reading the post-handover patch bootcore gen wrote: %w", err)
	}
	nodes, err := p.talosNodes(ctx)
	if err != nil {
		return err
	}
	for _, n := range nodes {
		removed, err := s.opts.Talos.Release(ctx, n, patch, bootcoreManifests, s.opts.DryRun)
		if err != nil {
			return err
		}
		if len(removed) == 0 {
			s.rep.Emit(Event{Type: EventProgress, Phase: PhaseReleaseTalos, Object: "node " + n,
				Message: fmt.Sprintf("node %s: the machine config has none of bootcore's inline manifests", n)})
			continue
		}
		verb := "applied"
		if s.opts.DryRun {
			verb = "would apply (validated by the node)"
		}
		s.rep.Emit(Event{Type: EventChange, Phase: PhaseReleaseTalos, Object: "node " + n,
			Message: fmt.Sprintf("node %s: %s %s without a reboot: removed inline manifest(s) %s", n, verb, path, strings.Join(removed, ", "))})
	}
	return nil
}

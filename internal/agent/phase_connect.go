package agent

import (
	"context"
	"fmt"
	"time"

	"github.com/bootcore-dev/bootcore/internal/kube"
)

// connection is what connect found: the cluster's API, and which cluster it is.
type connection struct {
	k        *kube.Client
	uid      string            // kube-system namespace UID
	marker   *Marker           // the hand-over marker, nil before the first hand-over
	versions map[string]string // bootcore's and Kubernetes'
}

// connectPhase connects and refuses a cluster that is not the named one (the wrong-cluster
// guard): nothing is written before it passes. It only reads, so it always runs.
type connectPhase struct {
	in  *inputs
	rep *Reporter
}

func (p *connectPhase) Name() string { return PhaseConnect }
func (p *connectPhase) Title() string {
	return fmt.Sprintf("connecting to cluster %s through %s", p.in.cluster.Name, p.in.opts.Connector.Describe())
}

func (p *connectPhase) Done(context.Context) (Outcome[connection], error) {
	return Outcome[connection]{}, nil
}

func (p *connectPhase) DryRun(ctx context.Context) (connection, error) { return p.Run(ctx) }

func (p *connectPhase) Run(ctx context.Context) (connection, error) {
	in := p.in
	c := connection{versions: map[string]string{}}
	cfg, err := in.opts.Connector.Connect(ctx)
	if err != nil {
		return c, err
	}
	if c.k, err = kube.New(cfg, FieldManager); err != nil {
		return c, err
	}
	guard := func(err error) error {
		if err == nil || !in.opts.Force {
			return err
		}
		p.rep.Emit(Event{Type: EventWarning, Phase: PhaseConnect, Message: err.Error() + " (--force: going on anyway)"})
		return nil
	}
	if err := guard(checkEndpoint(in.cluster.Name, in.cluster.Endpoint, cfg.Host)); err != nil {
		return c, err
	}
	if c.uid, err = clusterUID(ctx, c.k.Clientset); err != nil {
		return c, err
	}
	if c.marker, err = readMarker(ctx, c.k.Clientset); err != nil {
		return c, err
	}
	if err := guard(checkIdentity(in.cluster.Name, c.uid, c.marker)); err != nil {
		return c, err
	}
	if in.opts.Version != "" {
		c.versions["bootcore"] = in.opts.Version
	}
	if v, err := c.k.Clientset.Discovery().ServerVersion(); err == nil {
		c.versions["kubernetes"] = v.GitVersion
	}
	msg := fmt.Sprintf("API server %s is cluster %s (kube-system UID %s)", cfg.Host, in.cluster.Name, c.uid)
	if c.marker != nil {
		msg += fmt.Sprintf("; handed over to Flux at %s", c.marker.HandedOverAt.UTC().Format(time.RFC3339))
	}
	p.rep.Emit(Event{Type: EventProgress, Phase: PhaseConnect, Message: msg})
	return c, nil
}

package agent

import (
	"context"
	"fmt"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/bootcore-dev/bootcore/internal/kube"
)

// waitCNIPhase waits until the CNI and cluster DNS Talos applied at boot have rolled out and
// cluster DNS answers: Flux's controllers, installed next, resolve their Git and chart hosts
// through it.
type waitCNIPhase struct{ env }

func (p *waitCNIPhase) Name() string { return PhaseWaitCNI }
func (p *waitCNIPhase) Title() string {
	return "waiting for the CNI and cluster DNS workloads Talos installed at boot to roll out, and for cluster DNS to answer"
}

func (p *waitCNIPhase) Done(ctx context.Context) (Outcome[struct{}], error) {
	ok, why, err := p.k.AllReady(ctx, p.required.Boot)
	if err != nil || !ok {
		return Outcome[struct{}]{Why: why}, err
	}
	ok, why, err = p.clusterDNSReady(ctx)
	return Outcome[struct{}]{Done: ok, Why: why}, err
}

func (p *waitCNIPhase) DryRun(ctx context.Context) (struct{}, error) {
	if err := p.wouldWait(ctx, PhaseWaitCNI, p.required.Boot); err != nil {
		return struct{}{}, err
	}
	ok, why, err := p.clusterDNSReady(ctx)
	if err == nil && !ok {
		p.rep.Emit(Event{Type: EventChange, Phase: PhaseWaitCNI, Message: "would wait for " + why})
	}
	return struct{}{}, err
}

func (p *waitCNIPhase) Run(ctx context.Context) (struct{}, error) {
	if err := p.wait(ctx, PhaseWaitCNI, p.required.Boot); err != nil {
		return struct{}{}, err
	}
	return struct{}{}, p.waitClusterDNS(ctx)
}

// Talos's own CoreDNS serves behind kube-system/kube-dns (its 11-core-dns-svc manifest).
const talosDNSNamespace, talosDNSService = "kube-system", "kube-dns"

// dnsServices are the Services of the boot DNS render that serve DNS (port 53): what Flux's
// pods resolve through (kube-system/kube-dns in the chart's usual values). Without a DNS boot
// release, cluster DNS is Talos's own CoreDNS behind kube-system/kube-dns: Talos applies it at
// boot too, and its pods start only once the CNI runs.
func (p *waitCNIPhase) dnsServices() (what string, svcs []kube.Ref, err error) {
	if len(p.boot.DNS) == 0 {
		return "cluster DNS (Talos's own CoreDNS)", []kube.Ref{{GVK: kube.Service, Namespace: talosDNSNamespace, Name: talosDNSService}}, nil
	}
	for _, o := range p.boot.DNS {
		if o.GroupVersionKind() != kube.Service {
			continue
		}
		if servesDNS(o.Object) {
			svcs = append(svcs, kube.RefOf(o))
		}
	}
	if len(svcs) == 0 {
		return "", nil, fmt.Errorf("%s: the DNS manifest has no Service on port 53 to resolve through", p.boot.Path)
	}
	return "cluster DNS", svcs, nil
}

func servesDNS(svc map[string]any) bool {
	spec, _ := svc["spec"].(map[string]any)
	ports, _ := spec["ports"].([]any)
	for _, port := range ports {
		if m, ok := port.(map[string]any); ok && fmt.Sprint(m["port"]) == "53" {
			return true
		}
	}
	return false
}

// clusterDNSReady: every DNS Service has a ready endpoint, i.e. a CoreDNS pod that passed its
// readiness probe sits behind the ClusterIP Flux's pods resolve through.
func (p *waitCNIPhase) clusterDNSReady(ctx context.Context) (bool, string, error) {
	what, svcs, err := p.dnsServices()
	if err != nil {
		return false, "", err
	}
	var ready []string
	for _, svc := range svcs {
		n, err := p.k.ReadyEndpoints(ctx, svc.Namespace, svc.Name)
		if err != nil {
			return false, "", err
		}
		if n == 0 {
			return false, what + ": " + svc.String() + " has no ready endpoint yet", nil
		}
		ready = append(ready, fmt.Sprintf("%s has %d ready endpoint(s)", svc, n))
	}
	return true, what + ": " + strings.Join(ready, ", "), nil
}

// waitClusterDNS waits until cluster DNS answers behind its Services, saying what it waits for
// whenever that changes.
func (p *waitCNIPhase) waitClusterDNS(ctx context.Context) error {
	var why string
	check := func(ctx context.Context) (bool, error) {
		ok, msg, err := p.clusterDNSReady(ctx)
		if err != nil && !kube.Transient(err) {
			return false, err
		}
		if err != nil {
			msg = err.Error()
		}
		if msg != why {
			why = msg
			p.rep.Emit(Event{Type: EventProgress, Phase: PhaseWaitCNI, Message: msg})
		}
		return ok, nil
	}
	interval := p.opts.PollInterval
	if interval <= 0 || interval > 5*time.Second {
		interval = 2 * time.Second
	}
	if err := wait.PollUntilContextCancel(ctx, interval, true, check); err != nil {
		if ctx.Err() != nil {
			return &kube.NotReadyError{What: "cluster DNS not ready", Details: []string{why + ": Flux's controllers could not resolve their Git and chart hosts"}}
		}
		return err
	}
	return nil
}

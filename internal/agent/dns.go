package agent

import (
	"context"
	"fmt"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/bootcore-dev/bootcore/internal/status"
)

// dnsServices are the Services of the boot DNS render that serve DNS (port 53): what Flux's
// pods resolve through (kube-system/kube-dns in the chart's usual values).
func dnsServices(boot *bootObjects) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range boot.DNS {
		if o.GetKind() != "Service" || o.GetAPIVersion() != "v1" {
			continue
		}
		ports, _, _ := unstructured.NestedSlice(o.Object, "spec", "ports")
		for _, p := range ports {
			if m, ok := p.(map[string]any); ok && fmt.Sprint(m["port"]) == "53" {
				out = append(out, o)
				break
			}
		}
	}
	return out
}

// Talos's own CoreDNS serves behind kube-system/kube-dns (its 11-core-dns-svc manifest).
const talosDNSNamespace, talosDNSService = "kube-system", "kube-dns"

// clusterDNSReady: every DNS Service of the boot render has a ready endpoint, i.e. a CoreDNS
// pod that passed its readiness probe sits behind the ClusterIP Flux's pods resolve through.
// Without a DNS boot release, cluster DNS is Talos's own CoreDNS, and its kube-dns Service is
// waited for the same way: Talos applies CoreDNS at boot too, and its pods start only once the
// CNI runs.
func (s *state) clusterDNSReady(ctx context.Context, boot *bootObjects) (bool, string, error) {
	type dnsService struct{ namespace, name string }
	var svcs []dnsService
	for _, svc := range dnsServices(boot) {
		svcs = append(svcs, dnsService{svc.GetNamespace(), svc.GetName()})
	}
	if len(boot.DNS) > 0 && len(svcs) == 0 {
		return false, "", fmt.Errorf("%s: the DNS manifest has no Service on port 53 to resolve through", boot.Path)
	}
	what := "cluster DNS"
	if len(boot.DNS) == 0 {
		what = "cluster DNS (Talos's own CoreDNS)"
		svcs = []dnsService{{talosDNSNamespace, talosDNSService}}
	}
	var ready []string
	for _, svc := range svcs {
		n, err := status.ReadyEndpoints(ctx, s.k.client, svc.namespace, svc.name)
		if err != nil {
			return false, "", err
		}
		ref := describeRef("Service", svc.namespace, svc.name)
		if n == 0 {
			return false, what + ": " + ref + " has no ready endpoint yet", nil
		}
		ready = append(ready, fmt.Sprintf("%s has %d ready endpoint(s)", ref, n))
	}
	return true, what + ": " + strings.Join(ready, ", "), nil
}

// waitClusterDNS waits until cluster DNS answers behind its Service (see clusterDNSReady):
// the Flux controllers installed next resolve their sources through it.
func (s *state) waitClusterDNS(ctx context.Context, boot *bootObjects) error {
	var why string
	check := func(ctx context.Context) (bool, error) {
		ok, msg, err := s.clusterDNSReady(ctx, boot)
		if err != nil && !transient(err) {
			return false, err
		}
		if err != nil {
			msg = err.Error()
		}
		if msg != why {
			why = msg
			s.rep.Emit(Event{Type: EventProgress, Phase: PhaseWaitCNI, Message: msg})
		}
		return ok, nil
	}
	if s.opts.DryRun {
		_, err := check(ctx)
		return err
	}
	interval := s.opts.PollInterval
	if interval <= 0 || interval > 5*time.Second {
		interval = 2 * time.Second
	}
	if err := wait.PollUntilContextCancel(ctx, interval, true, check); err != nil {
		if ctx.Err() != nil {
			return &NotReadyError{What: "cluster DNS not ready", Details: []string{why + ": Flux's controllers could not resolve their Git and chart hosts"}}
		}
		return err
	}
	return nil
}

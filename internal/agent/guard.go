package agent

import (
	"fmt"
	"net"
	"net/url"
	"strings"
)

// WrongClusterError is the guard's refusal: the API server is not the named cluster's.
type WrongClusterError struct{ Reason string }

func (e *WrongClusterError) Error() string { return "refusing to touch this cluster: " + e.Reason }

// hostPort normalises an API server address ("https://h:p", "h:p", "https://h") to
// "host:port", lower-case, with https' default port when none is given.
func hostPort(addr string) (string, error) {
	if !strings.Contains(addr, "://") {
		addr = "https://" + addr
	}
	u, err := url.Parse(addr)
	if err != nil {
		return "", err
	}
	if u.Host == "" {
		return "", fmt.Errorf("%q has no host", addr)
	}
	host, port := u.Hostname(), u.Port()
	if port == "" {
		port = "443"
		if u.Scheme == "http" {
			port = "80"
		}
	}
	return net.JoinHostPort(strings.ToLower(host), port), nil
}

// checkEndpoint refuses an API server whose host:port is not the cluster's spec endpoint.
// Comparing addresses is deliberately strict: a kubeconfig of the other cluster (or of a
// node reached another way) must not be mistaken for this one.
func checkEndpoint(cluster, specEndpoint, serverHost string) error {
	want, err := hostPort(specEndpoint)
	if err != nil {
		return fmt.Errorf("clusters[%s].endpoint: %w", cluster, err)
	}
	got, err := hostPort(serverHost)
	if err != nil {
		return fmt.Errorf("kubeconfig server: %w", err)
	}
	if got != want {
		return &WrongClusterError{Reason: fmt.Sprintf("the kubeconfig's API server is %s, but cluster %s's endpoint in the spec is %s", got, cluster, want)}
	}
	return nil
}

// checkIdentity refuses a cluster whose hand-over marker names another cluster, or whose
// kube-system namespace is not the one recorded at hand-over (same address, other cluster).
func checkIdentity(cluster, uid string, m *Marker) error {
	if m == nil {
		return nil
	}
	if m.Cluster != cluster {
		return &WrongClusterError{Reason: fmt.Sprintf("its hand-over marker %s/%s records cluster %q, not %q", MarkerNamespace, MarkerName, m.Cluster, cluster)}
	}
	if m.ClusterUID != uid {
		return &WrongClusterError{Reason: fmt.Sprintf("its kube-system namespace UID is %s, but the hand-over marker recorded %s (a different cluster behind the same address?)", uid, m.ClusterUID)}
	}
	return nil
}

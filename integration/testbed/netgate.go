package testbed

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// SiteDomain names the lab's own hosts (the Git server): <host>.lab.test:<port> is
// 127.0.0.1:<port>. The controllers reach them by name, because Go never proxies a loopback
// address, so a numbered URL would bypass the gate.
const SiteDomain = "lab.test"

// NetGate is the pod network of the controllers that run as pods in a real cluster (Flux's
// controllers, the flux-operator). On the bed they are processes on the host, which would
// reach the Git server and the chart registries whether or not the cluster has a network.
// On Talos a pod reaches them only once a CNI runs on its node and cluster DNS answers
// (source-controller resolves the Git host through kube-dns). The gate is an HTTP proxy in
// their environment that lets a request or tunnel out only while the cluster has a Ready
// node (the bed's kubelet stand-in reports Ready once the CNI pod runs there) and the
// kube-system/kube-dns Service has a ready endpoint; otherwise it answers 502, and says why
// in the cluster's log.
type NetGate struct {
	// URL is the proxy's URL (http://127.0.0.1:port).
	URL      string
	c        *Cluster
	upstream string // host:port of the proxy that tunnels go on to (the chart mirror); "" for none
	srv      *http.Server
	mu       sync.Mutex
	last     string // the last state logged
}

// StartNetGate starts the cluster's gate; CONNECT tunnels it admits go on through the HTTP
// proxy at upstream (host:port; "" refuses them). It stops with the cluster.
func (c *Cluster) StartNetGate(upstream string) (*NetGate, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	g := &NetGate{URL: "http://" + l.Addr().String(), c: c, upstream: upstream}
	g.srv = &http.Server{Handler: g, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = g.srv.Serve(l) }()
	c.onStop(func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return g.srv.Shutdown(ctx)
	})
	return g, nil
}

// Env is the environment that sends a process's HTTP and HTTPS traffic through the gate
// (the API server, on a loopback address, stays direct), trusting the PEM CA in caFile.
func (g *NetGate) Env(caFile string) []string {
	env := []string{
		"HTTPS_PROXY=" + g.URL, "https_proxy=" + g.URL, "HTTP_PROXY=" + g.URL, "http_proxy=" + g.URL,
		"NO_PROXY=127.0.0.1,localhost", "no_proxy=127.0.0.1,localhost",
	}
	if caFile != "" {
		env = append(env, "SSL_CERT_FILE="+caFile)
	}
	return env
}

// SiteURL is u (a URL on 127.0.0.1) with its host named host.lab.test, reachable through the gate.
func SiteURL(u, host string) string {
	return strings.Replace(u, "://127.0.0.1:", "://"+host+"."+SiteDomain+":", 1)
}

// Open returns nil when the cluster's pods have a network and cluster DNS, else the reason.
func (g *NetGate) Open(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	nodes, err := g.c.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("no pod network: listing nodes: %w", err)
	}
	if !anyNodeReady(nodes.Items) {
		return errors.New("no pod network: no node is Ready (a node's CNI is not running)")
	}
	slices, err := g.c.Client.DiscoveryV1().EndpointSlices("kube-system").List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=kube-dns"})
	if err != nil {
		return fmt.Errorf("no cluster DNS: listing kube-dns endpoints: %w", err)
	}
	for _, s := range slices.Items {
		for _, e := range s.Endpoints {
			if e.Conditions.Ready == nil || *e.Conditions.Ready {
				return nil
			}
		}
	}
	return errors.New("no cluster DNS: Service kube-system/kube-dns has no ready endpoint")
}

func anyNodeReady(nodes []corev1.Node) bool {
	for _, n := range nodes {
		for _, cond := range n.Status.Conditions {
			if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
				return true
			}
		}
	}
	return false
}

// ServeHTTP admits CONNECT tunnels (to the upstream proxy) and absolute-URL requests for the
// site's hosts (to 127.0.0.1) while the gate is open.
func (g *NetGate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	host := r.Host
	if r.Method != http.MethodConnect {
		if !r.URL.IsAbs() {
			http.Error(w, "network gate: not a proxy request", http.StatusNotFound)
			return
		}
		host = r.URL.Host
	}
	err := g.Open(r.Context())
	g.logState(host, err)
	if err != nil {
		http.Error(w, "network gate: "+host+": "+err.Error(), http.StatusBadGateway)
		return
	}
	if r.Method == http.MethodConnect {
		g.tunnel(w, r)
		return
	}
	name, port, err := net.SplitHostPort(host)
	if err != nil || !strings.HasSuffix(name, "."+SiteDomain) {
		http.Error(w, "network gate: lookup "+host+": no such host", http.StatusBadGateway)
		return
	}
	target := net.JoinHostPort("127.0.0.1", port)
	(&httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme = "http"
			pr.Out.URL.Host = target
			pr.Out.Host = host
		},
		// A server that is down: what a pod would see as "connection refused" reaches the
		// client as a 502 from the gate, and the dial error goes to the cluster's log.
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			g.c.logf("testbed: %s: network gate: %s: %v", g.c.Name, host, err)
			http.Error(w, "network gate: "+host+": "+err.Error(), http.StatusBadGateway)
		},
	}).ServeHTTP(w, r)
}

// tunnel hands a CONNECT on to the upstream proxy and relays the bytes both ways (the upstream's
// answer to the CONNECT included).
func (g *NetGate) tunnel(w http.ResponseWriter, r *http.Request) {
	if g.upstream == "" {
		http.Error(w, "network gate: "+r.Host+": no route", http.StatusBadGateway)
		return
	}
	up, err := net.DialTimeout("tcp", g.upstream, 5*time.Second)
	if err != nil {
		http.Error(w, "network gate: "+err.Error(), http.StatusBadGateway)
		return
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		up.Close()
		http.Error(w, "network gate: no hijack", http.StatusInternalServerError)
		return
	}
	conn, buf, err := hj.Hijack()
	if err != nil {
		up.Close()
		return
	}
	if _, err := fmt.Fprintf(up, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", r.Host, r.Host); err != nil {
		up.Close()
		conn.Close()
		return
	}
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, buf); done <- struct{}{} }()
	go func() { _, _ = io.Copy(conn, up); done <- struct{}{} }()
	go func() {
		<-done
		up.Close()
		conn.Close()
	}()
}

// logState logs when the gate opens or closes (not every request).
func (g *NetGate) logState(host string, err error) {
	state := "open"
	if err != nil {
		state = "closed: " + err.Error()
	}
	g.mu.Lock()
	changed := state != g.last
	g.last = state
	g.mu.Unlock()
	if changed {
		g.c.logf("testbed: %s: network gate %s (request for %s)", g.c.Name, state, host)
	}
}

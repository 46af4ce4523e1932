// Package talosapi is a STAND-IN for the Talos API of a cluster's control-plane nodes, for
// tests and the lab. It is not Talos: each node is a gRPC server on loopback with mutual TLS
// (server and client certificates issued from the OS CA of a machinery secrets bundle, roles
// in the client certificate's organization, as Talos's apid checks them), serving what
// bootcore's agent calls, as talosctl would:
//
//   - MachineService.Kubeconfig: the cluster's admin kubeconfig as a tar.gz stream holding one
//     file "kubeconfig" (what machinery's client.Kubeconfig unpacks);
//   - COSI State.Get of the MachineConfig resource (config namespace, ID v1alpha1): the node's
//     machine config, generated with machinery (generate + configpatcher, as talosctl gen config
//     --config-patch-control-plane) from the lab's controlplane patches;
//   - MachineService.ApplyConfiguration: the config is loaded with configloader and validated
//     with ValidateAtRuntime as a metal node does, then becomes the node's config (no reboot),
//     and Options.OnConfig runs (the manifest re-apply of a config change); dry-run validates
//     only. Reject makes a node refuse every config.
//
// Requests carry the target node in the "node" metadata (client.WithNode); any node's server
// answers for every node of the cluster, as apid proxies to the named node. A stopped node is
// unreachable through every endpoint. Not served: one-to-many requests ("nodes"), every other
// API, and Talos's judgement of which changes need a reboot (every change applies live).
package talosapi

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	stdx509 "crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"sync"
	"time"

	cosiv1alpha1 "github.com/cosi-project/runtime/api/v1alpha1"
	"github.com/cosi-project/runtime/pkg/state"
	"github.com/cosi-project/runtime/pkg/state/impl/inmem"
	"github.com/cosi-project/runtime/pkg/state/impl/namespaced"
	cosiserver "github.com/cosi-project/runtime/pkg/state/protobuf/server"
	"github.com/siderolabs/crypto/x509"
	"github.com/siderolabs/talos/pkg/machinery/api/common"
	machineapi "github.com/siderolabs/talos/pkg/machinery/api/machine"
	clientconfig "github.com/siderolabs/talos/pkg/machinery/client/config"
	"github.com/siderolabs/talos/pkg/machinery/config"
	"github.com/siderolabs/talos/pkg/machinery/config/configloader"
	"github.com/siderolabs/talos/pkg/machinery/config/configpatcher"
	"github.com/siderolabs/talos/pkg/machinery/config/generate"
	"github.com/siderolabs/talos/pkg/machinery/config/generate/secrets"
	"github.com/siderolabs/talos/pkg/machinery/config/machine"
	"github.com/siderolabs/talos/pkg/machinery/constants"
	configres "github.com/siderolabs/talos/pkg/machinery/resources/config"
	"github.com/siderolabs/talos/pkg/machinery/role"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
)

// Options describe the cluster the stand-in nodes belong to.
type Options struct {
	ClusterName       string
	Endpoint          string // Kubernetes API endpoint, https://host:port
	KubernetesVersion string
	TalosVersion      string // version contract, e.g. v1.13.9
	// Patches are the control-plane config patches in order (the spec's static patches, then
	// gen's controlplane.yaml).
	Patches [][]byte
	// Kubeconfig is the admin kubeconfig Kubeconfig hands out.
	Kubeconfig []byte
	// Nodes is the number of control-plane nodes; default 3.
	Nodes int
	// OnConfig, if set, runs after a node accepted a new config (not a dry run), before
	// ApplyConfiguration answers: Talos's manifest controller re-applies the manifests on every
	// config change (labenv runs talosemu there). Its error is the node's log line, not the
	// API's answer.
	OnConfig func(ctx context.Context, node string, cfg config.Provider) error
}

// Cluster is a set of stand-in control-plane nodes.
type Cluster struct {
	Name         string
	talosVersion string
	Nodes        []*Node
	bundle       *secrets.Bundle
	kubeconfig   []byte
	onConfig     func(ctx context.Context, node string, cfg config.Provider) error
	logMu        sync.Mutex
	configErrs   []string // what OnConfig returned ("node: error"), as the nodes' logs
}

// Node is one stand-in control-plane node; its Address is both its endpoint and its node name.
type Node struct {
	Address string
	cluster *Cluster
	srv     *grpc.Server

	mu       sync.Mutex
	st       state.State
	cfg      config.Provider
	applied  int // accepted ApplyConfiguration calls that changed the config (not dry-run)
	requests int // ApplyConfiguration calls, dry-run and refused included
	reject   string
	stopped  bool
}

// Start generates the machine config and starts the nodes on 127.0.0.1.
func Start(ctx context.Context, o Options) (*Cluster, error) {
	if o.Nodes == 0 {
		o.Nodes = 3
	}
	contract, err := config.ParseContractFromVersion(o.TalosVersion)
	if err != nil {
		return nil, fmt.Errorf("talos version %q: %w", o.TalosVersion, err)
	}
	bundle, err := secrets.NewBundle(secrets.NewClock(), contract)
	if err != nil {
		return nil, err
	}
	in, err := generate.NewInput(o.ClusterName, o.Endpoint, o.KubernetesVersion,
		generate.WithVersionContract(contract), generate.WithSecretsBundle(bundle),
		generate.WithInstallDisk("/dev/sda"))
	if err != nil {
		return nil, err
	}
	cfg, err := in.Config(machine.TypeControlPlane)
	if err != nil {
		return nil, err
	}
	for i, data := range o.Patches {
		p, err := configpatcher.LoadPatch(data)
		if err != nil {
			return nil, fmt.Errorf("patch %d: %w", i+1, err)
		}
		out, err := configpatcher.Apply(configpatcher.WithConfig(cfg), []configpatcher.Patch{p})
		if err != nil {
			return nil, fmt.Errorf("patch %d: %w", i+1, err)
		}
		if cfg, err = out.Config(); err != nil {
			return nil, fmt.Errorf("patch %d: %w", i+1, err)
		}
	}
	c := &Cluster{Name: o.ClusterName, talosVersion: o.TalosVersion, bundle: bundle, kubeconfig: o.Kubeconfig, onConfig: o.OnConfig}
	for range o.Nodes {
		n := &Node{cluster: c, st: state.WrapCore(namespaced.NewState(inmem.Build))}
		// Every node boots from the same config, validated as it would be.
		if err := n.validate(ctx, cfg); err != nil {
			return nil, fmt.Errorf("the generated machine config: %w", err)
		}
		if err := n.st.Create(ctx, configres.NewMachineConfig(cfg)); err != nil {
			return nil, err
		}
		n.cfg = cfg
		c.Nodes = append(c.Nodes, n)
	}
	for _, n := range c.Nodes {
		if err := n.serve(); err != nil {
			c.Stop()
			return nil, err
		}
	}
	return c, nil
}

// ConfigErrors are the errors of Options.OnConfig so far ("node: error"): the nodes' logs.
func (c *Cluster) ConfigErrors() []string {
	c.logMu.Lock()
	defer c.logMu.Unlock()
	return slices.Clone(c.configErrs)
}

// Stop stops every node's server.
func (c *Cluster) Stop() {
	for _, n := range c.Nodes {
		n.Stop()
	}
}

// Addresses are the nodes' addresses (endpoints and node names).
func (c *Cluster) Addresses() []string {
	var out []string
	for _, n := range c.Nodes {
		out = append(out, n.Address)
	}
	return out
}

// Talosconfig is a talosconfig (machinery clientconfig) for the cluster: context named after
// the cluster, every node as endpoint and node, and a client certificate with roles (default
// os:admin, as talosctl gen config writes).
func (c *Cluster) Talosconfig(roles ...role.Role) ([]byte, error) {
	if len(roles) == 0 {
		roles = []role.Role{role.Admin}
	}
	cert, err := c.bundle.GenerateTalosAPIClientCertificate(role.MakeSet(roles...))
	if err != nil {
		return nil, err
	}
	cfg := clientconfig.NewConfig(c.Name, c.Addresses(), c.bundle.Certs.OS.Crt, cert)
	cfg.Contexts[c.Name].Nodes = c.Addresses()
	return cfg.Bytes()
}

// WriteTalosconfig writes Talosconfig(roles...) to path (mode 0600).
func (c *Cluster) WriteTalosconfig(path string, roles ...role.Role) error {
	data, err := c.Talosconfig(roles...)
	if err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o600)
}

// Config is the node's current machine config.
func (n *Node) Config() config.Provider {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cfg
}

// Applied counts the configs the node accepted and applied (dry-runs and refusals excluded).
func (n *Node) Applied() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.applied
}

// Requests counts every ApplyConfiguration call the node received.
func (n *Node) Requests() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.requests
}

// Reject makes the node refuse every config with reason (as failed validation); "" accepts again.
func (n *Node) Reject(reason string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.reject = reason
}

// Stop stops the node's server; the node is unreachable through every endpoint afterwards.
func (n *Node) Stop() {
	n.mu.Lock()
	n.stopped = true
	n.mu.Unlock()
	if n.srv != nil {
		n.srv.Stop()
	}
}

func (n *Node) serve() error {
	ca, err := x509.NewCertificateAuthorityFromCertificateAndKey(n.cluster.bundle.Certs.OS)
	if err != nil {
		return err
	}
	// Like apid's: issued from the OS CA for the node's addresses.
	kp, err := x509.NewKeyPair(ca, x509.IPAddresses([]net.IP{net.ParseIP("127.0.0.1")}), x509.CommonName("apid"),
		x509.NotAfter(time.Now().Add(24*time.Hour)), x509.ExtKeyUsage([]stdx509.ExtKeyUsage{stdx509.ExtKeyUsageServerAuth}))
	if err != nil {
		return err
	}
	pool := stdx509.NewCertPool()
	if !pool.AppendCertsFromPEM(n.cluster.bundle.Certs.OS.Crt) {
		return errors.New("OS CA: no certificate")
	}
	tlsCfg := &tls.Config{
		Certificates: []tls.Certificate{*kp.Certificate},
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS13,
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	n.Address = lis.Addr().String()
	n.srv = grpc.NewServer(grpc.Creds(credentials.NewTLS(tlsCfg)),
		grpc.MaxRecvMsgSize(constants.GRPCMaxMessageSize), // Talos >= 1.13 accepts configs this large
		grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			if err := authorize(ctx); err != nil {
				return nil, err
			}
			return h(ctx, req)
		}),
		grpc.StreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			if err := authorize(ss.Context()); err != nil {
				return err
			}
			return h(srv, ss)
		}))
	machineapi.RegisterMachineServiceServer(n.srv, &machineService{endpoint: n})
	cosiv1alpha1.RegisterStateServer(n.srv, &cosiState{endpoint: n})
	go n.srv.Serve(lis) //nolint:errcheck // ends with Stop
	return nil
}

// authorize lets only os:admin certificates through: every call served here needs it in Talos
// (the kubeconfig, applying configs, and the MachineConfig resource, which is sensitive).
func authorize(ctx context.Context) error {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return status.Error(codes.Unauthenticated, "no peer")
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.PeerCertificates) == 0 {
		return status.Error(codes.Unauthenticated, "no client certificate")
	}
	if !slices.Contains(info.State.PeerCertificates[0].Subject.Organization, string(role.Admin)) {
		return status.Error(codes.PermissionDenied, "not authorized")
	}
	return nil
}

// target is the node a request is for: the "node" metadata, else the endpoint itself.
func (n *Node) target(ctx context.Context) (*Node, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	if len(md.Get("nodes")) > 0 {
		return nil, status.Error(codes.Unimplemented, "the Talos API stand-in serves one node per request (client.WithNode)")
	}
	t := n
	if names := md.Get("node"); len(names) > 0 {
		t = nil
		for _, cand := range n.cluster.Nodes {
			if cand.Address == names[0] {
				t = cand
			}
		}
		if t == nil {
			return nil, status.Errorf(codes.Unavailable, "connection error: node %s is not a node of cluster %s", names[0], n.cluster.Name)
		}
	}
	t.mu.Lock()
	stopped := t.stopped
	t.mu.Unlock()
	if stopped {
		return nil, status.Errorf(codes.Unavailable, "connection error: node %s: connection refused", t.Address)
	}
	return t, nil
}

// Validate checks the node's current config as the node checks a config it receives.
func (n *Node) Validate(ctx context.Context) error {
	return n.validate(ctx, n.Config())
}

// validate is what a metal node checks before it accepts a config.
func (n *Node) validate(ctx context.Context, cfg config.Provider) error {
	_, err := cfg.ValidateAtRuntime(ctx, n.st, metalMode{})
	return err
}

type metalMode struct{}

func (metalMode) String() string        { return "metal" }
func (metalMode) RequiresInstall() bool { return true }
func (metalMode) InContainer() bool     { return false }

type machineService struct {
	machineapi.UnimplementedMachineServiceServer
	endpoint *Node
}

// Kubeconfig streams a tar.gz archive holding the file "kubeconfig", as machined does.
func (s *machineService) Kubeconfig(_ *emptypb.Empty, srv grpc.ServerStreamingServer[common.Data]) error {
	n, err := s.endpoint.target(srv.Context())
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	kc := n.cluster.kubeconfig
	if err := tw.WriteHeader(&tar.Header{Name: "kubeconfig", Mode: 0o600, Size: int64(len(kc)), ModTime: time.Now()}); err != nil {
		return err
	}
	if _, err := tw.Write(kc); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := gz.Close(); err != nil {
		return err
	}
	for data := buf.Bytes(); len(data) > 0; {
		chunk := data[:min(len(data), 4096)]
		data = data[len(chunk):]
		if err := srv.Send(&common.Data{Bytes: chunk}); err != nil {
			return err
		}
	}
	return nil
}

// Version answers as machined does (go-talos-support's "summary" collector reads it).
func (s *machineService) Version(ctx context.Context, _ *emptypb.Empty) (*machineapi.VersionResponse, error) {
	n, err := s.endpoint.target(ctx)
	if err != nil {
		return nil, err
	}
	return &machineapi.VersionResponse{Messages: []*machineapi.Version{{
		Metadata: &common.Metadata{Hostname: n.Address},
		Version:  &machineapi.VersionInfo{Tag: n.cluster.talosVersion, Arch: "amd64", Os: "linux", GoVersion: "stand-in"},
	}}}, nil
}

// ApplyConfiguration loads and validates the config as a node does; accepted, it becomes the
// node's config (no reboot).
func (s *machineService) ApplyConfiguration(ctx context.Context, req *machineapi.ApplyConfigurationRequest) (*machineapi.ApplyConfigurationResponse, error) {
	n, err := s.endpoint.target(ctx)
	if err != nil {
		return nil, err
	}
	n.mu.Lock()
	n.requests++
	reject := n.reject
	n.mu.Unlock()
	if reject != "" {
		return nil, status.Errorf(codes.InvalidArgument, "configuration validation failed: %s", reject)
	}
	cfg, err := configloader.NewFromBytes(req.GetData())
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "failed to load config: %v", err)
	}
	if err := n.validate(ctx, cfg); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "configuration validation failed: %v", err)
	}
	switch req.GetMode() {
	case machineapi.ApplyConfigurationRequest_NO_REBOOT, machineapi.ApplyConfigurationRequest_AUTO:
	default:
		return nil, status.Errorf(codes.Unimplemented, "the Talos API stand-in applies configs without a reboot only, not in mode %s", req.GetMode())
	}
	details := "Applied configuration without a reboot"
	if req.GetDryRun() {
		details = "Dry run summary: applied configuration without a reboot (dry run)"
	} else {
		n.mu.Lock()
		cur, err := n.st.Get(ctx, configres.NewMachineConfig(nil).Metadata())
		if err == nil {
			next := configres.NewMachineConfig(cfg)
			next.Metadata().SetVersion(cur.Metadata().Version())
			err = n.st.Update(ctx, next)
		}
		if err == nil {
			n.cfg = cfg
			n.applied++
		}
		n.mu.Unlock()
		if err != nil {
			return nil, status.Errorf(codes.Internal, "storing the config: %v", err)
		}
		if f := n.cluster.onConfig; f != nil {
			if err := f(ctx, n.Address, cfg); err != nil {
				n.cluster.logMu.Lock()
				n.cluster.configErrs = append(n.cluster.configErrs, n.Address+": "+err.Error())
				n.cluster.logMu.Unlock()
			}
		}
	}
	return &machineapi.ApplyConfigurationResponse{Messages: []*machineapi.ApplyConfiguration{{
		Metadata: &common.Metadata{Hostname: n.Address},
		Mode:     machineapi.ApplyConfigurationRequest_NO_REBOOT, ModeDetails: details,
	}}}, nil
}

// cosiState serves COSI State.Get from the target node's resources.
type cosiState struct {
	cosiv1alpha1.UnimplementedStateServer
	endpoint *Node
}

func (s *cosiState) Get(ctx context.Context, req *cosiv1alpha1.GetRequest) (*cosiv1alpha1.GetResponse, error) {
	n, err := s.endpoint.target(ctx)
	if err != nil {
		return nil, err
	}
	return cosiserver.NewState(n.st).Get(ctx, req)
}

package main

import (
	"fmt"
	"runtime/debug"

	"github.com/spf13/cobra"
)

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "bootcore",
		Short:         "Boot Talos clusters straight into Flux GitOps",
		Long:          "bootcore renders the CNI and CRDs of a Flux GitOps tree into Talos machine-config patches,\nso the network exists when the nodes boot and Flux can take over from there.",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	global.register(root)
	root.AddCommand(newGenCmd(), newCheckCmd(), newVersionCmd())
	root.AddCommand(newAgentCmd())
	root.AddCommand(newStatusCmd())
	return root
}

// version is stamped by the Makefile (-X main.version=...).
var version = "dev"

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print bootcore's version and the versions of the libraries it renders with",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "bootcore %s\n", version)
			info, ok := debug.ReadBuildInfo()
			if !ok {
				return nil
			}
			fmt.Fprintf(w, "go %s\n", info.GoVersion)
			for _, s := range info.Settings {
				switch s.Key {
				case "vcs.revision", "vcs.time", "vcs.modified", "GOOS", "GOARCH":
					fmt.Fprintf(w, "%s %s\n", s.Key, s.Value)
				}
			}
			for _, dep := range info.Deps {
				switch dep.Path {
				case "helm.sh/helm/v3", "github.com/siderolabs/talos/pkg/machinery",
					"github.com/fluxcd/flux2/v2", "github.com/fluxcd/pkg/ssa", "github.com/fluxcd/pkg/kustomize",
					"github.com/fluxcd/helm-controller/api", "sigs.k8s.io/kustomize/api", "k8s.io/client-go":
					fmt.Fprintf(w, "%s %s\n", dep.Path, dep.Version)
				}
			}
			return nil
		},
	}
}

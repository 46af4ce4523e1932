package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"runtime/debug"
	"slices"

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

// version is stamped by make build, make release and the image (-X main.version=...). Left
// empty (go build, go install), it comes from the binary's build info: see buildVersion.
var version = ""

func init() {
	info, ok := debug.ReadBuildInfo()
	version = buildVersion(version, info, ok)
}

// buildVersion is the stamped version; else the module version the go command recorded
// (go install …@v1.2.3, or a pseudo-version from VCS); else "dev" plus the VCS revision and
// whether the tree was modified, when the build recorded them (not with -buildvcs=false).
func buildVersion(stamped string, info *debug.BuildInfo, ok bool) string {
	if stamped != "" {
		return stamped
	}
	if !ok {
		return "dev"
	}
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev, modified string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	if rev == "" {
		return "dev"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if modified == "true" {
		return "dev-" + rev + "-dirty"
	}
	return "dev-" + rev
}

func newVersionCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print bootcore's version and the versions of the libraries it renders with",
		Long: `version prints bootcore's version: the one stamped at build time (make build, make release,
the image), else the module version the go command recorded, else dev and the VCS revision
when the build recorded one; then the Go version, the VCS settings and the versions of Helm,
Talos machinery, Flux and kustomize it links.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "text" && output != "json" {
				return &exitError{code: exitInvalid, msg: fmt.Sprintf("-o %q: want text or json", output)}
			}
			v := versionInfo{Version: version, Build: map[string]string{}, Modules: map[string]string{}}
			if info, ok := debug.ReadBuildInfo(); ok {
				v.Go = info.GoVersion
				for _, s := range info.Settings {
					switch s.Key {
					case "vcs.revision", "vcs.time", "vcs.modified", "GOOS", "GOARCH":
						v.Build[s.Key] = s.Value
					}
				}
				for _, dep := range info.Deps {
					switch dep.Path {
					case "helm.sh/helm/v3", "github.com/siderolabs/talos/pkg/machinery",
						"github.com/fluxcd/flux2/v2", "github.com/fluxcd/pkg/ssa", "github.com/fluxcd/pkg/kustomize",
						"github.com/fluxcd/helm-controller/api", "sigs.k8s.io/kustomize/api", "k8s.io/client-go":
						v.Modules[dep.Path] = dep.Version
					}
				}
			}
			w := cmd.OutOrStdout()
			if output == "json" {
				return json.NewEncoder(w).Encode(v)
			}
			fmt.Fprintf(w, "bootcore %s\n", v.Version)
			if v.Go != "" {
				fmt.Fprintf(w, "go %s\n", v.Go)
			}
			for _, k := range slices.Sorted(maps.Keys(v.Build)) {
				fmt.Fprintf(w, "%s %s\n", k, v.Build[k])
			}
			for _, k := range slices.Sorted(maps.Keys(v.Modules)) {
				fmt.Fprintf(w, "%s %s\n", k, v.Modules[k])
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"text", "json"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

type versionInfo struct {
	Version string            `json:"version"`
	Go      string            `json:"go,omitempty"`
	Build   map[string]string `json:"build"`
	Modules map[string]string `json:"modules"`
}

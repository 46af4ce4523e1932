package agent

import (
	"context"
	"fmt"
	"os"
	"strings"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Connector gives the agent the cluster's API: Kubeconfig, or the kubeconfig fetched from the
// Talos API (internal/talosapi).
type Connector interface {
	Connect(ctx context.Context) (*rest.Config, error)
	// Describe names the source for messages, e.g. "kubeconfig /home/me/.kube/config".
	Describe() string
}

// Kubeconfig connects with a kubeconfig file: Path, else $KUBECONFIG, else ~/.kube/config.
type Kubeconfig struct {
	Path    string
	Context string
}

func (k Kubeconfig) rules() *clientcmd.ClientConfigLoadingRules {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if k.Path != "" {
		rules.ExplicitPath = k.Path
	}
	return rules
}

// Connect loads the kubeconfig.
func (k Kubeconfig) Connect(context.Context) (*rest.Config, error) {
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(k.rules(), &clientcmd.ConfigOverrides{CurrentContext: k.Context})
	cfg, err := cc.ClientConfig()
	if clientcmd.IsEmptyConfig(err) {
		// client-go's own message suggests KUBERNETES_MASTER, which bootcore does not read.
		return nil, fmt.Errorf("no kubeconfig: %s is missing or empty; give --kubeconfig F, or --talosconfig F to fetch it through the Talos API", strings.TrimPrefix(k.Describe(), "kubeconfig "))
	}
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	return cfg, nil
}

// Describe names the kubeconfig.
func (k Kubeconfig) Describe() string {
	path := k.Path
	if path == "" {
		path = strings.Join(k.rules().Precedence, string(os.PathListSeparator))
	}
	if k.Context != "" {
		return fmt.Sprintf("kubeconfig %s (context %s)", path, k.Context)
	}
	return "kubeconfig " + path
}

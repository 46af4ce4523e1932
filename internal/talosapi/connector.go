package talosapi

import (
	"context"
	"fmt"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/bootcore-dev/bootcore/internal/atomicfile"
)

// Connector gives the agent the cluster's API through the Talos API: the admin kubeconfig
// Talos hands out, kept in memory. It is written to disk only when WriteKubeconfig is set.
type Connector struct {
	Client *Client
	// WriteKubeconfig, when set, receives the fetched kubeconfig (mode 0600, replaced atomically).
	WriteKubeconfig string
}

// Connect fetches the kubeconfig and builds the client config from it.
func (c *Connector) Connect(ctx context.Context) (*rest.Config, error) {
	kc, err := c.Client.Kubeconfig(ctx)
	if err != nil {
		return nil, err
	}
	cfg, err := clientcmd.RESTConfigFromKubeConfig(kc)
	if err != nil {
		// Not wrapping the parser's error: it may quote the file, which holds a client key.
		return nil, fmt.Errorf("the kubeconfig from the Talos API does not load")
	}
	if c.WriteKubeconfig != "" {
		if err := atomicfile.Write(c.WriteKubeconfig, kc, 0o600); err != nil {
			return nil, fmt.Errorf("--write-kubeconfig: %w", err)
		}
	}
	return cfg, nil
}

// Describe names the source for messages.
func (c *Connector) Describe() string {
	return "the kubeconfig from the " + c.Client.Describe()
}

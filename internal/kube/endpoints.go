package kube

import (
	"context"
	"fmt"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ReadyEndpoints counts the ready addresses of a Service's EndpointSlices: how many pods that
// passed their readiness probe answer behind its ClusterIP.
func (c *Client) ReadyEndpoints(ctx context.Context, namespace, name string) (int, error) {
	list, err := c.Clientset.DiscoveryV1().EndpointSlices(namespace).List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=" + name})
	if err != nil {
		return 0, fmt.Errorf("EndpointSlices of Service %s/%s: %w", namespace, name, err)
	}
	n := 0
	for _, sl := range list.Items {
		for _, ep := range sl.Endpoints {
			if ep.Conditions.Ready == nil || *ep.Conditions.Ready {
				n += len(ep.Addresses)
			}
		}
	}
	return n, nil
}

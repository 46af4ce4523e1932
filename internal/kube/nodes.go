package kube

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"
)

// ControlPlaneLabel marks control-plane nodes (Talos sets it).
const ControlPlaneLabel = "node-role.kubernetes.io/control-plane"

// NodesReport is one look at the nodes a wait is for.
type NodesReport struct {
	Nodes    int
	NotReady map[string]string // node name -> its Ready condition
}

// Ready says whether there are nodes and every one is Ready.
func (r NodesReport) Ready() bool { return r.Nodes > 0 && len(r.NotReady) == 0 }

// String names the nodes not Ready with their condition, or says there are none yet.
func (r NodesReport) String() string {
	if r.Nodes == 0 {
		return "no node labelled " + ControlPlaneLabel + " yet"
	}
	names := make([]string, 0, len(r.NotReady))
	for name := range r.NotReady {
		names = append(names, name)
	}
	sort.Strings(names)
	parts := make([]string, 0, len(names))
	for _, name := range names {
		parts = append(parts, fmt.Sprintf("%s (%s)", name, r.NotReady[name]))
	}
	return "control-plane nodes not Ready: " + strings.Join(parts, ", ")
}

func nodesReport(nodes []*corev1.Node) NodesReport {
	r := NodesReport{Nodes: len(nodes), NotReady: map[string]string{}}
	for _, n := range nodes {
		if ok, msg := Node(n); !ok {
			r.NotReady[n.Name] = msg
		}
	}
	return r
}

// ControlPlaneNodes reads the control-plane nodes once.
func (c *Client) ControlPlaneNodes(ctx context.Context) (NodesReport, error) {
	list, err := c.Clientset.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: ControlPlaneLabel})
	if err != nil {
		return NodesReport{}, err
	}
	nodes := make([]*corev1.Node, len(list.Items))
	for i := range list.Items {
		nodes[i] = &list.Items[i]
	}
	return nodesReport(nodes), nil
}

// WaitControlPlaneNodes watches the control-plane nodes until every one is Ready. onReady is
// told each node as it turns Ready, onChange each report that differs from the previous one.
// When ctx ends first, the error is a *NotReadyError naming the nodes and their latest events.
func (c *Client) WaitControlPlaneNodes(ctx context.Context, onReady func(node string), onChange func(NodesReport)) error {
	nodes := c.Clientset.CoreV1().Nodes()
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.LabelSelector = ControlPlaneLabel
			return nodes.List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.LabelSelector = ControlPlaneLabel
			return nodes.Watch(ctx, o)
		},
	}
	var store cache.Store
	ready := map[string]bool{}
	var last NodesReport
	evaluate := func() bool {
		var all []*corev1.Node
		for _, o := range store.List() {
			all = append(all, o.(*corev1.Node))
		}
		r := nodesReport(all)
		for _, n := range all {
			_, bad := r.NotReady[n.Name]
			if !bad && !ready[n.Name] && onReady != nil {
				onReady(n.Name)
			}
			ready[n.Name] = !bad
		}
		if !r.Ready() && r.String() != last.String() && onChange != nil {
			onChange(r)
		}
		last = r
		return r.Ready()
	}
	_, err := watchtools.UntilWithSync(ctx, lw, &corev1.Node{},
		func(st cache.Store) (bool, error) { store = st; return evaluate(), nil },
		func(watch.Event) (bool, error) { return evaluate(), nil })
	if err == nil {
		return nil
	}
	if errors.Is(err, watchtools.ErrWatchClosed) || ctx.Err() != nil {
		e := &NotReadyError{What: "control-plane nodes not Ready", Details: []string{last.String()}}
		ectx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for name := range last.NotReady {
			for _, ev := range c.RecentEvents(ectx, Ref{GVK: corev1.SchemeGroupVersion.WithKind("Node"), Name: name}, 3) {
				e.Details = append(e.Details, "  event "+name+": "+ev)
			}
		}
		return e
	}
	return err
}

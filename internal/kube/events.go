package kube

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
)

// RecentEvents returns the latest n events about one object, newest last, one line each.
func (c *Client) RecentEvents(ctx context.Context, ref Ref, n int) []string {
	sel := fields.Set{"involvedObject.kind": ref.GVK.Kind, "involvedObject.name": ref.Name}
	list, err := c.Clientset.CoreV1().Events(ref.Namespace).List(ctx, metav1.ListOptions{FieldSelector: sel.String()})
	if err != nil {
		return nil
	}
	items := list.Items
	sort.Slice(items, func(i, j int) bool { return EventTime(items[i]).Before(EventTime(items[j])) })
	if len(items) > n {
		items = items[len(items)-n:]
	}
	var out []string
	for _, ev := range items {
		out = append(out, fmt.Sprintf("%s %s %s: %s", EventTime(ev).UTC().Format(time.RFC3339), ev.Type, ev.Reason, strings.TrimSpace(ev.Message)))
	}
	return out
}

func EventTime(ev corev1.Event) time.Time {
	switch {
	case !ev.LastTimestamp.IsZero():
		return ev.LastTimestamp.Time
	case !ev.EventTime.IsZero():
		return ev.EventTime.Time
	default:
		return ev.CreationTimestamp.Time
	}
}

// Explain lists an object's conditions and latest events, one per line, each behind indent.
func (c *Client) Explain(ctx context.Context, ref Ref, u *unstructured.Unstructured, indent string) []string {
	var out []string
	if u != nil {
		conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
		for _, cond := range conds {
			m, _ := cond.(map[string]any)
			out = append(out, fmt.Sprintf("%scondition %v=%v %v: %v", indent, m["type"], m["status"], m["reason"], m["message"]))
		}
	}
	for _, ev := range c.RecentEvents(ctx, ref, 3) {
		out = append(out, indent+"event "+ev)
	}
	return out
}

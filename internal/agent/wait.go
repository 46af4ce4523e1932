package agent

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"

	"github.com/bootcore-dev/bootcore/internal/status"
)

// readiness decides whether an object is Ready and says why not (or how it is). The checks
// themselves live in internal/status, shared with `bootcore status`.
type readiness = status.Readiness

// target is one object a phase waits for.
type target struct {
	GVK       schema.GroupVersionKind
	Namespace string
	Name      string
	Ready     readiness
	// Explain lists objects whose state explains this one's (a FluxInstance waits for its
	// sync source): a timeout report includes their status too.
	Explain []target
}

func (t target) String() string { return describeRef(t.GVK.Kind, t.Namespace, t.Name) }

// The readiness checks the phases use (see internal/status).
var (
	kstatusReady = status.Workload // kstatus Current: rolled out
	fluxReady    = status.Flux     // Flux's Ready condition for the current generation
	both         = status.All
	nodeReady    = status.Node
)

// NotReadyError lists what was not Ready when a wait ended, with conditions and events.
type NotReadyError struct {
	What    string
	Details []string
}

func (e *NotReadyError) Error() string {
	return e.What + ":\n" + strings.Join(e.Details, "\n")
}

// waitTargets checks every target with kstatus-style checks until all are Ready (one ready
// event each, as it turns Ready) or ctx ends: again whenever a watch reports a change to a
// pending target, and every PollInterval. With dryRun it reports once and returns.
func (s *state) waitTargets(ctx context.Context, phase string, targets []target) error {
	pending := append([]target(nil), targets...)
	last := map[string]string{}
	lastObj := map[string]*unstructured.Unstructured{}
	var lastProgress time.Time
	var stalled []target
	poll := func(ctx context.Context) {
		var still []target
		stalled = nil
		for _, t := range pending {
			u, err := s.k.get(ctx, t.GVK, t.Namespace, t.Name)
			switch {
			case apierrors.IsNotFound(err) || meta.IsNoMatchError(err):
				last[t.String()] = "not found"
				still = append(still, t)
				continue
			case err != nil:
				last[t.String()] = "cannot read: " + err.Error()
				still = append(still, t)
				continue
			}
			lastObj[t.String()] = u
			ok, msg := t.Ready(u)
			last[t.String()] = msg
			if ok {
				s.rep.Emit(Event{Type: EventReady, Phase: phase, Object: t.String(), Message: t.String() + " Ready"})
				continue
			}
			if gaveUp, msg := status.Stalled(u); gaveUp {
				last[t.String()] = msg
				stalled = append(stalled, t)
			}
			still = append(still, t)
		}
		pending = still
	}
	// A stalled object ends the wait at once: waiting out the phase timeout cannot help.
	stalledErr := func() error {
		if len(stalled) == 0 || s.opts.DryRun {
			return nil
		}
		names := make([]string, len(stalled))
		for i, t := range stalled {
			names[i] = t.String()
		}
		rest := slices.DeleteFunc(slices.Clone(pending), func(t target) bool { return slices.Contains(names, t.String()) })
		return s.notReady(fmt.Sprintf("%s stalled: Flux stopped retrying, so it will not become Ready until its spec changes (%d of %d objects not Ready)",
			strings.Join(names, ", "), len(pending), len(targets)), append(stalled, rest...), last, lastObj)
	}
	progress := func() {
		var parts []string
		for _, t := range pending {
			parts = append(parts, fmt.Sprintf("%s (%s)", t, last[t.String()]))
		}
		s.rep.Emit(Event{Type: EventProgress, Phase: phase, Message: "waiting for " + strings.Join(parts, ", ")})
		lastProgress = s.now()
	}

	poll(ctx)
	if len(pending) == 0 {
		return nil
	}
	if err := stalledErr(); err != nil {
		return err
	}
	if s.opts.DryRun {
		for _, t := range pending {
			s.rep.Emit(Event{Type: EventChange, Phase: phase, Object: t.String(), Message: fmt.Sprintf("would wait for %s (now: %s)", t, last[t.String()])})
		}
		return nil
	}
	// Watches wake the loop when a pending object changes; the ticker is the fallback.
	wctx, stopWatches := context.WithCancel(ctx)
	defer stopWatches()
	wake := s.newWaker(wctx)
	wake.ensure(pending)
	poll(ctx) // a change between the first read and the watches' start is seen here
	if len(pending) == 0 {
		return nil
	}
	if err := stalledErr(); err != nil {
		return err
	}
	progress()
	ticker := time.NewTicker(s.opts.PollInterval)
	defer ticker.Stop()
	ticks := 0
	for len(pending) > 0 {
		select {
		case <-ctx.Done():
			return s.notReady(fmt.Sprintf("%d of %d objects not Ready", len(pending), len(targets)), pending, last, lastObj)
		case <-ticker.C:
			ticks++
			wake.ensure(pending)
			// With every pending object watched, the poll is a safety net only (readiness
			// that reads other objects, a missed event): every 10th tick. Each poll reads
			// every pending object, a quarter of a hand-over's CPU when done every tick.
			if !wake.allLive(pending) || ticks%10 == 0 {
				poll(ctx)
			}
		case <-wake.C:
			poll(ctx)
		}
		if err := stalledErr(); err != nil {
			return err
		}
		if len(pending) > 0 && s.now().Sub(lastProgress) >= s.opts.ProgressEvery {
			progress()
		}
	}
	return nil
}

// notReady builds the timeout report: status, conditions and the latest events per object.
// It reads with a fresh context, because the phase's own has ended.
func (s *state) notReady(what string, pending []target, last map[string]string, objs map[string]*unstructured.Unstructured) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e := &NotReadyError{What: what}
	for _, t := range pending {
		e.Details = append(e.Details, fmt.Sprintf("%s: %s", t, last[t.String()]))
		e.Details = append(e.Details, s.describeState(ctx, t, objs[t.String()], "  ")...)
		for _, x := range t.Explain {
			u, err := s.k.get(ctx, x.GVK, x.Namespace, x.Name)
			if err != nil {
				e.Details = append(e.Details, fmt.Sprintf("  waits for %s: %v", x, err))
				continue
			}
			_, msg := x.Ready(u)
			e.Details = append(e.Details, fmt.Sprintf("  waits for %s: %s", x, msg))
			e.Details = append(e.Details, s.describeState(ctx, x, u, "    ")...)
		}
	}
	return e
}

// describeState lists an object's conditions and latest events, one per line.
func (s *state) describeState(ctx context.Context, t target, u *unstructured.Unstructured, indent string) []string {
	var out []string
	if u != nil {
		conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
		for _, c := range conds {
			m, _ := c.(map[string]any)
			out = append(out, fmt.Sprintf("%scondition %v=%v %v: %v", indent, m["type"], m["status"], m["reason"], m["message"]))
		}
	}
	for _, ev := range recentEvents(ctx, s.k.client, t.GVK.Kind, t.Namespace, t.Name, 3) {
		out = append(out, indent+"event "+ev)
	}
	return out
}

// recentEvents returns the latest events about one object, newest last.
func recentEvents(ctx context.Context, c kubernetes.Interface, kind, namespace, name string, n int) []string {
	sel := fields.Set{"involvedObject.kind": kind, "involvedObject.name": name}
	list, err := c.CoreV1().Events(namespace).List(ctx, metav1.ListOptions{FieldSelector: sel.String()})
	if err != nil {
		return nil
	}
	items := list.Items
	sort.Slice(items, func(i, j int) bool { return eventTime(items[i]).Before(eventTime(items[j])) })
	if len(items) > n {
		items = items[len(items)-n:]
	}
	var out []string
	for _, ev := range items {
		out = append(out, fmt.Sprintf("%s %s %s: %s", eventTime(ev).UTC().Format(time.RFC3339), ev.Type, ev.Reason, strings.TrimSpace(ev.Message)))
	}
	return out
}

func eventTime(ev corev1.Event) time.Time {
	switch {
	case !ev.LastTimestamp.IsZero():
		return ev.LastTimestamp.Time
	case !ev.EventTime.IsZero():
		return ev.EventTime.Time
	default:
		return ev.CreationTimestamp.Time
	}
}

// ControlPlaneLabel marks control-plane nodes (Talos sets it).
const ControlPlaneLabel = status.ControlPlaneLabel

// waitControlPlane watches the control-plane nodes until every one is Ready. It names the
// nodes still NotReady, with their condition message, whenever that changes.
func (s *state) waitControlPlane(ctx context.Context, phase string) error {
	client := s.k.client
	selector := ControlPlaneLabel
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.LabelSelector = selector
			return client.CoreV1().Nodes().List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.LabelSelector = selector
			return client.CoreV1().Nodes().Watch(ctx, o)
		},
	}
	var store cache.Store
	ready := map[string]bool{}
	lastReport := ""
	notReady := map[string]string{}
	evaluate := func() bool {
		nodes := store.List()
		clear(notReady)
		for _, o := range nodes {
			n := o.(*corev1.Node)
			ok, msg := nodeReady(n)
			if ok {
				if !ready[n.Name] {
					ready[n.Name] = true
					s.rep.Emit(Event{Type: EventReady, Phase: phase, Object: "Node " + n.Name, Message: "control-plane node " + n.Name + " Ready"})
				}
				continue
			}
			delete(ready, n.Name)
			notReady[n.Name] = msg
		}
		report := ""
		if len(nodes) == 0 {
			report = "no node labelled " + ControlPlaneLabel + " yet"
		} else if len(notReady) > 0 {
			names := make([]string, 0, len(notReady))
			for name := range notReady {
				names = append(names, name)
			}
			sort.Strings(names)
			var parts []string
			for _, name := range names {
				parts = append(parts, fmt.Sprintf("%s (%s)", name, notReady[name]))
			}
			report = "control-plane nodes not Ready: " + strings.Join(parts, ", ")
		}
		if report != "" && report != lastReport {
			s.rep.Emit(Event{Type: EventProgress, Phase: phase, Message: report})
		}
		lastReport = report
		return len(nodes) > 0 && len(notReady) == 0
	}
	if s.opts.DryRun {
		list, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			return err
		}
		store = cache.NewStore(cache.MetaNamespaceKeyFunc)
		for i := range list.Items {
			_ = store.Add(&list.Items[i])
		}
		if !evaluate() {
			s.rep.Emit(Event{Type: EventChange, Phase: phase, Message: "would wait for: " + lastReport})
		}
		return nil
	}
	_, err := watchtools.UntilWithSync(ctx, lw, &corev1.Node{},
		func(st cache.Store) (bool, error) { store = st; return evaluate(), nil },
		func(watch.Event) (bool, error) { return evaluate(), nil })
	if err == nil {
		return nil
	}
	if errors.Is(err, watchtools.ErrWatchClosed) || ctx.Err() != nil {
		e := &NotReadyError{What: "control-plane nodes not Ready"}
		if lastReport != "" {
			e.Details = append(e.Details, lastReport)
		}
		ectx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for name := range notReady {
			for _, ev := range recentEvents(ectx, client, "Node", "", name, 3) {
				e.Details = append(e.Details, "  event "+name+": "+ev)
			}
		}
		return e
	}
	return err
}

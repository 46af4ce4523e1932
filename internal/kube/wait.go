package kube

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/fluxcd/cli-utils/pkg/kstatus/polling/engine"
	"github.com/fluxcd/cli-utils/pkg/kstatus/polling/event"
	"github.com/fluxcd/cli-utils/pkg/kstatus/status"
	"github.com/fluxcd/cli-utils/pkg/kstatus/watcher"
	"github.com/fluxcd/cli-utils/pkg/object"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// NotReadyError lists what was not Ready when a wait ended, with conditions and events.
type NotReadyError struct {
	What    string
	Details []string
}

func (e *NotReadyError) Error() string {
	return e.What + ":\n" + strings.Join(e.Details, "\n")
}

// WaitOptions tune Wait.
type WaitOptions struct {
	// OnReady is told about each target once, as it turns Ready.
	OnReady func(State)
	// OnProgress is told what is still pending when the watch has started, and then every
	// ProgressEvery.
	OnProgress    func(pending []State)
	ProgressEvery time.Duration
}

// Wait watches the targets, and what their checks need, with fluxcd/cli-utils' kstatus
// watcher (informers: a change is seen within milliseconds) until every target is Ready. It
// ends early with a *NotReadyError when one is Stalled (Flux gave up on it: waiting longer
// cannot help), and with one listing what is not Ready, with conditions and recent events,
// when ctx ends. The watch is started again when it fails (the API server restarted) and
// while a target's kind is not served yet (the watcher cannot see a kind appear by itself).
func (c *Client) Wait(ctx context.Context, targets []Target, opts WaitOptions) error {
	s := seen{}
	for _, st := range c.Read(ctx, targets) {
		if st.Object != nil {
			s[keyOf(st.Ref)] = st.Object
		}
	}
	pending := slices.Clone(targets)
	var last []State
	// check re-evaluates what is pending against what was seen: nil when done, a
	// NotReadyError when something stalled, errPending otherwise.
	check := func() error {
		last = last[:0]
		var still []Target
		for _, t := range pending {
			st := s.evaluate(t)
			if st.Ready {
				if opts.OnReady != nil {
					opts.OnReady(st)
				}
				continue
			}
			still = append(still, t)
			last = append(last, st)
		}
		pending = still
		if len(pending) == 0 {
			return nil
		}
		if slices.ContainsFunc(last, func(st State) bool { return st.Stalled }) {
			return c.stalled(last, len(targets))
		}
		return errPending
	}
	if err := check(); !errors.Is(err, errPending) {
		return err
	}
	if opts.OnProgress != nil {
		opts.OnProgress(last)
	}
	progress := time.NewTicker(max(opts.ProgressEvery, time.Second))
	defer progress.Stop()

	ids := object.ObjMetadataSet{}
	for _, r := range refs(targets) {
		ids = append(ids, keyOf(r))
	}
	retry := time.Duration(0)
	for {
		wctx, stop := context.WithCancel(ctx)
		events := c.watcher().Watch(wctx, ids, watcher.Options{})
		// A kind that is not served has no informer, and nothing tells the watcher when its
		// CRD arrives: look again, and watch again, until every kind is served.
		var unserved <-chan time.Time
		if c.anyUnserved(ids) {
			unserved = time.After(2 * time.Second)
		}
		err := func() error {
			for {
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-progress.C:
					if opts.OnProgress != nil {
						opts.OnProgress(last)
					}
				case <-unserved:
					for _, st := range c.Read(ctx, pending) {
						if st.Object != nil {
							s[keyOf(st.Ref)] = st.Object
						}
					}
					if err := check(); !errors.Is(err, errPending) {
						return err
					}
					return errRestart
				case e, ok := <-events:
					if !ok {
						return errRestart
					}
					switch e.Type {
					case event.ErrorEvent:
						if e.Error != nil && !Transient(e.Error) {
							return fmt.Errorf("watching %d objects: %w", len(ids), e.Error)
						}
						return errRestart
					case event.ResourceUpdateEvent:
						rs := e.Resource
						if rs.Status == status.NotFoundStatus || rs.Resource == nil {
							delete(s, rs.Identifier)
						} else {
							s[rs.Identifier] = rs.Resource
						}
						retry = 0
						if err := check(); !errors.Is(err, errPending) {
							return err
						}
					}
				}
			}
		}()
		stop()
		for range events {
			// drain: the watcher closes its channel once its informers stopped
		}
		if !errors.Is(err, errRestart) {
			if ctx.Err() != nil {
				return c.notReady(fmt.Sprintf("%d of %d objects not Ready", len(last), len(targets)), last)
			}
			return err
		}
		// Restarting at once after a failure would spin while the API server is away.
		retry = min(max(2*retry, 500*time.Millisecond), 5*time.Second)
		select {
		case <-ctx.Done():
			return c.notReady(fmt.Sprintf("%d of %d objects not Ready", len(last), len(targets)), last)
		case <-time.After(retry):
		}
	}
}

var (
	errPending = errors.New("pending")
	errRestart = errors.New("restart the watch")
)

func (c *Client) watcher() *watcher.DefaultStatusWatcher {
	w := watcher.NewDefaultStatusWatcher(c.Dynamic, c.Mapper)
	w.StatusReader = objectStatus{}
	return w
}

func (c *Client) anyUnserved(ids object.ObjMetadataSet) bool {
	for _, id := range ids {
		if _, err := c.Mapper.RESTMapping(id.GroupKind); err != nil {
			return true
		}
	}
	return false
}

// stalled is the error of a wait that something stalled: the stalled objects first.
func (c *Client) stalled(pending []State, total int) error {
	var names []string
	var first, rest []State
	for _, st := range pending {
		if st.Stalled {
			names = append(names, st.String())
			first = append(first, st)
		} else {
			rest = append(rest, st)
		}
	}
	return c.notReady(fmt.Sprintf("%s stalled: Flux stopped retrying, so it will not become Ready until its spec changes (%d of %d objects not Ready)",
		strings.Join(names, ", "), len(pending), total), append(first, rest...))
}

// notReady builds the report of a wait that ended: each object's state, conditions and latest
// events, and those of the objects that explain it. It reads with a fresh context, because
// the wait's own has ended.
func (c *Client) notReady(what string, pending []State) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e := &NotReadyError{What: what}
	for _, st := range pending {
		e.Details = append(e.Details, fmt.Sprintf("%s: %s", st, st.Message))
		e.Details = append(e.Details, c.Explain(ctx, st.Ref, st.Object, "  ")...)
		for _, x := range c.Read(ctx, st.Explain) {
			if x.Err != nil {
				e.Details = append(e.Details, fmt.Sprintf("  waits for %s: %v", x, x.Err))
				continue
			}
			e.Details = append(e.Details, fmt.Sprintf("  waits for %s: %s", x, x.Message))
			e.Details = append(e.Details, c.Explain(ctx, x.Ref, x.Object, "    ")...)
		}
	}
	return e
}

// objectStatus computes kstatus from the object alone, as the checks in ready.go do: the
// watcher's default readers also list a Deployment's ReplicaSets and Pods, requests a wait on
// a handful of objects does not need.
type objectStatus struct{}

func (objectStatus) Supports(schema.GroupKind) bool { return true }

func (o objectStatus) ReadStatus(ctx context.Context, r engine.ClusterReader, id object.ObjMetadata) (*event.ResourceStatus, error) {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(id.GroupKind.WithVersion(""))
	if err := r.Get(ctx, client.ObjectKey{Namespace: id.Namespace, Name: id.Name}, u); err != nil {
		return &event.ResourceStatus{Identifier: id, Status: status.UnknownStatus, Error: err}, nil
	}
	return o.ReadStatusForObject(ctx, r, u)
}

func (objectStatus) ReadStatusForObject(_ context.Context, _ engine.ClusterReader, u *unstructured.Unstructured) (*event.ResourceStatus, error) {
	rs := &event.ResourceStatus{Identifier: object.UnstructuredToObjMetadata(u), Resource: u}
	res, err := status.Compute(u)
	if err != nil {
		rs.Status, rs.Error = status.UnknownStatus, err
		return rs, nil
	}
	rs.Status, rs.Message = res.Status, res.Message
	return rs, nil
}

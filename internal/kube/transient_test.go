package kube

import (
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

func TestTransient(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: &os.SyscallError{Syscall: "connect", Err: syscall.ECONNREFUSED}}
	gr := schema.GroupResource{Resource: "secrets"}
	for _, c := range []struct {
		err  error
		want bool
	}{
		{refused, true},
		{fmt.Errorf("helm install flux-system/flux-operator: %w", refused), true},
		{errors.New(`Get "https://127.0.0.1:6443/api": dial tcp 127.0.0.1:6443: connect: connection refused`), true},
		{errors.New("etcdserver: leader changed"), true},
		{apierrors.NewServiceUnavailable("storage is (re)initializing"), true},
		{apierrors.NewInternalError(errors.New("etcdserver: request timed out")), true},
		{apierrors.NewNotFound(gr, "x"), false},
		{apierrors.NewForbidden(gr, "x", errors.New("denied")), false},
		{apierrors.NewConflict(gr, "x", errors.New("changed")), false},
		{errors.New(`Kustomization flux-system/apps: invalid spec`), false},
		{nil, false},
	} {
		if got := Transient(c.err); got != c.want {
			t.Errorf("Transient(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

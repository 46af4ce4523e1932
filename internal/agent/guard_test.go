package agent

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckEndpoint(t *testing.T) {
	for _, tc := range []struct {
		spec, server string
		ok           bool
	}{
		{"https://10.10.0.10:6443", "https://10.10.0.10:6443", true},
		{"https://10.10.0.10:6443", "10.10.0.10:6443", true},
		{"https://API.example.com", "https://api.example.com:443", true},
		{"https://[fd00::1]:6443", "https://[FD00::1]:6443", true},
		{"https://10.10.0.10:6443", "https://10.20.0.10:6443", false},
		{"https://127.0.0.1:6443", "https://127.0.0.1:6444", false},
		{"https://10.10.0.10:6443", "https://10.10.0.10", false},
	} {
		err := checkEndpoint("infra", tc.spec, tc.server)
		var wc *WrongClusterError
		if tc.ok != (err == nil) || (!tc.ok && !errors.As(err, &wc)) {
			t.Errorf("checkEndpoint(%s, %s) = %v", tc.spec, tc.server, err)
		}
		if !tc.ok && err != nil && !strings.Contains(err.Error(), "cluster infra's endpoint") {
			t.Errorf("message %q does not name the cluster", err)
		}
	}
}

func TestCheckIdentity(t *testing.T) {
	m := &Marker{Cluster: "infra", ClusterUID: "uid-1"}
	if err := checkIdentity("infra", "uid-1", m); err != nil {
		t.Error(err)
	}
	if err := checkIdentity("infra", "uid-2", nil); err != nil {
		t.Errorf("no marker: %v", err)
	}
	var wc *WrongClusterError
	if err := checkIdentity("apps", "uid-1", m); !errors.As(err, &wc) || !strings.Contains(err.Error(), `records cluster "infra"`) {
		t.Errorf("other cluster: %v", err)
	}
	if err := checkIdentity("infra", "uid-2", m); !errors.As(err, &wc) || !strings.Contains(err.Error(), "uid-1") {
		t.Errorf("other UID: %v", err)
	}
}

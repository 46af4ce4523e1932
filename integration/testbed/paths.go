package testbed

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
)

// Binaries the core test bed needs, all built by `make testbin`.
var coreBinaries = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"}

// Flux controllers, also built by `make testbin`.
var fluxBinaries = []string{"source-controller", "kustomize-controller", "helm-controller"}

// repoRoot finds the checkout by walking up from the working directory to
// the directory that holds integration/tools/testbin.sh. Tests run in their
// package directory and `go run` usually in the repository root; both work.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "integration", "tools", "testbin.sh")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("cannot find the bootcore checkout (integration/tools/testbin.sh) above the working directory")
		}
		dir = parent
	}
}

// TestbinDir returns the directory `make testbin` builds into:
// $BOOTCORE_TESTBIN if set, else <repo>/integration/.testbin.
func TestbinDir() (string, error) {
	if dir := os.Getenv("BOOTCORE_TESTBIN"); dir != "" {
		return filepath.Abs(dir)
	}
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, "integration", ".testbin"), nil
}

// CheckBinaries returns an error telling to run `make testbin` if any of the
// named binaries is missing from the testbin directory.
func CheckBinaries(names ...string) (string, error) {
	dir, err := TestbinDir()
	if err != nil {
		return "", err
	}
	var missing []string
	for _, name := range names {
		if _, err := os.Stat(filepath.Join(dir, "bin", name)); err != nil {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return "", fmt.Errorf("test-bed binaries %v missing in %s/bin: run `make testbin` (or set BOOTCORE_TESTBIN)", missing, dir)
	}
	return dir, nil
}

// defaultRunRoot is where clusters keep their files unless told otherwise
// (<repo>/integration/.run, gitignored).
func defaultRunRoot() (string, error) {
	if dir := os.Getenv("BOOTCORE_RUNDIR"); dir != "" {
		return filepath.Abs(dir)
	}
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, "integration", ".run"), nil
}

var (
	portsMu sync.Mutex
	// handedOut remembers every port given out in this process: the kernel may
	// hand the same free port to two clusters started side by side before
	// either has bound it.
	handedOut = map[int]bool{}
)

// freePort returns a loopback TCP port that is free now and was not handed
// out before in this process.
func freePort() (int, error) {
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if !handedOut[port] {
			handedOut[port] = true
			return port, nil
		}
	}
	return 0, errors.New("no free port found")
}

// freeAddr is freePort as "127.0.0.1:port".
func freeAddr() (string, error) {
	port, err := freePort()
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("127.0.0.1:%d", port), nil
}

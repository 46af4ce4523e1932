package main

import (
	"archive/tar"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

// What a cluster would run: the test builds the binary as `make image` does (static, plugin-free
// tag, version stamped), assembles the image into an OCI layout, reads it back the way a
// registry client does, and runs the binary it extracts from the image's file system.
func TestImageRunsStampedBinary(t *testing.T) {
	const version = "v0.0.0-imagetest"
	dir := t.TempDir()
	bin := filepath.Join(dir, "bootcore")
	build := exec.Command("go", "build", "-trimpath", "-tags", "kustomize_disable_go_plugin_support",
		"-ldflags", "-s -w -X main.version="+version, "-o", bin, "../../cmd/bootcore")
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out := filepath.Join(dir, "oci")
	platform := "linux/" + runtime.GOARCH
	printed, err := run([]string{"-out", out, "-version", version, "-binary", platform + "=" + bin})
	if err != nil {
		t.Fatal(err)
	}

	p, err := layout.FromPath(out)
	if err != nil {
		t.Fatal(err)
	}
	top, err := p.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	tm, err := top.IndexManifest()
	if err != nil || len(tm.Manifests) != 1 || !tm.Manifests[0].MediaType.IsIndex() {
		t.Fatalf("layout should hold one image index (what crane push pushes): %+v %v", tm, err)
	}
	if !strings.HasSuffix(printed, tm.Manifests[0].Digest.String()) {
		t.Errorf("printed %q, want the index digest %s", printed, tm.Manifests[0].Digest)
	}
	idx, err := top.ImageIndex(tm.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil || len(im.Manifests) != 1 {
		t.Fatalf("index: %+v %v", im, err)
	}
	if pl := im.Manifests[0].Platform; pl == nil || pl.OS+"/"+pl.Architecture != platform {
		t.Errorf("platform %+v, want %s", pl, platform)
	}
	img, err := idx.Image(im.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.Config.User != "65532:65532" {
		t.Errorf("user %q, want 65532:65532 (manifests/agent/job.yaml runs as 65532)", cf.Config.User)
	}
	if len(cf.Config.Entrypoint) != 1 || cf.Config.Entrypoint[0] != "/bootcore" {
		t.Errorf("entrypoint %q, want [/bootcore]", cf.Config.Entrypoint)
	}
	if cf.Config.Labels["org.opencontainers.image.version"] != version {
		t.Errorf("labels %v", cf.Config.Labels)
	}

	files := map[string]*tar.Header{}
	root := filepath.Join(dir, "root")
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		files[strings.TrimSuffix(h.Name, "/")] = h
		if h.Name == "bootcore" || h.Name == "etc/passwd" {
			dst := filepath.Join(root, h.Name)
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				t.Fatal(err)
			}
			data, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(dst, data, os.FileMode(h.Mode)&0o777); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, name := range []string{"bootcore", "etc/passwd", "etc/group", "etc/ssl/certs/ca-certificates.crt", "tmp", "home/nonroot"} {
		if files[name] == nil {
			t.Errorf("image lacks /%s", name)
		}
	}
	if h := files["etc/ssl/certs/ca-certificates.crt"]; h != nil && h.Size < 10000 {
		t.Errorf("CA bundle is %d bytes", h.Size)
	}
	if h := files["tmp"]; h != nil && h.Mode&0o1777 != 0o1777 {
		t.Errorf("/tmp mode %o, want 1777", h.Mode)
	}
	if h := files["home/nonroot"]; h != nil && h.Uid != 65532 {
		t.Errorf("/home/nonroot owned by %d", h.Uid)
	}
	pw, _ := os.ReadFile(filepath.Join(root, "etc/passwd"))
	if !strings.Contains(string(pw), "nonroot:x:65532:65532:") {
		t.Errorf("/etc/passwd has no nonroot 65532:\n%s", pw)
	}

	got, err := exec.Command(filepath.Join(root, "bootcore"), "version").Output()
	if err != nil {
		t.Fatalf("the image's /bootcore version: %v", err)
	}
	if first, _, _ := strings.Cut(string(got), "\n"); first != "bootcore "+version {
		t.Errorf("the image's binary says %q, want %q", first, "bootcore "+version)
	}

	// Same inputs, same digest: a rebuild can be compared with what is pinned.
	again, err := run([]string{"-out", filepath.Join(dir, "oci2"), "-version", version, "-binary", platform + "=" + bin})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Fields(again)[1] != strings.Fields(printed)[1] {
		t.Errorf("rebuild gave %s, first build %s", again, printed)
	}
}

func TestImageRefusesBadInput(t *testing.T) {
	if _, err := run([]string{"-out", t.TempDir()}); err == nil || !strings.Contains(err.Error(), "-binary") {
		t.Errorf("no binary: %v", err)
	}
	if _, err := run([]string{"-binary", "amd64"}); err == nil || !strings.Contains(err.Error(), "os/arch=PATH") {
		t.Errorf("bad -binary: %v", err)
	}
	if _, err := run([]string{"-out", filepath.Join(t.TempDir(), "x"), "-binary", "linux/amd64=/nonexistent"}); err == nil {
		t.Error("missing binary accepted")
	}
}

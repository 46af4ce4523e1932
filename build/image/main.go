// Command image assembles the bootcore agent image from prebuilt static binaries, without a
// Docker daemon, into an OCI image layout (push it with `crane push DIR REF`).
//
//	go run ./build/image -out bin/image -version v0.3.0 \
//	    -binary linux/amd64=bin/release/bootcore-linux-amd64 \
//	    -binary linux/arm64=bin/release/bootcore-linux-arm64
//
// The base cannot be pulled on every build machine (gcr.io/distroless/static is a registry
// image), so the image is built from scratch with the same files distroless/static's nonroot
// variant provides for a static Go binary: /etc/passwd and /etc/group with the nonroot user
// (65532), a CA bundle, /tmp and /home/nonroot; user 65532:65532; entrypoint /bootcore.
// Every timestamp is SOURCE_DATE_EPOCH (default 0), so the same binaries give the same digest.
package main

import (
	"archive/tar"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

const (
	// Entrypoint is where the binary lives in the image.
	Entrypoint = "/bootcore"
	// User is distroless's nonroot user and group, which manifests/agent/job.yaml runs as.
	User = "65532:65532"
)

// The same entries as distroless/static's nonroot images.
const (
	passwd = "root:x:0:0:root:/root:/sbin/nologin\n" +
		"nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n" +
		"nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"
	group = "root:x:0:\nnobody:x:65534:\ntty:x:5:\nstaff:x:50:\nnonroot:x:65532:\n"
)

type binaries map[string]string // platform "os/arch" -> path of the static binary

func (b binaries) String() string { return fmt.Sprint(map[string]string(b)) }

func (b binaries) Set(v string) error {
	platform, path, ok := strings.Cut(v, "=")
	if !ok || !strings.Contains(platform, "/") {
		return fmt.Errorf("want os/arch=PATH, got %q", v)
	}
	b[platform] = path
	return nil
}

func main() {
	digest, err := run(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
	fmt.Println(digest)
}

// run builds the image index and returns what it prints: the layout and the index digest, the
// digest a registry reports after `crane push` (the manifests are pushed byte for byte).
func run(args []string) (string, error) {
	fs := flag.NewFlagSet("image", flag.ContinueOnError)
	bins := binaries{}
	fs.Var(bins, "binary", "os/arch=PATH of a static bootcore binary (repeatable)")
	out := fs.String("out", "bin/image", "OCI image layout directory to write (replaced)")
	version := fs.String("version", "", "version label (org.opencontainers.image.version)")
	cacerts := fs.String("ca-certificates", "/etc/ssl/certs/ca-certificates.crt", "CA bundle to include (Debian package ca-certificates)")
	source := fs.String("source", "https://github.com/bootcore-dev/bootcore", "org.opencontainers.image.source label")
	if err := fs.Parse(args); err != nil {
		return "", err
	}
	if len(bins) == 0 {
		return "", errors.New("no -binary given")
	}
	created, err := sourceDate()
	if err != nil {
		return "", err
	}
	certs, err := os.ReadFile(*cacerts)
	if err != nil {
		return "", fmt.Errorf("CA bundle: %w (install the ca-certificates package)", err)
	}
	idx := v1.ImageIndex(empty.Index)
	idx = mutate.IndexMediaType(idx, types.OCIImageIndex)
	for platform, path := range bins {
		bin, err := os.ReadFile(path)
		if err != nil {
			return "", err
		}
		img, err := buildImage(platform, bin, certs, *version, *source, created)
		if err != nil {
			return "", fmt.Errorf("%s: %w", platform, err)
		}
		osName, arch, _ := strings.Cut(platform, "/")
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: osName, Architecture: arch}},
		})
	}
	if err := os.RemoveAll(*out); err != nil {
		return "", err
	}
	p, err := layout.Write(*out, empty.Index)
	if err != nil {
		return "", err
	}
	if err := p.AppendIndex(idx); err != nil {
		return "", err
	}
	d, err := idx.Digest()
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%s %s", *out, d), nil
}

// sourceDate is SOURCE_DATE_EPOCH (reproducible builds), else the epoch.
func sourceDate() (time.Time, error) {
	s := os.Getenv("SOURCE_DATE_EPOCH")
	if s == "" {
		return time.Unix(0, 0).UTC(), nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH %q: %w", s, err)
	}
	return time.Unix(n, 0).UTC(), nil
}

func buildImage(platform string, bin, certs []byte, version, source string, created time.Time) (v1.Image, error) {
	layer, err := rootLayer(bin, certs, created)
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(mutate.MediaType(empty.Image, types.OCIManifestSchema1), layer)
	if err != nil {
		return nil, err
	}
	osName, arch, _ := strings.Cut(platform, "/")
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = osName, arch
	cf.Created = v1.Time{Time: created}
	cf.Config = v1.Config{
		User:       User,
		Entrypoint: []string{Entrypoint},
		WorkingDir: "/home/nonroot",
		Env: []string{
			"PATH=/usr/local/bin:/usr/local/sbin:/usr/bin:/usr/sbin:/bin:/sbin",
			"SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt",
			"HOME=/home/nonroot",
		},
		Labels: map[string]string{
			"org.opencontainers.image.title":    "bootcore",
			"org.opencontainers.image.version":  version,
			"org.opencontainers.image.source":   source,
			"org.opencontainers.image.licenses": "Apache-2.0",
		},
	}
	return mutate.ConfigFile(img, cf)
}

// rootLayer is the image's only layer: the directories and files of a distroless static
// nonroot root file system plus the binary.
func rootLayer(bin, certs []byte, mtime time.Time) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	entries := []struct {
		name  string
		mode  int64
		uid   int
		data  []byte
		isDir bool
	}{
		{name: "etc/", mode: 0o755, isDir: true},
		{name: "etc/passwd", mode: 0o644, data: []byte(passwd)},
		{name: "etc/group", mode: 0o644, data: []byte(group)},
		{name: "etc/ssl/", mode: 0o755, isDir: true},
		{name: "etc/ssl/certs/", mode: 0o755, isDir: true},
		{name: "etc/ssl/certs/ca-certificates.crt", mode: 0o644, data: certs},
		{name: "home/", mode: 0o755, isDir: true},
		{name: "home/nonroot/", mode: 0o700, isDir: true, uid: 65532},
		{name: "tmp/", mode: 0o1777, isDir: true},
		{name: strings.TrimPrefix(Entrypoint, "/"), mode: 0o755, data: bin},
	}
	for _, e := range entries {
		h := &tar.Header{
			Name: e.name, Mode: e.mode, Uid: e.uid, Gid: e.uid, ModTime: mtime,
			Typeflag: tar.TypeReg, Size: int64(len(e.data)), Format: tar.FormatPAX,
		}
		if e.isDir {
			h.Typeflag, h.Size = tar.TypeDir, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	data := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	}, tarball.WithMediaType(types.OCILayer))
}

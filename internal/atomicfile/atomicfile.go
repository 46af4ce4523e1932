// Package atomicfile writes files so that a reader sees the old file or the whole new one,
// never part of it: bootcore's generated patches, the chart cache and the kubeconfig fetched
// from the Talos API are all read by other processes (talosctl, a concurrent gen, kubectl).
package atomicfile

import (
	"errors"
	"os"
	"path/filepath"
)

// File is one file to write.
type File struct {
	Path string
	Data []byte
	Mode os.FileMode
}

// Write writes one file: through a temporary file in the same directory, with its mode set
// and its data synced before it is renamed into place.
func Write(path string, data []byte, mode os.FileMode) error {
	return WriteAll(File{Path: path, Data: data, Mode: mode})
}

// WriteAll writes files all or nothing, as far as a file system allows: every file goes to a
// temporary file first, and only when all are written are they renamed into place. On an
// error no temporary file is left behind.
func WriteAll(files ...File) error {
	var staged []string
	cleanup := func() {
		for _, tmp := range staged {
			os.Remove(tmp)
		}
	}
	for _, f := range files {
		tmp, err := stage(f)
		if err != nil {
			cleanup()
			return err
		}
		staged = append(staged, tmp)
	}
	for i, f := range files {
		if err := os.Rename(staged[i], f.Path); err != nil {
			cleanup()
			return err
		}
	}
	return nil
}

func stage(f File) (string, error) {
	tmp, err := os.CreateTemp(filepath.Dir(f.Path), "."+filepath.Base(f.Path)+".tmp-*")
	if err != nil {
		return "", err
	}
	_, werr := tmp.Write(f.Data)
	err = errors.Join(werr, tmp.Chmod(f.Mode), tmp.Sync(), tmp.Close())
	if err != nil {
		os.Remove(tmp.Name())
		return "", err
	}
	return tmp.Name(), nil
}

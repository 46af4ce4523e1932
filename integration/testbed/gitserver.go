package testbed

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/http/cgi"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// GitServer serves bare Git repositories over smart HTTP on loopback, with
// git's own http-backend (CGI) — the protocol Flux's source-controller speaks
// to a real Git host. Reads only; commits are pushed through the file
// system by Commit.
type GitServer struct {
	// URL is the base URL; repository <name> is at URL + "/" + name + ".git".
	URL  string
	root string // bare repositories
	work string // one working clone per repository, used to make commits
	srv  *http.Server
}

// StartGitServer starts a server keeping its repositories under dir.
func StartGitServer(dir string) (*GitServer, error) {
	git, err := exec.LookPath("git")
	if err != nil {
		return nil, fmt.Errorf("git server needs git: %w", err)
	}
	execPath, err := exec.Command(git, "--exec-path").Output()
	if err != nil {
		return nil, fmt.Errorf("git --exec-path: %w", err)
	}
	g := &GitServer{root: filepath.Join(dir, "repos"), work: filepath.Join(dir, "work")}
	for _, d := range []string{g.root, g.work} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	g.URL = "http://" + l.Addr().String()
	g.srv = &http.Server{Handler: &cgi.Handler{
		Path: filepath.Join(strings.TrimSpace(string(execPath)), "git-http-backend"),
		Env:  []string{"GIT_PROJECT_ROOT=" + g.root, "GIT_HTTP_EXPORT_ALL=1"},
	}, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = g.srv.Serve(l) }()
	return g, nil
}

// Close stops the server.
func (g *GitServer) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return g.srv.Shutdown(ctx)
}

// RepoURL is the clone URL of a repository.
func (g *GitServer) RepoURL(name string) string { return g.URL + "/" + name + ".git" }

// CreateRepo creates repository name (branch main) whose first commit holds
// a copy of the directory src ("" for an empty tree), and returns its commit.
func (g *GitServer) CreateRepo(name, src string) (string, error) {
	bare := filepath.Join(g.root, name+".git")
	wt := g.Worktree(name)
	if _, err := os.Stat(bare); err == nil {
		return "", fmt.Errorf("repository %s exists", name)
	}
	if err := runGit("", "init", "--quiet", "--bare", "--initial-branch=main", bare); err != nil {
		return "", err
	}
	if err := runGit("", "init", "--quiet", "--initial-branch=main", wt); err != nil {
		return "", err
	}
	if err := runGit(wt, "remote", "add", "origin", bare); err != nil {
		return "", err
	}
	if src != "" {
		if err := copyTree(src, wt); err != nil {
			return "", err
		}
	}
	return g.Commit(name, "initial commit", nil)
}

// Worktree is the working clone of repository name: change files there and
// call Commit, or pass a change function to Commit.
func (g *GitServer) Worktree(name string) string { return filepath.Join(g.work, name) }

// Commit runs change (if not nil) on the working clone, commits everything
// (additions, changes, deletions) and pushes to the served repository. It
// returns the new commit's hash.
func (g *GitServer) Commit(name, message string, change func(worktree string) error) (string, error) {
	wt := g.Worktree(name)
	if change != nil {
		if err := change(wt); err != nil {
			return "", err
		}
	}
	if err := runGit(wt, "add", "--all"); err != nil {
		return "", err
	}
	if err := runGit(wt, "commit", "--quiet", "--allow-empty", "-m", message); err != nil {
		return "", err
	}
	if err := runGit(wt, "push", "--quiet", "origin", "main"); err != nil {
		return "", err
	}
	out, err := gitOutput(wt, "rev-parse", "HEAD")
	return strings.TrimSpace(out), err
}

// gitEnv isolates git from the user's configuration and fixes the identity.
var gitEnv = []string{
	"GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1",
	"GIT_AUTHOR_NAME=bootcore testbed", "GIT_AUTHOR_EMAIL=testbed@bootcore.invalid",
	"GIT_COMMITTER_NAME=bootcore testbed", "GIT_COMMITTER_EMAIL=testbed@bootcore.invalid",
}

func runGit(dir string, args ...string) error {
	_, err := gitOutput(dir, args...)
	return err
}

func gitOutput(dir string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), gitEnv...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("git %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// copyTree copies regular files and directories from src into dst.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == ".git" {
			return filepath.SkipDir
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if !d.Type().IsRegular() {
			return errors.New("copyTree: not a regular file: " + path)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o644)
	})
}

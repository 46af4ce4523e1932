package kube

import (
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// Transient reports whether err is the API server or etcd being briefly unavailable (a
// restart, a leader change) rather than a reason to give up: connection refused or reset,
// a dropped connection, 5xx "unavailable"/"timeout" answers, etcd's own errors passed
// through. The phases are idempotent, so the manager retries such failures until the
// phase's timeout. Helm and some libraries flatten errors into strings, hence the text
// checks besides errors.Is/As.
func Transient(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	if apierrors.IsServiceUnavailable(err) || apierrors.IsServerTimeout(err) || apierrors.IsTimeout(err) ||
		apierrors.IsTooManyRequests(err) || apierrors.IsInternalError(err) {
		return true
	}
	msg := err.Error()
	for _, s := range []string{
		"connection refused", "connection reset by peer", "broken pipe", "http2: client connection lost",
		"http2: server sent GOAWAY", "unexpected EOF", "TLS handshake timeout", "i/o timeout",
		"etcdserver:", "the server is currently unable to handle the request", "the server was unable to return a response",
		"Timeout: request did not complete", "context deadline exceeded (Client.Timeout", "storage is (re)initializing",
		"the server has received too many requests",
	} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

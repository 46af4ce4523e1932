package testbed

// STAND-IN for a 1Password Connect server: the REST API External Secrets' onepassword provider
// talks to, served on loopback with items a test configures. Its shapes follow the client the
// provider links, github.com/1Password/connect-sdk-go v1.5.3 (connect/client.go: the request
// paths, the `title eq "…"` filter, `Authorization: Bearer <token>`, error bodies decoded into
// onepassword.Error; onepassword/vaults.go and items.go: the JSON of vaults and items), as
// external-secrets v0.20.4 calls it (pkg/provider/onepassword/onepassword.go: Validate() gets
// every vault of the store by name; GetSecret() lists a vault's items by title, then gets the
// one found by ID and reads a field by label). Only reads are served: PushSecret is not used.
//
// In a cluster the store's connectHost is a Service name (the lab's is
// http://onepassword-connect.external-secrets.svc:8080). The test bed has no cluster DNS, so
// the External Secrets process gets this server as its HTTP proxy (HTTP_PROXY; the API server
// on 127.0.0.1 is never proxied) and the server answers proxied requests for the host names
// it was told to serve, as the Service would.

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"
)

// onePasswordConnectVersion is sent in the 1Password-Connect-Version header, which the SDK
// reads to decide which features the server has (connect/version.go).
const onePasswordConnectVersion = "1.7.3"

// OnePasswordConnect is a running stand-in of the 1Password Connect API.
type OnePasswordConnect struct {
	// URL is the server's loopback address, e.g. http://127.0.0.1:40123: a store's
	// connectHost, or the HTTP proxy through which Service host names reach it.
	URL string

	srv *http.Server
	ln  net.Listener

	mu     sync.Mutex
	token  string
	hosts  map[string]bool
	vaults []*opVault
}

type opVault struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Type      string    `json:"type"`
	Items     int       `json:"items"`
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`

	items []*opItem
}

type opItem struct {
	ID        string         `json:"id"`
	Title     string         `json:"title"`
	Version   int            `json:"version"`
	Vault     opItemVault    `json:"vault"`
	Category  string         `json:"category"`
	Fields    []*opItemField `json:"fields,omitempty"`
	CreatedAt time.Time      `json:"createdAt"`
	UpdatedAt time.Time      `json:"updatedAt"`
}

type opItemVault struct {
	ID string `json:"id"`
}

type opItemField struct {
	ID    string `json:"id"`
	Type  string `json:"type"`
	Label string `json:"label"`
	Value string `json:"value,omitempty"`
}

// StartOnePasswordConnect serves the Connect API on a free loopback port. Requests to /v1/
// must carry `Authorization: Bearer <token>`.
func StartOnePasswordConnect(token string) (*OnePasswordConnect, error) {
	if token == "" {
		return nil, errors.New("1Password Connect stand-in: empty token")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	o := &OnePasswordConnect{URL: "http://" + ln.Addr().String(), ln: ln, token: token, hosts: map[string]bool{}}
	o.srv = &http.Server{Handler: o, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = o.srv.Serve(ln) }()
	return o, nil
}

// Close stops the server.
func (o *OnePasswordConnect) Close() error { return o.srv.Close() }

// ServeHost makes the server answer requests proxied to host (host:port, e.g.
// "onepassword-connect.external-secrets.svc:8080"), the Service a store's connectHost names.
func (o *OnePasswordConnect) ServeHost(host string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.hosts[host] = true
}

// SetToken replaces the token the server accepts (a rotated Connect token).
func (o *OnePasswordConnect) SetToken(token string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.token = token
}

// AddVault creates an empty vault named name (no-op if it exists) and returns its ID.
func (o *OnePasswordConnect) AddVault(name string) string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.vault(name).ID
}

// SetItem creates or replaces the item titled title in vault vaultName (created if missing),
// with one field per entry of fields (label → value), sorted by label.
func (o *OnePasswordConnect) SetItem(vaultName, title string, fields map[string]string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	v := o.vault(vaultName)
	now := time.Now().UTC().Truncate(time.Second)
	var it *opItem
	for _, i := range v.items {
		if i.Title == title {
			it = i
		}
	}
	if it == nil {
		it = &opItem{ID: opID(), Title: title, Vault: opItemVault{ID: v.ID}, Category: "LOGIN", CreatedAt: now}
		v.items = append(v.items, it)
		v.Items = len(v.items)
	}
	labels := make([]string, 0, len(fields))
	for l := range fields {
		labels = append(labels, l)
	}
	sort.Strings(labels)
	it.Fields = nil
	for _, l := range labels {
		typ := "STRING"
		if l == "password" {
			typ = "CONCEALED"
		}
		it.Fields = append(it.Fields, &opItemField{ID: opID(), Type: typ, Label: l, Value: fields[l]})
	}
	it.Version++
	it.UpdatedAt = now
	v.UpdatedAt = now
}

// vault returns the vault named name, creating it. Callers hold o.mu.
func (o *OnePasswordConnect) vault(name string) *opVault {
	for _, v := range o.vaults {
		if v.Name == name {
			return v
		}
	}
	now := time.Now().UTC().Truncate(time.Second)
	v := &opVault{ID: opID(), Name: name, Type: "USER_CREATED", CreatedAt: now, UpdatedAt: now}
	o.vaults = append(o.vaults, v)
	return v
}

// opID returns a 26-character lowercase alphanumeric ID, the form the SDK takes for a UUID
// (isValidUUID: ^[a-z0-9]{26}$); anything else it looks up by title.
func opID() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 26)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

func (o *OnePasswordConnect) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("1Password-Connect-Version", onePasswordConnectVersion)
	o.mu.Lock()
	defer o.mu.Unlock()
	// A proxied request (absolute URI) must be for a host this server stands in for.
	if r.URL.IsAbs() && !o.hosts[r.URL.Host] {
		opError(w, http.StatusBadGateway, "no such host: "+r.URL.Host)
		return
	}
	path := strings.TrimSuffix(r.URL.Path, "/")
	switch {
	case path == "/heartbeat":
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("."))
		return
	case path == "/health":
		writeJSON(w, map[string]any{"name": "1Password Connect API", "version": onePasswordConnectVersion, "dependencies": []any{}})
		return
	case !strings.HasPrefix(path, "/v1/"):
		opError(w, http.StatusNotFound, "Not Found")
		return
	}
	auth := r.Header.Get("Authorization")
	if !strings.HasPrefix(auth, "Bearer ") {
		opError(w, http.StatusUnauthorized, "Invalid bearer token")
		return
	}
	if strings.TrimPrefix(auth, "Bearer ") != o.token {
		opError(w, http.StatusUnauthorized, "Invalid token signature")
		return
	}
	if r.Method != http.MethodGet {
		opError(w, http.StatusMethodNotAllowed, "the test bed's Connect stand-in serves reads only")
		return
	}
	title, err := titleFilter(r.URL.Query().Get("filter"))
	if err != nil {
		opError(w, http.StatusBadRequest, err.Error())
		return
	}
	parts := strings.Split(strings.TrimPrefix(path, "/v1/"), "/")
	switch {
	case len(parts) == 1 && parts[0] == "vaults":
		out := []*opVault{}
		for _, v := range o.vaults {
			if title == nil || v.Name == *title {
				out = append(out, v)
			}
		}
		writeJSON(w, out)
	case len(parts) >= 2 && parts[0] == "vaults":
		v := o.vaultByID(parts[1])
		if v == nil {
			opError(w, http.StatusNotFound, "vault "+parts[1]+" not found")
			return
		}
		switch {
		case len(parts) == 2:
			writeJSON(w, v)
		case len(parts) == 3 && parts[2] == "items":
			// A listing carries overviews: no field values (the provider then gets the item).
			out := []opItem{}
			for _, it := range v.items {
				if title == nil || it.Title == *title {
					overview := *it
					overview.Fields = nil
					out = append(out, overview)
				}
			}
			writeJSON(w, out)
		case len(parts) == 4 && parts[2] == "items":
			for _, it := range v.items {
				if it.ID == parts[3] {
					writeJSON(w, it)
					return
				}
			}
			opError(w, http.StatusNotFound, "item "+parts[3]+" not found in vault "+v.ID)
		default:
			opError(w, http.StatusNotFound, "Not Found")
		}
	default:
		opError(w, http.StatusNotFound, "Not Found")
	}
}

func (o *OnePasswordConnect) vaultByID(id string) *opVault {
	for _, v := range o.vaults {
		if v.ID == id {
			return v
		}
	}
	return nil
}

// titleFilter parses the only filter the SDK sends, `title eq "<title>"`; nil when absent.
func titleFilter(filter string) (*string, error) {
	if filter == "" {
		return nil, nil
	}
	rest, ok := strings.CutPrefix(filter, `title eq "`)
	if !ok || !strings.HasSuffix(rest, `"`) {
		return nil, fmt.Errorf("unsupported filter %q", filter)
	}
	title := strings.TrimSuffix(rest, `"`)
	return &title, nil
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// opError writes Connect's error body, {"status": code, "message": …}.
func opError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]any{"status": code, "message": msg})
}

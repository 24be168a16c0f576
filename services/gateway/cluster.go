package gateway

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/dittonode/dittonode/ditto"
)

// Cluster is what the gateway needs of the mesh for GET /cluster and
// DELETE /cluster/members/{id} (node implements it).
type Cluster interface {
	// ClusterStatus describes this node, the members and the Raft groups.
	ClusterStatus(ctx context.Context) (any, error)
	// RemoveMember removes the member with peer ID id from every group.
	RemoveMember(ctx context.Context, id string) error
}

const (
	clusterPath        = "/cluster"
	clusterMembersPath = clusterPath + "/members/"
	clusterTimeout     = 10 * time.Second
)

// isClusterPath reports whether path is the cluster resource or below it.
func isClusterPath(path string) bool {
	return path == clusterPath || strings.HasPrefix(path, clusterPath+"/")
}

// serveCluster answers the authenticated cluster endpoints.
func (s *Server) serveCluster(w http.ResponseWriter, r *http.Request) {
	cid := w.Header().Get(correlationKey)
	if _, aerr := s.authenticate(r); aerr != nil {
		if aerr.Status == http.StatusUnauthorized {
			w.Header()[wwwAuthKey] = s.challenge(aerr)
		}
		writeDittoError(w, aerr)
		return
	}
	if s.deps.Cluster == nil {
		writeDittoError(w, ditto.ErrUnavailable.New("This node has no cluster view."))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), clusterTimeout)
	defer cancel()
	path := r.URL.EscapedPath()
	switch {
	case path == clusterPath || path == clusterPath+"/":
		if r.Method != http.MethodGet {
			methodNotAllowed(w, r, mGet)
			return
		}
		st, err := s.deps.Cluster.ClusterStatus(ctx)
		if err != nil {
			s.writeError(w, 0, cid, err)
			return
		}
		s.writeValue(w, http.StatusOK, st, cid)
	case strings.HasPrefix(path, clusterMembersPath) && len(path) > len(clusterMembersPath):
		if r.Method != http.MethodDelete {
			methodNotAllowed(w, r, mDelete)
			return
		}
		id, err := url.PathUnescape(path[len(clusterMembersPath):])
		if err != nil || id == "" || strings.Contains(id, "/") {
			writeDittoError(w, ditto.ErrResourceNotFound.New("The resource '%s' does not exist.", path))
			return
		}
		if err := s.deps.Cluster.RemoveMember(ctx, id); err != nil {
			s.writeError(w, 0, cid, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	default:
		writeDittoError(w, ditto.ErrResourceNotFound.New("The resource '%s' does not exist.", path))
	}
}

package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/dittonode/dittonode/ditto"
)

// Devices is what the gateway needs of the device identities of the
// embedded MQTT broker (node adapts services/connectivity).
type Devices interface {
	// PutDevice creates or replaces a device; subjects nil means the
	// default subject. It reports whether the device was created.
	PutDevice(ctx context.Context, username, password string, subjects []string) (device map[string]any, created bool, err error)
	Device(ctx context.Context, username string) (map[string]any, error)
	Devices(ctx context.Context) ([]map[string]any, error)
	DeleteDevice(ctx context.Context, username string) error
}

const devicesPath = "/devices"

// serveDevices answers /api/2/devices[/{username}] for the configured
// device administrators (Config.DeviceAdmins); it reports whether the path
// was a devices path.
//
//	GET    /api/2/devices              list (without password hashes)
//	GET    /api/2/devices/{username}   one device
//	PUT    /api/2/devices/{username}   {"password":"…","subjects":["…"]} (201 created, 204 replaced)
//	DELETE /api/2/devices/{username}   204
func (s *Server) serveDevices(w http.ResponseWriter, r *http.Request, auth ditto.Auth, escaped, cid string) bool {
	if escaped != devicesPath && !strings.HasPrefix(escaped, devicesPath+"/") {
		return false
	}
	if !slices.ContainsFunc(auth.Subjects, func(sub string) bool { return slices.Contains(s.cfg.DeviceAdmins, sub) }) {
		writeDittoError(w, ditto.ErrDeviceForbidden.New("The subject '%s' may not manage devices.", auth.Default()))
		return true
	}
	if s.deps.Devices == nil {
		writeDittoError(w, ditto.ErrUnavailable.New("This node has no device registry."))
		return true
	}
	ctx := r.Context()
	name := strings.TrimPrefix(strings.TrimPrefix(escaped, devicesPath), "/")
	if name == "" {
		if r.Method != http.MethodGet {
			methodNotAllowed(w, r, mGet)
			return true
		}
		list, err := s.deps.Devices.Devices(ctx)
		if err != nil {
			s.writeError(w, 0, cid, err)
			return true
		}
		if list == nil {
			list = []map[string]any{}
		}
		s.writeValue(w, http.StatusOK, list, cid)
		return true
	}
	username, err := url.PathUnescape(name)
	if err != nil || strings.Contains(username, "/") {
		writeDittoError(w, ditto.ErrResourceNotFound.New("The resource '%s' does not exist.", r.URL.EscapedPath()))
		return true
	}
	switch r.Method {
	case http.MethodGet:
		d, err := s.deps.Devices.Device(ctx, username)
		if err != nil {
			s.writeError(w, 0, cid, err)
			return true
		}
		s.writeValue(w, http.StatusOK, d, cid)
	case http.MethodPut:
		if derr := s.checkMediaType(r.Method, r.Header.Get(contentTypeKey)); derr != nil {
			writeDittoError(w, derr)
			return true
		}
		var body struct {
			Password *string  `json:"password"`
			Subjects []string `json:"subjects"`
		}
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64*1024))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&body); err != nil {
			writeDittoError(w, ditto.ErrJSONInvalid.New("The device definition is not valid JSON of the form {\"password\":\"…\",\"subjects\":[\"…\"]}: %s", truncateText(err.Error(), 200)))
			return true
		}
		if body.Password == nil {
			writeDittoError(w, ditto.ErrJSONFieldMissing.New("The device definition needs a 'password'."))
			return true
		}
		d, created, err := s.deps.Devices.PutDevice(ctx, username, *body.Password, body.Subjects)
		if err != nil {
			s.writeError(w, 0, cid, err)
			return true
		}
		if created {
			w.Header().Set("Location", absoluteURL(r, apiPrefix+devicesPath+"/"+url.PathEscape(username)))
			s.writeValue(w, http.StatusCreated, d, cid)
			return true
		}
		w.WriteHeader(http.StatusNoContent)
	case http.MethodDelete:
		if err := s.deps.Devices.DeleteDevice(ctx, username); err != nil {
			s.writeError(w, 0, cid, err)
			return true
		}
		w.WriteHeader(http.StatusNoContent)
	default:
		methodNotAllowed(w, r, mGet|mPut|mDelete)
	}
	return true
}

package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/dittonode/dittonode/ditto"
)

// permissionCheck is one entry of a POST /checkPermissions body.
type permissionCheck struct {
	key      string
	resType  string
	path     ditto.Pointer
	entityID ditto.EntityID
	entity   string
	perms    []string
}

// serveCheckPermissions answers POST /api/2/checkPermissions:
//
//	{"<key>":{"resource":"thing:/features/lamp/properties/on","entityId":"ns:thing","hasPermissions":["READ"]},...}
//	-> {"<key>":true|false,...}
//
// As in Ditto, a check holds iff the requester's subjects have every listed
// permission unrestricted at the resource (granted there and not revoked
// anywhere below) in the governing policy: for thing: and message:
// resources the policy of the thing entityId, for policy: resources the
// policy entityId itself. A missing thing or policy gives false. The keys
// of the answer keep the order of the request.
func (s *Server) serveCheckPermissions(w http.ResponseWriter, r *http.Request, auth ditto.Auth, cid string) {
	if r.Method != http.MethodPost {
		methodNotAllowed(w, r, mPost)
		return
	}
	if derr := s.checkMediaType(r.Method, r.Header.Get("Content-Type")); derr != nil {
		writeDittoError(w, derr)
		return
	}
	if s.deps.Enforcers == nil || s.deps.ThingState == nil {
		writeDittoError(w, ditto.ErrUnavailable.New("Permission checks are not available on this node."))
		return
	}
	buf := getBuf()
	defer putBuf(buf)
	tooLarge, err := readBody(r.Body, r.ContentLength, s.cfg.MaxBodyBytes, buf)
	switch {
	case err != nil:
		writeDittoError(w, ditto.ErrJSONInvalid.New("The request body could not be read."))
		return
	case tooLarge:
		writeDittoError(w, ditto.ErrRequestTooLarge.New("The request body is larger than the allowed %d bytes.", s.cfg.MaxBodyBytes))
		return
	}
	checks, derr := parsePermissionChecks(buf.Bytes())
	if derr != nil {
		writeDittoError(w, derr)
		return
	}
	out := getBuf()
	defer putBuf(out)
	out.WriteByte('{')
	for i, c := range checks {
		if i > 0 {
			out.WriteByte(',')
		}
		k, _ := json.Marshal(c.key) // a string always encodes
		out.Write(k)
		out.WriteByte(':')
		if s.permitted(c, auth.Subjects) {
			out.WriteString("true")
		} else {
			out.WriteString("false")
		}
	}
	out.WriteByte('}')
	writeJSON(w, http.StatusOK, out.Bytes())
}

// permitted evaluates one check.
func (s *Server) permitted(c permissionCheck, subjects []string) bool {
	policyID := c.entity
	if c.resType != ditto.ResourcePolicy {
		var ok bool
		if _, policyID, ok = s.deps.ThingState(c.entity); !ok || policyID == "" {
			return false
		}
	}
	enf, ok := s.deps.Enforcers.EnforcerFor(policyID, c.entityID.Namespace)
	if !ok {
		return false
	}
	return enf.Unrestricted(c.resType, c.path, subjects, c.perms...)
}

// parsePermissionChecks decodes the body, keeping the key order. Anything
// but an object of well-formed checks is a 400.
func parsePermissionChecks(body []byte) ([]permissionCheck, *ditto.Error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, ditto.ErrJSONInvalid.New("The body of a permission check must be a JSON object of checks.")
	}
	var checks []permissionCheck
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, ditto.ErrJSONInvalid.New("The body of a permission check is not valid JSON.")
		}
		key := tok.(string) // object keys are strings
		if seen[key] {
			return nil, ditto.ErrJSONInvalid.New("The permission check '%s' is given twice.", key)
		}
		seen[key] = true
		var raw struct {
			Resource       *string  `json:"resource"`
			EntityID       *string  `json:"entityId"`
			HasPermissions []string `json:"hasPermissions"`
		}
		if err := dec.Decode(&raw); err != nil {
			return nil, ditto.ErrJSONInvalid.New("The permission check '%s' must be an object with 'resource', 'entityId' and 'hasPermissions'.", key)
		}
		c, derr := newPermissionCheck(key, raw.Resource, raw.EntityID, raw.HasPermissions)
		if derr != nil {
			return nil, derr
		}
		checks = append(checks, c)
	}
	if _, err := dec.Token(); err != nil {
		return nil, ditto.ErrJSONInvalid.New("The body of a permission check is not valid JSON.")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, ditto.ErrJSONInvalid.New("The body of a permission check has trailing data after the JSON object.")
	}
	return checks, nil
}

func newPermissionCheck(key string, resource, entityID *string, perms []string) (permissionCheck, *ditto.Error) {
	if resource == nil || entityID == nil || perms == nil {
		return permissionCheck{}, ditto.ErrJSONFieldMissing.New("The permission check '%s' needs 'resource', 'entityId' and 'hasPermissions'.", key)
	}
	c := permissionCheck{key: key, entity: *entityID}
	typ, p, ok := strings.Cut(*resource, ":")
	switch {
	case !ok:
		return c, ditto.ErrPolicyResourceInvalid.New("The resource '%s' of the permission check '%s' is not of the form '<type>:<path>'.", *resource, key)
	case typ != ditto.ResourceThing && typ != ditto.ResourcePolicy && typ != ditto.ResourceMessage:
		return c, ditto.ErrPolicyResourceInvalid.New("The resource type '%s' of the permission check '%s' is not one of thing, policy, message.", typ, key)
	}
	ptr, err := ditto.ParsePointer(p)
	if err != nil {
		return c, ditto.ErrPolicyResourceInvalid.New("The resource path '%s' of the permission check '%s' is not a valid JSON pointer.", p, key)
	}
	c.resType, c.path = typ, ptr
	id, ok := ditto.ParseEntityID(*entityID)
	if !ok {
		return c, ditto.ErrEntityIDInvalid.New("The entity ID '%s' of the permission check '%s' is not valid.", *entityID, key)
	}
	c.entityID = id
	if len(perms) == 0 {
		return c, ditto.ErrJSONInvalid.New("The permission check '%s' lists no permissions in 'hasPermissions'.", key)
	}
	for _, perm := range perms {
		if perm == "" || hasControl(perm) {
			return c, ditto.ErrJSONInvalid.New("The permission check '%s' has an invalid permission '%s'.", key, perm)
		}
	}
	c.perms = perms
	return c, nil
}

package things

import (
	"github.com/dittonode/dittonode/ditto"
)

// Keys of the thing JSON.
const (
	keyThingID        = "thingId"
	keyPolicyID       = "policyId"
	keyDefinition     = "definition"
	keyAttributes     = "attributes"
	keyFeatures       = "features"
	keyProperties     = "properties"
	keyDesired        = "desiredProperties"
	keyInlinePolicy   = "_policy"
	keyCopyPolicyFrom = "_copyPolicyFrom"
	keyMetadata       = "_metadata"
)

// validator checks values against the thing model. A PUT reports type
// errors as json.format.invalid, a merge as things:merge.invalid.
type validator struct {
	id    string
	merge bool
}

func (v validator) typeErr(format string, args ...any) *ditto.Error {
	if v.merge {
		return ditto.ErrThingMergeInvalid.New(format, args...)
	}
	return ditto.ErrJSONInvalid.New(format, args...)
}

// thing checks a whole thing and returns its canonical form: only the keys
// of the thing model, thingId set. Special and unknown keys are dropped.
func (v validator) thing(val any) (map[string]any, *ditto.Error) {
	m, ok := val.(map[string]any)
	if !ok {
		return nil, v.typeErr("The Thing JSON must be an object.")
	}
	out := make(map[string]any, 5)
	if tid, ok := m[keyThingID]; ok {
		if s, ok := tid.(string); !ok || s != v.id {
			return nil, ditto.ErrThingIDNotSettable.New("The Thing ID in the request body is not equal to the Thing ID '%s' in the request URL.", v.id)
		}
	}
	out[keyThingID] = v.id
	if p, ok := m[keyPolicyID]; ok && p != nil {
		if err := v.policyID(p); err != nil {
			return nil, err
		}
		out[keyPolicyID] = p
	}
	if d, ok := m[keyDefinition]; ok {
		if err := v.definition(d); err != nil {
			return nil, err
		}
		out[keyDefinition] = d
	}
	if a, ok := m[keyAttributes]; ok && a != nil {
		if err := v.object("attributes", a); err != nil {
			return nil, err
		}
		out[keyAttributes] = a
	}
	if f, ok := m[keyFeatures]; ok && f != nil {
		c, err := v.features(f)
		if err != nil {
			return nil, err
		}
		out[keyFeatures] = c
	}
	return out, nil
}

func (v validator) policyID(p any) *ditto.Error {
	s, ok := p.(string)
	if !ok {
		return v.typeErr("The policyId must be a string.")
	}
	if _, err := ditto.ParsePolicyID(s); err != nil {
		return err.(*ditto.Error)
	}
	return nil
}

func (v validator) definition(d any) *ditto.Error {
	if d == nil {
		return nil
	}
	s, ok := d.(string)
	if !ok {
		return v.typeErr("The Thing definition must be a string.")
	}
	if !ditto.ValidDefinition(s) {
		return ditto.ErrThingDefinitionInvalid.New("Definition identifier <%s> is invalid!", s)
	}
	return nil
}

// object checks an attributes / properties object.
func (v validator) object(what string, o any) *ditto.Error {
	if _, ok := o.(map[string]any); !ok {
		return v.typeErr("The %s must be a JSON object.", what)
	}
	if err := ditto.CheckKeys(o); err != nil {
		return err.(*ditto.Error)
	}
	return nil
}

// features checks a features object and returns its canonical form.
func (v validator) features(f any) (map[string]any, *ditto.Error) {
	m, ok := f.(map[string]any)
	if !ok {
		return nil, v.typeErr("The features must be a JSON object.")
	}
	out := make(map[string]any, len(m))
	for id, fv := range m {
		if !ditto.ValidFeatureID(id) {
			return nil, ditto.ErrJSONKeyInvalid.New("JSON key <%s> is invalid!", id)
		}
		c, err := v.feature(fv)
		if err != nil {
			return nil, err
		}
		out[id] = c
	}
	return out, nil
}

// feature checks one feature and returns its canonical form.
func (v validator) feature(f any) (map[string]any, *ditto.Error) {
	m, ok := f.(map[string]any)
	if !ok {
		return nil, v.typeErr("A Feature must be a JSON object.")
	}
	out := make(map[string]any, 3)
	if d, ok := m[keyDefinition]; ok && d != nil {
		if err := v.featureDefinition(d); err != nil {
			return nil, err
		}
		out[keyDefinition] = d
	}
	for _, k := range [...]string{keyProperties, keyDesired} {
		if p, ok := m[k]; ok && p != nil {
			if err := v.object(k, p); err != nil {
				return nil, err
			}
			out[k] = p
		}
	}
	return out, nil
}

func (v validator) featureDefinition(d any) *ditto.Error {
	a, ok := d.([]any)
	if !ok {
		return v.typeErr("A Feature definition must be a non-empty JSON array of definition identifiers.")
	}
	if len(a) == 0 {
		return ditto.ErrFeatureDefinitionEmpty.New("Feature Definition must not be empty!")
	}
	seen := make(map[string]bool, len(a))
	for _, e := range a {
		s, ok := e.(string)
		if !ok {
			return ditto.ErrThingDefinitionInvalid.New("Definition identifier <%s> is invalid!", ditto.EncodeJSON(e))
		}
		if !ditto.ValidDefinition(s) {
			return ditto.ErrThingDefinitionInvalid.New("Definition identifier <%s> is invalid!", s)
		}
		if seen[s] {
			return v.typeErr("The Feature definition contains the identifier <%s> twice.", s)
		}
		seen[s] = true
	}
	return nil
}

// resourceValue checks the value of a PUT on a sub-resource and returns its
// canonical form.
func (v validator) resourceValue(r resource, val any) (any, *ditto.Error) {
	switch r.kind {
	case kindThing:
		return v.thing(val)
	case kindPolicyID:
		return val, v.policyID(val)
	case kindDefinition:
		return val, v.definition(val)
	case kindAttributes:
		return val, v.object("attributes", val)
	case kindProperties:
		return val, v.object("properties", val)
	case kindDesiredProperties:
		return val, v.object("desiredProperties", val)
	case kindAttribute, kindProperty, kindDesiredProperty:
		if err := ditto.CheckKeys(val); err != nil {
			return nil, err.(*ditto.Error)
		}
		return val, nil
	case kindFeatures:
		return v.features(val)
	case kindFeature:
		return v.feature(val)
	case kindFeatureDefinition:
		return val, v.featureDefinition(val)
	}
	return val, nil
}

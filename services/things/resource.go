package things

import (
	"github.com/dittonode/dittonode/ditto"
)

// kind is the thing resource a path addresses.
type kind uint8

const (
	kindThing kind = iota
	kindPolicyID
	kindDefinition
	kindAttributes
	kindAttribute
	kindFeatures
	kindFeature
	kindFeatureDefinition
	kindProperties
	kindProperty
	kindDesiredProperties
	kindDesiredProperty
)

// resource is a classified thing path.
type resource struct {
	kind    kind
	path    ditto.Pointer
	feature string        // feature ID for the feature kinds
	sub     ditto.Pointer // pointer inside attributes / properties / desired properties
}

// classify validates a thing path and names the resource it addresses.
// ditto.ThingsResourceName is the authority on valid paths and their
// errors; the switch below only names the kind.
func classify(p ditto.Pointer) (resource, error) {
	if _, err := ditto.ThingsResourceName(p); err != nil {
		return resource{}, err
	}
	r := resource{path: p}
	if len(p) == 0 {
		return r, nil
	}
	bad := func() (resource, error) {
		return resource{}, ditto.ErrResourceNotFound.New("The thing resource '%s' does not exist.", p.String())
	}
	switch p[0] {
	case "policyId":
		if len(p) != 1 {
			return bad()
		}
		r.kind = kindPolicyID
	case "definition":
		if len(p) != 1 {
			return bad()
		}
		r.kind = kindDefinition
	case "attributes":
		r.kind = kindAttributes
		if len(p) > 1 {
			r.kind = kindAttribute
			r.sub = p[1:]
			if err := checkPointerKeys(r.sub); err != nil {
				return resource{}, err
			}
		}
	case "features":
		r.kind = kindFeatures
		if len(p) == 1 {
			return r, nil
		}
		r.feature = p[1]
		if !ditto.ValidFeatureID(r.feature) {
			return resource{}, ditto.ErrJSONKeyInvalid.New("JSON key <%s> is invalid!", r.feature)
		}
		r.kind = kindFeature
		if len(p) == 2 {
			return r, nil
		}
		switch p[2] {
		case "definition":
			if len(p) != 3 {
				return bad()
			}
			r.kind = kindFeatureDefinition
		case "properties":
			r.kind = kindProperties
			if len(p) > 3 {
				r.kind = kindProperty
			}
		case "desiredProperties":
			r.kind = kindDesiredProperties
			if len(p) > 3 {
				r.kind = kindDesiredProperty
			}
		default:
			return bad()
		}
		r.sub = p[3:]
		if err := checkPointerKeys(r.sub); err != nil {
			return resource{}, err
		}
	default:
		return bad()
	}
	return r, nil
}

func checkPointerKeys(p ditto.Pointer) error {
	for _, k := range p {
		if err := ditto.CheckKey(k); err != nil {
			return err
		}
	}
	return nil
}

// featurePath is the pointer of the addressed feature.
func (r resource) featurePath() ditto.Pointer { return ditto.Pointer{"features", r.feature} }

// inFeature reports whether the resource lies strictly inside one feature.
func (r resource) inFeature() bool { return r.kind > kindFeature }

// subString renders the inner pointer for messages.
func (r resource) subString() string { return r.sub.String() }

// notFound is the 404 of the addressed resource.
func (r resource) notFound(id string) *ditto.Error {
	switch r.kind {
	case kindPolicyID:
		return ditto.ErrThingPolicyIDNotFound.New("The Policy ID of the Thing with ID '%s' could not be found or requester had insufficient permissions to access it.", id)
	case kindDefinition:
		return ditto.ErrThingDefinitionNotFound.New("The definition of the Thing with ID '%s' could not be found or the requester had insufficient permissions to access it.", id)
	case kindAttributes:
		return ditto.ErrAttributesNotFound.New("The attributes of the Thing with ID '%s' could not be found or the requester had insufficient permissions to access it.", id)
	case kindAttribute:
		return ditto.ErrAttributeNotFound.New("The attribute with key '%s' on the thing with ID '%s' could not be found or the requester had insufficient permissions to access it.", r.sub.String()[1:], id)
	case kindFeatures:
		return ditto.ErrFeaturesNotFound.New("The Features on the Thing with ID '%s' do not exist or the requester had insufficient permissions to access it.", id)
	case kindFeature:
		return featureNotFound(r.feature, id)
	case kindFeatureDefinition:
		return ditto.ErrFeatureDefNotFound.New("The definition of the Feature with ID '%s' on the Thing with ID '%s' could not be found or the requester had insufficient permissions to access it.", r.feature, id)
	case kindProperties:
		return ditto.ErrFeaturePropsNotFound.New("The Properties of the Feature with ID '%s' on the Thing with ID '%s' do not exist or the requester had insufficient permissions to access it.", r.feature, id)
	case kindProperty:
		return ditto.ErrFeaturePropNotFound.New("The Property with JSON Pointer '%s' of the Feature with ID '%s' on the Thing with ID '%s' does not exist or the requester had insufficient permissions to access it.", r.subString(), r.feature, id)
	case kindDesiredProperties:
		return ditto.ErrFeatureDesPropsNotFound.New("The desired properties of the Feature with ID '%s' on the Thing with ID '%s' do not exist or the requester had insufficient permissions to access it.", r.feature, id)
	case kindDesiredProperty:
		return ditto.ErrFeatureDesPropNotFound.New("The desired property with JSON Pointer '%s' of the Feature with ID '%s' on the Thing with ID '%s' does not exist or the requester had insufficient permissions to access it.", r.subString(), r.feature, id)
	default:
		return thingNotFound(id)
	}
}

func thingNotFound(id string) *ditto.Error {
	return ditto.ErrThingNotFound.New("The Thing with ID '%s' could not be found or requester had insufficient permissions to access it.", id)
}

func featureNotFound(feature, id string) *ditto.Error {
	return ditto.ErrFeatureNotFound.New("The Feature with ID '%s' on the Thing with ID '%s' could not be found or the requester had insufficient permissions to access it.", feature, id)
}

// notModifiable is the 403 of a denied write on the addressed resource.
func (r resource) notModifiable(id string, action ditto.Action) *ditto.Error {
	const tail = "could not be modified as the requester had insufficient permissions to modify it."
	switch r.kind {
	case kindPolicyID:
		return ditto.ErrThingPolicyIDNotMod.New("The Policy ID of the Thing with ID '%s' "+tail, id)
	case kindDefinition:
		return ditto.ErrThingDefinitionNotMod.New("The definition of the Thing with ID '%s' "+tail, id)
	case kindAttributes:
		return ditto.ErrAttributesNotModifiable.New("The attributes of the Thing with ID '%s' "+tail, id)
	case kindAttribute:
		return ditto.ErrAttributeNotModifiable.New("The attribute with key '%s' on the thing with ID '%s' "+tail, r.sub.String()[1:], id)
	case kindFeatures:
		return ditto.ErrFeaturesNotModifiable.New("The Features of the Thing with ID '%s' "+tail, id)
	case kindFeature:
		return ditto.ErrFeatureNotModifiable.New("The Feature with ID '%s' on the Thing with ID '%s' "+tail, r.feature, id)
	case kindFeatureDefinition:
		return ditto.ErrFeatureDefNotModifiable.New("The definition of the Feature with ID '%s' on the Thing with ID '%s' "+tail, r.feature, id)
	case kindProperties:
		return ditto.ErrFeaturePropsNotMod.New("The Properties of the Feature with ID '%s' on the Thing with ID '%s' "+tail, r.feature, id)
	case kindProperty:
		return ditto.ErrFeaturePropNotMod.New("The Property with JSON Pointer '%s' of the Feature with ID '%s' on the Thing with ID '%s' "+tail, r.subString(), r.feature, id)
	case kindDesiredProperties:
		return ditto.ErrFeatureDesPropsNotMod.New("The desired properties of the Feature with ID '%s' on the Thing with ID '%s' "+tail, r.feature, id)
	case kindDesiredProperty:
		return ditto.ErrFeatureDesPropNotMod.New("The desired property with JSON Pointer '%s' of the Feature with ID '%s' on the Thing with ID '%s' "+tail, r.subString(), r.feature, id)
	default:
		if action == ditto.ActionDelete {
			return ditto.ErrThingNotDeletable.New("The Thing with ID '%s' could not be deleted as the requester had insufficient permissions to delete it.", id)
		}
		return ditto.ErrThingNotModifiable.New("The Thing with ID '%s' "+tail, id)
	}
}

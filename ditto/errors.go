package ditto

import (
	"encoding/json"
	"fmt"
)

// Error is a domain failure as Ditto reports it. It encodes exactly to Ditto's
// error JSON: {"status","error","message","description","href"}.
type Error struct {
	Status      int    `json:"status"`
	Code        string `json:"error"`
	Message     string `json:"message"`
	Description string `json:"description,omitempty"`
	Href        string `json:"href,omitempty"`
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// JSON returns the error's Ditto JSON encoding.
func (e *Error) JSON() []byte {
	b, _ := json.Marshal(e)
	return b
}

// WithDescription returns a copy of e with another description.
func (e *Error) WithDescription(d string) *Error {
	c := *e
	c.Description = d
	return &c
}

// ErrorDef is one entry of the catalogue: a code, its HTTP status and the
// default description.
type ErrorDef struct {
	Code        string
	Status      int
	Description string
}

// New builds an error of this kind with the given message.
func (d ErrorDef) New(format string, args ...any) *Error {
	msg := format
	if len(args) > 0 {
		msg = fmt.Sprintf(format, args...)
	}
	return &Error{Status: d.Status, Code: d.Code, Message: msg, Description: d.Description, Href: hrefs[d.Code]}
}

// hrefs are the links Ditto's errors of these codes carry.
var hrefs = map[string]string{
	"things:id.invalid":    "https://www.eclipse.dev/ditto/basic-namespaces-and-names.html#namespaced-id",
	"policies:id.invalid":  "https://www.eclipse.dev/ditto/basic-namespaces-and-names.html#namespaced-id",
	"things:merge.invalid": "https://tools.ietf.org/html/rfc7396",
}

// The error catalogue. Codes, statuses and descriptions follow Ditto. Every
// failure dittonode reports to a client is built from one of these.
var (
	// General (no prefix).
	ErrJSONInvalid       = ErrorDef{"json.format.invalid", 400, "Check if the JSON was valid (e.g. on https://jsonlint.com) and if it was in required format."}
	ErrJSONKeyInvalid    = ErrorDef{"json.key.invalid", 400, "Keys must not contain slashes or control characters and must not be longer than 256 characters."}
	ErrJSONFieldMissing  = ErrorDef{"json.field.missing", 400, "Check if all required JSON fields were set."}
	ErrPointerInvalid    = ErrorDef{"json.pointer.invalid", 400, "Check if the JSON pointer is valid: no empty segments in the middle, no control characters."}
	ErrHeaderInvalid     = ErrorDef{"header.invalid", 400, "Verify that the header has the correct syntax."}
	ErrRQLInvalid        = ErrorDef{"rql.expression.invalid", 400, "Check if the RQL expression is syntactically and semantically correct."}
	ErrTimeoutInvalid    = ErrorDef{"timeout.invalid", 400, "The timeout must be a positive duration of at most 60 seconds, e.g. 30, 30s, 250ms or 1m."}
	ErrCommandTimeout    = ErrorDef{"command.timeout", 408, "The request took longer than its timeout. Try again or raise the timeout."}
	ErrNamespaceBlocked  = ErrorDef{"namespace.blocked", 409, "The namespace is currently blocked. Try again later."}
	ErrMediaTypeUnsup    = ErrorDef{"mediatype.unsupported", 415, "Send the request with a supported Content-Type."}
	ErrEntityIDInvalid   = ErrorDef{"entity.id.invalid", 400, "IDs must have the form 'namespace:name' and be at most 256 characters long."}
	ErrTooManyRequests   = ErrorDef{"too.many.requests", 429, "Slow down and try again later."}
	ErrHeadersTooLarge   = ErrorDef{"headers.too.large", 431, "Reduce the size of the request headers to at most 5 kB."}
	ErrSubjectsTooLarge  = ErrorDef{"gateway:authorization.subjects.toolarge", 431, "A request may carry at most 100 authorization subjects."}
	ErrUnavailable       = ErrorDef{"gateway:service.unavailable", 503, "The service is currently unavailable. Try again later."}
	ErrInternal          = ErrorDef{"gateway:internal.error", 500, "An unexpected error occurred; the correlation-id identifies it in the node's log."}
	ErrMethodNotAllowed  = ErrorDef{"gateway:method.notallowed", 405, "Use one of the methods this resource supports."}
	ErrResourceNotFound  = ErrorDef{"gateway:resource.notfound", 404, "Check the path of the request: no such resource exists in the API."}
	ErrAuthFailed        = ErrorDef{"gateway:authentication.failed", 401, "Check that the credentials are correct and sent in the Authorization header."}
	ErrRequestTooLarge   = ErrorDef{"gateway:request.toolarge", 413, "Reduce the size of the request body."}
	ErrDittoHeaderUnsup  = ErrorDef{"gateway:header.notsupported", 400, "Headers starting with 'ditto-' and other internal headers are not accepted from clients."}
	ErrQueryParamInvalid = ErrorDef{"gateway:query.parameter.invalid", 400, "Check the query parameters of the request."}

	// JWT/OIDC authentication (Ditto's GatewayJwt* exceptions).
	ErrJWTInvalid              = ErrorDef{"gateway:jwt.invalid", 401, "Check if your JWT is correct."}
	ErrJWTIssuerNotSupported   = ErrorDef{"gateway:jwt.issuer.notsupported", 401, "Check if your JWT is correct."}
	ErrJWTConditionFailed      = ErrorDef{"gateway:jwt.condition.failed", 401, "Check if your JWT contains the required claims."}
	ErrAuthProviderUnavailable = ErrorDef{"gateway:authentication.provider.unavailable", 503, "If after retry it is still unavailable, please contact the service team."}

	// Things.
	ErrThingIDInvalid            = ErrorDef{"things:id.invalid", 400, "It must conform to the namespaced entity ID notation (see Ditto documentation)."}
	ErrThingIDNotSettable        = ErrorDef{"things:id.notsettable", 400, "Either delete the Thing ID from the resource or change it to match the ID in the URL."}
	ErrThingIDNotDeletable       = ErrorDef{"things:id.notdeletable", 400, "The thingId of a Thing cannot be deleted."}
	ErrThingNotFound             = ErrorDef{"things:thing.notfound", 404, "Check if the ID of your requested Thing was correct and you have sufficient permissions."}
	ErrThingHistoryNotFound      = ErrorDef{"things:thing.history.notfound", 404, "Check if the ID of your requested Thing was correct, you have sufficient permissions and ensure that the asked for revision/timestamp is the Thing's current one: this node keeps no earlier revisions."}
	ErrThingConflict             = ErrorDef{"things:thing.conflict", 409, "Choose another Thing ID or modify the existing Thing instead."}
	ErrThingNotCreatable         = ErrorDef{"things:thing.notcreatable", 400, "Check if the referenced policy exists and you are allowed to use it."}
	ErrThingNotModifiable        = ErrorDef{"things:thing.notmodifiable", 403, "Check if the ID of your requested Thing was correct and you have sufficient permissions."}
	ErrThingNotDeletable         = ErrorDef{"things:thing.notdeletable", 403, "Check if the ID of your requested Thing was correct and you have sufficient permissions."}
	ErrThingTooLarge             = ErrorDef{"things:thing.toolarge", 413, "Reduce the size of the Thing to at most 100 kB."}
	ErrThingPolicyIDNotFound     = ErrorDef{"things:policyId.notfound", 404, "Check if the ID of your requested Thing was correct and you have sufficient permissions."}
	ErrThingPolicyIDNotMod       = ErrorDef{"things:policyId.notmodifiable", 403, "Check if you have sufficient permissions."}
	ErrThingPolicyIDNotDeletable = ErrorDef{"things:policyId.notdeletable", 400, "The policyId of a Thing cannot be deleted; set another one instead."}
	ErrThingPolicyInvalid        = ErrorDef{"things:policy.invalid", 400, "Check the inline policy: it must be a valid policy."}
	ErrThingPolicyConflicting    = ErrorDef{"things:policy.conflicting", 400, "Give either '_policy' or '_copyPolicyFrom', not both."}
	ErrThingPolicyNotAllowed     = ErrorDef{"things:policy.notallowed", 400, "An inline policy may only be given when the Thing is created."}
	ErrThingDefinitionNotFound   = ErrorDef{"things:definition.notfound", 404, "Check if the ID of your requested Thing was correct and you have sufficient permissions."}
	ErrThingDefinitionNotMod     = ErrorDef{"things:definition.notmodifiable", 403, "Check if you have sufficient permissions."}
	ErrThingDefinitionInvalid    = ErrorDef{"things:definition.identifier.invalid", 400, "A definition is 'namespace:name:version' (each part [_a-zA-Z0-9-.]) or an http(s) URL."}
	ErrAttributesNotFound        = ErrorDef{"things:attributes.notfound", 404, "Check if the ID of your requested Thing was correct and you have sufficient permissions."}
	ErrAttributesNotModifiable   = ErrorDef{"things:attributes.notmodifiable", 403, "Check if you have sufficient permissions."}
	ErrAttributeNotFound         = ErrorDef{"things:attribute.notfound", 404, "Check if the ID of the thing and the key of your requested attribute was correct and you have sufficient permissions."}
	ErrAttributeNotModifiable    = ErrorDef{"things:attribute.notmodifiable", 403, "Check if you have sufficient permissions."}
	ErrFeaturesNotFound          = ErrorDef{"things:features.notfound", 404, "Check if the ID of your requested Thing was correct and you have sufficient permissions."}
	ErrFeaturesNotModifiable     = ErrorDef{"things:features.notmodifiable", 403, "Check if you have sufficient permissions."}
	ErrFeatureNotFound           = ErrorDef{"things:feature.notfound", 404, "Check if the ID of the Thing and the Feature ID was correct and you have sufficient permissions."}
	ErrFeatureNotModifiable      = ErrorDef{"things:feature.notmodifiable", 403, "Check if you have sufficient permissions."}
	ErrFeatureDefNotFound        = ErrorDef{"things:feature.definition.notfound", 404, "Check if the ID of the Thing and the Feature ID was correct and you have sufficient permissions."}
	ErrFeatureDefNotModifiable   = ErrorDef{"things:feature.definition.notmodifiable", 403, "Check if you have sufficient permissions."}
	ErrFeaturePropsNotFound      = ErrorDef{"things:feature.properties.notfound", 404, "Check if the ID of the Thing and the Feature ID was correct and you have sufficient permissions."}
	ErrFeaturePropsNotMod        = ErrorDef{"things:feature.properties.notmodifiable", 403, "Check if you have sufficient permissions."}
	ErrFeaturePropNotFound       = ErrorDef{"things:feature.property.notfound", 404, "Check if the ID of the Thing, the Feature ID and the key of your requested property was correct and you have sufficient permissions."}
	ErrFeaturePropNotMod         = ErrorDef{"things:feature.property.notmodifiable", 403, "Check if you have sufficient permissions."}
	ErrFeatureDesPropsNotFound   = ErrorDef{"things:feature.desiredProperties.notfound", 404, "Check if the ID of the Thing and the Feature ID was correct and you have sufficient permissions."}
	ErrFeatureDesPropsNotMod     = ErrorDef{"things:feature.desiredProperties.notmodifiable", 403, "Check if you have sufficient permissions."}
	ErrFeatureDesPropNotFound    = ErrorDef{"things:feature.desiredProperty.notfound", 404, "Check if the ID of the Thing, the Feature ID and the key of your requested desired property was correct and you have sufficient permissions."}
	ErrFeatureDesPropNotMod      = ErrorDef{"things:feature.desiredProperty.notmodifiable", 403, "Check if you have sufficient permissions."}
	ErrThingPreconditionFailed   = ErrorDef{"things:precondition.failed", 412, "The comparison of the provided precondition header with the current ETag value of the requested Thing resource evaluated to false. Check the value of your conditional header value."}
	ErrThingPreconditionNotMod   = ErrorDef{"things:precondition.notmodified", 304, "The comparison of the provided precondition header with the current ETag value of the requested Thing resource evaluated to false. Check the value of your conditional header value."}
	ErrThingConditionFailed      = ErrorDef{"things:condition.failed", 412, "The provided condition did not match the current state of the Thing, or the requester may not read the fields it references."}
	ErrThingConditionInvalid     = ErrorDef{"things:condition.invalid", 400, "Check the RQL syntax of the condition."}
	ErrThingMergeInvalid         = ErrorDef{"things:merge.invalid", 400, "Check the merge patch: it must be JSON of the type the path requires."}
	ErrFieldSelectionInvalid     = ErrorDef{"things:field.selection.invalid", 400, "Check the field selector: allowed roots are thingId, policyId, definition, _namespace, _revision, _created, _modified, _metadata, _policy, _context, attributes and features."}
	ErrThingTooManyModifying     = ErrorDef{"things:thing.toomanymodifyingrequests", 429, "Slow down the modifications of this Thing."}
	ErrThingUnavailable          = ErrorDef{"things:thing.unavailable", 503, "The Thing is currently not available. Try again later."}
	ErrFeatureDefinitionEmpty    = ErrorDef{"things:feature.definition.empty", 400, "Provide at least one definition identifier in the Feature definition."}
	ErrThingIDsMissing           = ErrorDef{"things:things.ids.missing", 400, "Please provide at least one thing id and try again."}
	ErrThingMetadataConflict     = ErrorDef{"things:metadata.headersconflict", 400, "Multiple metadata headers were specified. Use only one of the following metadata headers: 'put-metadata', 'get-metadata' or 'delete-metadata'."}
	ErrThingMetadataNotMod       = ErrorDef{"things:metadata.notmodifiable", 400, "Multiple occurrences of metadata per request is not allowed. Either specify metadata in the header 'put-metadata' or in the Thing '_metadata'."}
	ErrLiveConditionNotAllowed   = ErrorDef{"things:live.channel.condition.notallowed", 405, "The live-channel-condition is only allowed on retrieve commands."}

	// Policies.
	ErrPolicyIDInvalid          = ErrorDef{"policies:id.invalid", 400, "It must conform to the namespaced entity ID notation (see Ditto documentation)."}
	ErrPolicyIDNotSettable      = ErrorDef{"policies:id.notsettable", 400, "Either delete the Policy ID from the resource or change it to match the ID in the URL."}
	ErrPolicyNotFound           = ErrorDef{"policies:policy.notfound", 404, "Check if the ID of your requested Policy was correct and you have sufficient permissions."}
	ErrPolicyHistoryNotFound    = ErrorDef{"policies:policy.history.notfound", 404, "Check if the ID of your requested Policy was correct, you have sufficient permissions and ensure that the asked for revision/timestamp is the Policy's current one: this node keeps no earlier revisions."}
	ErrPolicyConflict           = ErrorDef{"policies:policy.conflict", 409, "Choose another Policy ID or modify the existing Policy instead."}
	ErrPolicyNotCreatable       = ErrorDef{"policies:policy.notcreatable", 403, "Check if you have sufficient permissions."}
	ErrPolicyNotModifiable      = ErrorDef{"policies:policy.notmodifiable", 403, "Check if the ID of the Policy was correct and you have sufficient permissions."}
	ErrPolicyNotDeletable       = ErrorDef{"policies:policy.notdeletable", 403, "Check if the ID of the Policy was correct and you have sufficient permissions."}
	ErrPolicyModInvalid         = ErrorDef{"policies:policy.modificationinvalid", 403, "There must always be at least one subject without expiry that has WRITE permission on 'policy:/'."}
	ErrPolicyTooLarge           = ErrorDef{"policies:policy.toolarge", 413, "Reduce the size of the Policy to at most 100 kB."}
	ErrPolicyInvalid            = ErrorDef{"policies:policy.invalid", 400, "Check the structure of the Policy."}
	ErrPolicyPreconditionFailed = ErrorDef{"policies:precondition.failed", 412, "The comparison of the provided precondition header with the current ETag value of the requested Policy resource evaluated to false. Check the value of your conditional header value."}
	ErrPolicyPreconditionNotMod = ErrorDef{"policies:precondition.notmodified", 304, "The comparison of the provided precondition header with the current ETag value of the requested Policy resource evaluated to false. Check the value of your conditional header value."}
	ErrPolicyEntriesNotFound    = ErrorDef{"policies:entries.notfound", 404, "Check if the ID of the Policy was correct and you have sufficient permissions."}
	ErrPolicyEntriesNotMod      = ErrorDef{"policies:entries.notmodifiable", 403, "Check if you have sufficient permissions."}
	ErrPolicyEntryNotFound      = ErrorDef{"policies:entry.notfound", 404, "Check if the ID of the Policy and the label of the entry was correct and you have sufficient permissions."}
	ErrPolicyEntryNotModifiable = ErrorDef{"policies:entry.notmodifiable", 403, "Check if you have sufficient permissions."}
	ErrPolicyEntryModInvalid    = ErrorDef{"policies:entry.modificationinvalid", 403, "There must always be at least one subject without expiry that has WRITE permission on 'policy:/'."}
	ErrPolicyEntryInvalid       = ErrorDef{"policies:entry.invalid", 400, "Check the structure of the policy entry."}
	ErrPolicyLabelInvalid       = ErrorDef{"policies:label.invalid", 400, "Labels must not start with 'imported' or 'nsimported-'."}
	ErrPolicySubjectsNotFound   = ErrorDef{"policies:subjects.notfound", 404, "Check if the ID of the Policy and the label of the entry was correct and you have sufficient permissions."}
	ErrPolicySubjectsNotMod     = ErrorDef{"policies:subjects.notmodifiable", 403, "Check if you have sufficient permissions."}
	ErrPolicySubjectNotFound    = ErrorDef{"policies:subject.notfound", 404, "Check if the ID of the Policy, the label of the entry and the subject ID was correct and you have sufficient permissions."}
	ErrPolicySubjectNotMod      = ErrorDef{"policies:subject.notmodifiable", 403, "Check if you have sufficient permissions."}
	ErrPolicySubjectExpiryBad   = ErrorDef{"policies:subjectexpiry.invalid", 400, "It must be provided as ISO-8601 formatted char sequence."}
	ErrPolicySubjectIDInvalid   = ErrorDef{"policies:subjectid.invalid", 400, "Subject IDs have the form '<issuer>:<subject>' without control characters."}
	ErrPolicyResourcesNotFound  = ErrorDef{"policies:resources.notfound", 404, "Check if the ID of the Policy and the label of the entry was correct and you have sufficient permissions."}
	ErrPolicyResourcesNotMod    = ErrorDef{"policies:resources.notmodifiable", 403, "Check if you have sufficient permissions."}
	ErrPolicyResourceNotFound   = ErrorDef{"policies:resource.notfound", 404, "Check if the ID of the Policy, the label of the entry and the resource key was correct and you have sufficient permissions."}
	ErrPolicyResourceNotMod     = ErrorDef{"policies:resource.notmodifiable", 403, "Check if you have sufficient permissions."}
	ErrPolicyResourceInvalid    = ErrorDef{"policies:resource.invalid", 400, "Resource keys have the form '<type>:<path>' with type thing, policy or message, and grant/revoke contain only READ, WRITE and EXECUTE."}
	ErrPolicyImportsNotFound    = ErrorDef{"policies:imports.notfound", 404, "Check if the ID of the Policy was correct and you have sufficient permissions."}
	ErrPolicyImportsNotMod      = ErrorDef{"policies:imports.notmodifiable", 403, "Check if you have sufficient permissions."}
	ErrPolicyImportNotFound     = ErrorDef{"policies:import.notfound", 404, "Check if the ID of the Policy and of the imported Policy was correct and you have sufficient permissions."}
	ErrPolicyImportNotMod       = ErrorDef{"policies:import.notmodifiable", 403, "Check if you have sufficient permissions."}
	ErrPolicyImportInvalid      = ErrorDef{"policies:import.invalid", 400, "Check the import: a policy cannot import itself and entries must be labels."}
	ErrPolicyImportsTooLarge    = ErrorDef{"policies:imports.toolarge", 400, "A policy may have at most 10 imports."}
	ErrPolicyUnavailable        = ErrorDef{"policies:policy.unavailable", 503, "The Policy is currently not available. Try again later."}
	ErrPolicyEntryNamespacesBad = ErrorDef{"policies:entry.namespaces.invalid", 400, "Namespaces are namespace names, optionally ending in '.*'."}
	ErrPolicyImportableInvalid  = ErrorDef{"policies:entry.importable.invalid", 400, "'importable' is one of implicit, explicit, never."}
	ErrPolicyEntryRefConflict   = ErrorDef{"policies:entry.referenceconflict", 409, "Remove the local entry references first before deleting the referenced entry."}
	ErrPolicyImportRefConflict  = ErrorDef{"policies:import.referenceconflict", 409, "Remove the entry references first before deleting the import."}
	ErrPolicyActionNotAllowed   = ErrorDef{"policies:action.notallowed", 403, "Check if you have EXECUTE permission on the action."}
	ErrPolicyAnnouncementBad    = ErrorDef{"policies:subjectannouncement.invalid", 400, "Durations are a positive integer followed by 'ms', 's', 'm' or 'h'; whenDeleted is a boolean; requestedAcks is {labels, timeout}."}

	// Search, messages, acknowledgements, connectivity.
	ErrSearchOptionInvalid  = ErrorDef{"thing-search:search.option.invalid", 400, "Check the search options: sort(+f,-g), size(1..200), cursor(c); limit cannot be combined with size or cursor."}
	ErrSearchCursorInvalid  = ErrorDef{"thing-search:search.cursor.invalid", 400, "The cursor is invalid or belongs to another filter or sort."}
	ErrSearchTimeout        = ErrorDef{"thing-search:search.timeout", 504, "The search took too long. Make the query more selective."}
	ErrSearchProtocol       = ErrorDef{"thing-search:subscription.protocol.error", 400, "Follow the search protocol: subscribe, request, cancel."}
	ErrSearchSubNotFound    = ErrorDef{"thing-search:subscription.not.found", 404, "Check the subscriptionId: the subscription may have ended."}
	ErrSearchSubTimeout     = ErrorDef{"thing-search:subscription.timeout", 408, "Request pages in time: a subscription without requests ends."}
	ErrMessageSendDenied    = ErrorDef{"messages:send.notallowed", 403, "Check if you have WRITE permission on the message resource."}
	ErrMessageTooLarge      = ErrorDef{"messages:message.toolarge", 413, "Reduce the size of the message payload to at most 250 kB."}
	ErrMessageSubjectBad    = ErrorDef{"messages:subject.invalid", 400, "The subject must conform to the RFC-3986 (URI) definition."}
	ErrMessageTimeout       = ErrorDef{"messages:message.timeout", 408, "No response arrived in time."}
	ErrAckTimeout           = ErrorDef{"acknowledgement:request.timeout", 408, "The acknowledgement did not arrive in time."}
	ErrAckLabelNotUnique    = ErrorDef{"acknowledgement:label.not.unique", 409, "Acknowledgement labels must be unique."}
	ErrAckLabelInvalid      = ErrorDef{"acknowledgement:label.invalid", 400, "Acknowledgement labels match [a-zA-Z0-9-_:]{3,100}; the built-in labels cannot be issued or declared."}
	ErrAckLabelNotDeclared  = ErrorDef{"acknowledgement:label.not.declared", 400, "Declare the acknowledgement label (e.g. WebSocket declared-acks) before issuing acknowledgements with it."}
	ErrEventNotAllowed      = ErrorDef{"things:event.notallowed", 403, "Check if you have WRITE permission on the thing resource of the live event."}
	ErrConnectionNotFound   = ErrorDef{"connectivity:connection.notfound", 404, "Check if the ID of the connection was correct."}
	ErrConnectionConflict   = ErrorDef{"connectivity:connection.conflict", 409, "Choose another connection ID."}
	ErrConnectionInvalid    = ErrorDef{"connectivity:connection.configuration.invalid", 400, "Check the connection configuration."}
	ErrConnectionIDInvalid  = ErrorDef{"connectivity:connection.id.invalid", 400, "Connection IDs match [a-zA-Z0-9-_:]{1,100}."}
	ErrConnectionFailed     = ErrorDef{"connectivity:connection.failed", 400, "Check the URI, the credentials and that the endpoint is reachable from the node."}
	ErrConnectionCommand    = ErrorDef{"connectivity:connection.command.invalid", 400, "Send one of connectivity.commands:openConnection, closeConnection, testConnection, resetConnectionMetrics, enableConnectionLogs or resetConnectionLogs as text."}
	ErrConnectionNotAllowed = ErrorDef{"connectivity:connection.notallowed", 403, "Connections are managed by the subjects configured as connection administrators."}
	// The embedded connection (the node's own MQTT broker).
	ErrConnectionNotDeletable = ErrorDef{"connectivity:connection.notdeletable", 409, "The embedded connection exists on every node that runs the MQTT broker; close it (connectivity.commands:closeConnection) or edit it instead."}
	ErrConnectionClosed       = ErrorDef{"connectivity:connection.closed", 503, "The embedded connection is closed: the node does not turn device publishes into commands until it is opened again (connectivity.commands:openConnection)."}
	ErrMappingFailed          = ErrorDef{"connectivity:message.mapping.failed", 400, "Check the payload mapping of the connection and the message it got."}
	ErrEnforcementFailed      = ErrorDef{"connectivity:connection.id.enforcement.failed", 400, "The message's enforcement input does not match the filters of the source: a device may only change its own things."}
	ErrPlaceholderNotFound    = ErrorDef{"placeholder:placeholder.notfound", 400, "Check the placeholder name."}
	ErrPlaceholderFnInvalid   = ErrorDef{"placeholder:function.invalid", 400, "Check the placeholder function."}
	ErrPlaceholderRefUnsup    = ErrorDef{"placeholder:placeholder.reference.notsupported", 400, "Only references of the form '{{ ref:things/<thingId>/policyId }}' are supported."}
	ErrTopicInvalid           = ErrorDef{"protocoladapter:unknown.topicpath", 400, "Check if the topic path is correct."}
	ErrPathUnknown            = ErrorDef{"protocoladapter:unknown.path", 400, "Check if the path is correct: it must address a resource of the entity."}

	// Device identities of the embedded MQTT broker.
	ErrDeviceNotFound  = ErrorDef{"connectivity:device.notfound", 404, "Check the username of the device."}
	ErrDeviceInvalid   = ErrorDef{"connectivity:device.invalid", 400, "Check the device definition: a password of 1 to 72 bytes and subjects of the form <issuer>:<subject>."}
	ErrDeviceForbidden = ErrorDef{"connectivity:device.forbidden", 403, "Only the configured device administrators may manage devices."}
)

// Catalogue lists every ErrorDef above; a test checks codes, prefixes and
// statuses.
var Catalogue = []ErrorDef{
	ErrJSONInvalid, ErrJSONKeyInvalid, ErrJSONFieldMissing, ErrPointerInvalid, ErrHeaderInvalid, ErrRQLInvalid,
	ErrTimeoutInvalid, ErrCommandTimeout, ErrNamespaceBlocked, ErrMediaTypeUnsup, ErrEntityIDInvalid,
	ErrTooManyRequests, ErrHeadersTooLarge, ErrSubjectsTooLarge, ErrUnavailable, ErrInternal, ErrMethodNotAllowed,
	ErrResourceNotFound, ErrAuthFailed, ErrJWTInvalid, ErrJWTIssuerNotSupported, ErrJWTConditionFailed,
	ErrAuthProviderUnavailable, ErrRequestTooLarge, ErrDittoHeaderUnsup, ErrQueryParamInvalid,
	ErrThingIDInvalid, ErrThingIDNotSettable, ErrThingIDNotDeletable, ErrThingNotFound, ErrThingConflict, ErrThingNotCreatable,
	ErrThingNotModifiable, ErrThingNotDeletable, ErrThingTooLarge, ErrThingPolicyIDNotFound, ErrThingPolicyIDNotMod,
	ErrThingPolicyIDNotDeletable, ErrThingPolicyInvalid, ErrThingPolicyConflicting, ErrThingPolicyNotAllowed,
	ErrThingDefinitionNotFound, ErrThingDefinitionNotMod, ErrThingDefinitionInvalid, ErrAttributesNotFound,
	ErrAttributesNotModifiable, ErrAttributeNotFound, ErrAttributeNotModifiable, ErrFeaturesNotFound,
	ErrFeaturesNotModifiable, ErrFeatureNotFound, ErrFeatureNotModifiable, ErrFeatureDefNotFound,
	ErrFeatureDefNotModifiable, ErrFeaturePropsNotFound, ErrFeaturePropsNotMod, ErrFeaturePropNotFound,
	ErrThingHistoryNotFound, ErrFeaturePropNotMod, ErrFeatureDesPropsNotFound, ErrFeatureDesPropsNotMod, ErrFeatureDesPropNotFound,
	ErrFeatureDesPropNotMod, ErrThingPreconditionFailed, ErrThingPreconditionNotMod, ErrThingConditionFailed,
	ErrThingConditionInvalid, ErrThingMergeInvalid, ErrFieldSelectionInvalid, ErrThingTooManyModifying,
	ErrThingUnavailable, ErrFeatureDefinitionEmpty, ErrThingIDsMissing, ErrThingMetadataConflict, ErrThingMetadataNotMod, ErrLiveConditionNotAllowed,
	ErrPolicyIDInvalid, ErrPolicyIDNotSettable, ErrPolicyNotFound, ErrPolicyHistoryNotFound, ErrPolicyConflict, ErrPolicyNotCreatable,
	ErrPolicyNotModifiable, ErrPolicyNotDeletable, ErrPolicyModInvalid, ErrPolicyTooLarge, ErrPolicyInvalid,
	ErrPolicyPreconditionFailed, ErrPolicyPreconditionNotMod, ErrPolicyEntriesNotFound, ErrPolicyEntriesNotMod,
	ErrPolicyEntryNotFound, ErrPolicyEntryNotModifiable, ErrPolicyEntryModInvalid, ErrPolicyEntryInvalid,
	ErrPolicyLabelInvalid, ErrPolicySubjectsNotFound, ErrPolicySubjectsNotMod, ErrPolicySubjectNotFound,
	ErrPolicySubjectNotMod, ErrPolicySubjectExpiryBad, ErrPolicySubjectIDInvalid, ErrPolicyResourcesNotFound, ErrPolicyResourcesNotMod,
	ErrPolicyResourceNotFound, ErrPolicyResourceNotMod, ErrPolicyResourceInvalid, ErrPolicyImportsNotFound,
	ErrPolicyImportsNotMod, ErrPolicyImportNotFound, ErrPolicyImportNotMod, ErrPolicyImportInvalid,
	ErrPolicyImportsTooLarge, ErrPolicyUnavailable, ErrPolicyEntryNamespacesBad, ErrPolicyImportableInvalid,
	ErrPolicyEntryRefConflict, ErrPolicyImportRefConflict,
	ErrPolicyActionNotAllowed, ErrPolicyAnnouncementBad,
	ErrSearchOptionInvalid, ErrSearchCursorInvalid, ErrSearchTimeout, ErrSearchProtocol, ErrSearchSubNotFound, ErrSearchSubTimeout, ErrMessageSendDenied,
	ErrMessageTooLarge, ErrMessageSubjectBad, ErrMessageTimeout, ErrAckTimeout, ErrAckLabelNotUnique, ErrAckLabelInvalid,
	ErrAckLabelNotDeclared, ErrEventNotAllowed, ErrConnectionNotFound,
	ErrConnectionConflict, ErrConnectionInvalid, ErrConnectionIDInvalid, ErrConnectionFailed, ErrConnectionCommand,
	ErrConnectionNotDeletable, ErrConnectionClosed,
	ErrConnectionNotAllowed, ErrMappingFailed, ErrEnforcementFailed, ErrPlaceholderNotFound,
	ErrPlaceholderFnInvalid, ErrPlaceholderRefUnsup, ErrTopicInvalid, ErrPathUnknown,
	ErrDeviceNotFound, ErrDeviceInvalid, ErrDeviceForbidden,
}

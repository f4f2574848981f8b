package kvsapi

import (
	"errors"
	"fmt"
	"net/http"
)

// Error is an API error in the shape AWS clients parse: the type goes in the
// x-amzn-ErrorType header, the message in a JSON body, with the status below.
type Error struct {
	Type    string
	Status  int
	Message string
}

func (e *Error) Error() string { return e.Type + ": " + e.Message }

// The one table of error types and their HTTP statuses (kvs-api.md §1).
var errorStatus = map[string]int{
	"InvalidArgumentException":                 http.StatusBadRequest,
	"ClientLimitExceededException":             http.StatusBadRequest,
	"ResourceNotFoundException":                http.StatusNotFound,
	"NotAuthorizedException":                   http.StatusUnauthorized,
	"AccessDeniedException":                    http.StatusUnauthorized,
	"ResourceInUseException":                   http.StatusBadRequest,
	"VersionMismatchException":                 http.StatusBadRequest,
	"TagsPerResourceExceededLimitException":    http.StatusBadRequest,
	"InvalidResourceFormatException":           http.StatusBadRequest,
	"NoDataRetentionException":                 http.StatusBadRequest,
	"AccountStreamLimitExceededException":      http.StatusBadRequest,
	"ConnectionLimitExceededException":         http.StatusBadRequest,
	"InvalidEndpointException":                 http.StatusBadRequest,
	"UnsupportedStreamMediaTypeException":      http.StatusBadRequest,
	"MissingCodecPrivateDataException":         http.StatusBadRequest,
	"InvalidCodecPrivateDataException":         http.StatusBadRequest,
	"InvalidMediaFrameException":               http.StatusBadRequest,
	"SerializationException":                   http.StatusBadRequest,
	"UnknownOperationException":                http.StatusNotFound,
	"InternalFailure":                          http.StatusInternalServerError,
	"MissingAuthenticationTokenException":      http.StatusForbidden,
	"IncompleteSignatureException":             http.StatusForbidden,
	"InvalidSignatureException":                http.StatusForbidden,
	"UnrecognizedClientException":              http.StatusForbidden,
	"ExpiredTokenException":                    http.StatusForbidden,
	"RequestEntityTooLargeException":           http.StatusRequestEntityTooLarge,
	"MethodNotAllowedException":                http.StatusMethodNotAllowed,
	"ServiceUnavailableException":              http.StatusServiceUnavailable,
	"StreamEdgeConfigurationNotFoundException": http.StatusNotFound,
}

func apiError(typ, format string, args ...any) *Error {
	st, ok := errorStatus[typ]
	if !ok {
		panic("kvsapi: error type missing from the table: " + typ)
	}
	return &Error{Type: typ, Status: st, Message: fmt.Sprintf(format, args...)}
}

func invalidArg(format string, args ...any) *Error {
	return apiError("InvalidArgumentException", format, args...)
}

func notFound(format string, args ...any) *Error {
	return apiError("ResourceNotFoundException", format, args...)
}

func internalError(err error) *Error {
	return apiError("InternalFailure", "internal error: %v", err)
}

// asAPIError maps any error to an *Error (unknown errors become InternalFailure).
func asAPIError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return internalError(err)
}

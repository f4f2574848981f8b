// Package apierr is the one table of API error types Kinema answers with,
// in the shape AWS clients parse: the type in the x-amzn-ErrorType header,
// {"message": ...} as the JSON body, and the HTTP status the service model
// gives each type. Every HTTP surface (the KVS API, playback resources,
// the clip-metadata API) reports errors through it.
package apierr

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
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
// Status maps each error type to its HTTP status.
var Status = map[string]int{
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

// New returns an error of a type from the table.
func New(typ, format string, args ...any) *Error {
	st, ok := Status[typ]
	if !ok {
		panic("apierr: error type missing from the table: " + typ)
	}
	return &Error{Type: typ, Status: st, Message: fmt.Sprintf(format, args...)}
}

// InvalidArg is an InvalidArgumentException.
func InvalidArg(format string, args ...any) *Error {
	return New("InvalidArgumentException", format, args...)
}

// NotFound is a ResourceNotFoundException.
func NotFound(format string, args ...any) *Error {
	return New("ResourceNotFoundException", format, args...)
}

// Internal wraps an unexpected failure.
func Internal(err error) *Error {
	return New("InternalFailure", "internal error: %v", err)
}

// As maps any error to an *Error (unknown errors become InternalFailure).
func As(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return Internal(err)
}

// Write sends e as the response.
func Write(w http.ResponseWriter, e *Error) {
	h := w.Header()
	h.Set("x-amzn-ErrorType", e.Type)
	h.Set("Content-Type", "application/json")
	w.WriteHeader(e.Status)
	b, _ := json.Marshal(map[string]string{"message": e.Message})
	w.Write(b)
}

// NewRequestID makes a request id in the UUID form AWS services use (the
// x-amzn-RequestId header).
func NewRequestID() string {
	var b [16]byte
	rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

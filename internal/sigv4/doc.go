// Package sigv4 verifies AWS Signature Version 4 (AWS4-HMAC-SHA256) on
// requests that reach Kinema's HTTP server, so that unmodified AWS clients
// (the KVS producer SDK, the AWS SDKs and CLI, curl --aws-sigv4) can
// authenticate with an access key id and secret.
//
// It is hand-written: AWS and the community publish SigV4 signers for
// clients, but there is no maintained Go library that verifies signatures on
// the server side. The aws-sdk-go-v2 signer is used only in tests, as an
// oracle.
//
// Both forms of SigV4 are accepted: the Authorization header, and presigned
// URLs (X-Amz-Algorithm, X-Amz-Credential, ... in the query string).
// Temporary credentials are supported through SessionCredentials: the
// secret of a request carrying X-Amz-Security-Token is looked up with the
// token, and an expired one is ExpiredTokenException.
//
// The canonical request is rebuilt from what the client listed in
// SignedHeaders, which means undoing what net/http did to the request on the
// way in:
//
//   - net/http moves Host to r.Host and Transfer-Encoding to
//     r.TransferEncoding; both are put back. The host value is used exactly as
//     received: the producer SDK sends and signs it without a port, the AWS
//     SDKs and curl send and sign host:port.
//   - Over HTTP/2, curl (and so the producer SDK) silently drops the
//     connection and transfer-encoding headers although it has signed them;
//     when they are missing on an HTTP/2 request they are rebuilt as
//     "keep-alive" and "chunked", the only values the producer SDK sends.
//   - The canonical URI is the path exactly as it was on the wire, percent
//     encoded once more (every service except S3 double-encodes).
//
// Streamed bodies (PutMedia) are not buffered, so their payload hash cannot
// be checked: the producer SDK signs sha256("") for them, other clients may
// send X-Amz-Content-Sha256 (UNSIGNED-PAYLOAD, a STREAMING-* literal, or a
// hash). In those cases the body itself is not authenticated, only the
// request line and the signed headers are; this matches what KVS clients
// expect and is a property of the protocol, not of this package.
package sigv4

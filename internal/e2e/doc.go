// Package e2e holds Kinema's end-to-end tests: the real server started on
// loopback, driven by real clients (the AWS SDK for Go v2, the AWS CLI, curl,
// ffmpeg and ffprobe). It has no code of its own outside tests.
package e2e

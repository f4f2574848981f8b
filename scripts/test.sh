#!/usr/bin/env bash
# Runs every test of Kinema. Installs missing tools first; fails, never
# skips, when a tool or service a test needs is absent.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
for tool in go ffmpeg ffprobe mkvinfo curl aws; do
	command -v "$tool" >/dev/null || { echo "test: required tool $tool is missing" >&2; exit 1; }
done
echo "test: go vet" >&2
go vet ./...
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then echo "test: gofmt needed: $unformatted" >&2; exit 1; fi
echo "test: go build (CGO_ENABLED=0)" >&2
CGO_ENABLED=0 go build -o /dev/null ./cmd/kinema
# The race detector needs cgo; the binary under test in e2e is still built
# with CGO_ENABLED=0 (see internal/e2e).
echo "test: go test -race" >&2
CGO_ENABLED=1 go test -race -count=1 -timeout 25m "$@" ./...

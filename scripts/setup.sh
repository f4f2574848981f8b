#!/usr/bin/env bash
# Installs what Kinema needs to build, run and test on a Debian machine:
# Go (from the Go module proxy when the system has none or an old one),
# ffmpeg/ffprobe and mkvtoolnix (media tools the tests and `kinema put` use),
# curl and the AWS CLI (independent test clients), gcc (only for the race
# detector in tests; the kinema binary itself builds with CGO_ENABLED=0). Idempotent; needs root
# (or sudo) only when something is missing.
set -euo pipefail

GO_VERSION=1.26.8
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi

missing=()
for tool in ffmpeg:ffmpeg ffprobe:ffmpeg mkvinfo:mkvtoolnix curl:curl unzip:unzip gcc:gcc git:git chattr:e2fsprogs; do
	command -v "${tool%%:*}" >/dev/null 2>&1 || missing+=("${tool#*:}")
done
command -v aws >/dev/null 2>&1 || missing+=(awscli)
if [ ${#missing[@]} -gt 0 ]; then
	echo "setup: installing ${missing[*]}" >&2
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends ca-certificates $(printf '%s\n' "${missing[@]}" | sort -u) >/dev/null
fi

go_ok() {
	command -v go >/dev/null 2>&1 || return 1
	local v
	v=$(go env GOVERSION 2>/dev/null | sed 's/^go//')
	[ "$(printf '%s\n' "1.26" "$v" | sort -V | head -1)" = "1.26" ]
}
if ! go_ok && [ -x /usr/local/go/bin/go ]; then export PATH=/usr/local/go/bin:$PATH; fi
if ! go_ok; then
	# The Go toolchain is published as a module; fetching it from the module
	# proxy works wherever `go get` does.
	proxy=${GOPROXY:-https://proxy.golang.org}
	proxy=${proxy%%,*}
	echo "setup: installing Go $GO_VERSION from $proxy" >&2
	tmp=$(mktemp -d)
	curl -fsSL -o "$tmp/go.zip" "$proxy/golang.org/toolchain/@v/v0.0.1-go$GO_VERSION.linux-amd64.zip"
	(cd "$tmp" && unzip -q go.zip)
	$SUDO rm -rf /usr/local/go
	$SUDO mv "$tmp/golang.org/toolchain@v0.0.1-go$GO_VERSION.linux-amd64" /usr/local/go
	$SUDO chmod +x /usr/local/go/bin/* /usr/local/go/pkg/tool/*/* 2>/dev/null || true
	rm -rf "$tmp"
	export PATH=/usr/local/go/bin:$PATH
	go_ok || { echo "setup: Go install failed" >&2; exit 1; }
fi
echo "setup: $(go version), $(ffmpeg -version | head -1 | cut -d' ' -f1-3), $(aws --version 2>&1 | cut -d' ' -f1)" >&2

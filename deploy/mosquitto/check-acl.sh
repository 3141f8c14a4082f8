#!/usr/bin/env bash
# Check deploy/mosquitto/{mosquitto-auth.conf,passwd,acl} on a private Mosquitto (free ports,
# temporary directory): who may connect, what each user may publish and read (replies only in
# its own bigskies/client/<client id>/ namespace, no request topics), and that every
# request operation the coordinators declare (serde `rename`/`alias` "<action>/<resource>" in
# framework/coordinators/src/<name>/) is publishable by `client` and `plugin`. Needs mosquitto,
# mosquitto_pub and mosquitto_sub. Exits 1 on the first failed check.
set -euo pipefail
cd "$(dirname "$0")/../.."

dir=$(mktemp -d)
mosq_pid=
recorder_pid=
cleanup() {
    [ -n "$recorder_pid" ] && kill "$recorder_pid" 2>/dev/null
    [ -n "$mosq_pid" ] && kill "$mosq_pid" 2>/dev/null
    rm -rf "$dir"
}
trap cleanup EXIT

fail() { printf 'FAIL %s\n' "$*" >&2; exit 1; }
pass() { printf 'ok   %s\n' "$*"; }

free_port() {
    local p
    while :; do
        p=$((20000 + RANDOM % 40000))
        (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
    done
}

# The compose config with its two listeners moved to free loopback ports and the files of the
# checkout (a port taken in between makes mosquitto exit: try again).
MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto)
for _ in 1 2 3 4 5; do
    deploy_port=$(free_port)
    harness_port=$(free_port)
    [ "$deploy_port" != "$harness_port" ] || continue
    sed -e "s#/mosquitto-config/#$PWD/deploy/mosquitto/#" \
        -e "s#^listener 1883 0.0.0.0#listener $deploy_port 127.0.0.1#" \
        -e "s#^listener 1884 0.0.0.0#listener $harness_port 127.0.0.1#" \
        deploy/mosquitto/mosquitto-auth.conf >"$dir/mosquitto.conf"
    grep -q "^listener $harness_port 127.0.0.1" "$dir/mosquitto.conf" || fail "listeners not found in mosquitto-auth.conf"
    "$MOSQUITTO" -c "$dir/mosquitto.conf" >"$dir/mosquitto.log" 2>&1 &
    mosq_pid=$!
    for _ in $(seq 50); do
        grep -q "running" "$dir/mosquitto.log" && break
        kill -0 "$mosq_pid" 2>/dev/null || break
        sleep 0.1
    done
    grep -q "running" "$dir/mosquitto.log" && break
    kill "$mosq_pid" 2>/dev/null || true
    mosq_pid=
done
[ -n "$mosq_pid" ] || { cat "$dir/mosquitto.log" >&2; fail "mosquitto did not start"; }
pass "mosquitto-auth.conf loads (deployment listener $deploy_port, harness listener $harness_port)"

SERVICE=(-u bigskies -P bigskies-test-service)
CLIENT=(-u client -P bigskies-test-client)
HEALTH=(-u healthcheck -P bigskies-test-healthcheck)
PLUGIN=(-u plugin -P bigskies-test-plugin)

# publish PORT TOPIC PAYLOAD [credentials...]: QoS 1, MQTT 5; prints the client's output.
publish() {
    local port=$1 topic=$2 payload=$3
    shift 3
    mosquitto_pub -V 5 -q 1 -h 127.0.0.1 -p "$port" "$@" -t "$topic" -m "$payload" 2>&1 || true
}

# Every message under bigskies/, seen by the service user.
mosquitto_sub -V 5 -h 127.0.0.1 -p "$deploy_port" "${SERVICE[@]}" -v -t 'bigskies/#' \
    >"$dir/seen" 2>&1 &
recorder_pid=$!
for _ in $(seq 50); do
    publish "$deploy_port" bigskies/check/ready ready "${SERVICE[@]}" >/dev/null
    grep -q "^bigskies/check/ready ready" "$dir/seen" && break
    sleep 0.1
done
grep -q "^bigskies/check/ready ready" "$dir/seen" || fail "the service user cannot read its own publications"

refused() { # what, port, credentials...
    local what=$1 port=$2
    shift 2
    local out
    out=$(publish "$port" bigskies/coordinator/security/auth/login refused "$@")
    grep -qi "not authori" <<<"$out" || fail "$what was not refused: $out"
    pass "$what: connection refused"
}
refused "anonymous client on the deployment listener" "$deploy_port"
refused "client with a wrong password" "$deploy_port" -u client -P wrong
refused "unknown user" "$deploy_port" -u nobody -P nothing
refused "named user with a wrong password on the harness listener" "$harness_port" -u bigskies -P wrong

n=0
expect_seen=()
expect_dropped=()
sent() { # topic port credentials... -> publish a unique payload that must arrive
    local topic=$1 port=$2
    shift 2
    n=$((n + 1))
    publish "$port" "$topic" "m$n" "$@" >/dev/null
    expect_seen+=("$topic m$n")
}
dropped() { # like sent, but the broker must drop it
    local topic=$1 port=$2
    shift 2
    n=$((n + 1))
    publish "$port" "$topic" "m$n" "$@" >/dev/null
    expect_dropped+=("$topic m$n")
}

# The coordinators may publish anything under the root.
sent bigskies/coordinator/telescope/health/status "$deploy_port" "${SERVICE[@]}"
sent bigskies/coordinator/security/event/token_revoked "$deploy_port" "${SERVICE[@]}"
sent bigskies/client/c1/reply "$deploy_port" "${SERVICE[@]}"
sent bigskies/coordinator/bootstrap/credentials "$deploy_port" "${SERVICE[@]}"

# client and plugin: every declared request action, plus the Go compatibility topics.
for who in CLIENT PLUGIN; do
    declare -n creds=$who
    actions=0
    for src in framework/coordinators/src/*/; do
        name=$(basename "$src")
        while read -r op; do
            sent "bigskies/coordinator/$name/$op" "$deploy_port" "${creds[@]}"
            actions=$((actions + 1))
        done < <(grep -rhoE '(rename|alias) = "[a-z_]+/[a-z_]+"' "$src" | sed -E 's/.*"(.*)"/\1/' | sort -u)
    done
    [ "$actions" -gt 50 ] || fail "found only $actions request operations in framework/coordinators/src"
    sent bigskies/coordinator/bootstrap/request "$deploy_port" "${creds[@]}"
    sent bigskies/coordinator/service/event/register "$deploy_port" "${creds[@]}"
    sent bigskies/coordinator/service/event/heartbeat "$deploy_port" "${creds[@]}"
    # ... and nothing that only coordinators may say.
    for topic in \
        bigskies/coordinator/telescope/health/status \
        bigskies/coordinator/security/event/token_revoked \
        bigskies/coordinator/uielement/event/element_registered \
        bigskies/coordinator/security/response/auth/login/response \
        bigskies/coordinator/config/update/security-coordinator \
        bigskies/coordinator/bootstrap/credentials \
        bigskies/client/c1/reply \
        bigskies/coordinator/telescope/frobnicate/now \
        other/topic; do
        dropped "$topic" "$deploy_port" "${creds[@]}"
    done
    unset -n creds
done
# A plugin reports its health; a client cannot pretend to be one.
sent bigskies/plugin/p1/health "$deploy_port" "${PLUGIN[@]}"
dropped bigskies/plugin/p1/health "$deploy_port" "${CLIENT[@]}"
dropped bigskies/plugin/p1/other "$deploy_port" "${PLUGIN[@]}"
# healthcheck: publishes nothing.
dropped bigskies/coordinator/security/auth/login "$deploy_port" "${HEALTH[@]}"
# harness listener, anonymous: any request (unknown ones too), nothing outside the root.
sent bigskies/coordinator/security/auth/login "$harness_port"
sent bigskies/coordinator/telescope/frobnicate/now "$harness_port"
dropped bigskies/client/c1/reply "$harness_port"
dropped bst-0123456789ab/coordinator/x/health/status "$harness_port"
# The harness listener still authenticates named users.
sent bigskies/coordinator/message/health/status "$harness_port" "${SERVICE[@]}"

# Everything published before this marker has been routed once the marker arrives.
publish "$deploy_port" bigskies/check/done done "${SERVICE[@]}" >/dev/null
for _ in $(seq 50); do
    grep -q "^bigskies/check/done done" "$dir/seen" && break
    sleep 0.1
done
grep -q "^bigskies/check/done done" "$dir/seen" || fail "the end marker never arrived"
for m in "${expect_seen[@]}"; do
    grep -qxF "$m" "$dir/seen" || fail "not delivered: $m"
done
pass "${#expect_seen[@]} allowed publications delivered (client and plugin: $actions declared request operations each)"
for m in "${expect_dropped[@]}"; do
    ! grep -qxF "$m" "$dir/seen" || fail "delivered although forbidden: $m"
done
pass "${#expect_dropped[@]} forbidden publications dropped"

# Reading. read_one PAYLOAD TOPIC PUBLISH_TOPIC CLIENT_ID credentials...: subscribe to TOPIC as
# CLIENT_ID, have the service user publish PAYLOAD on PUBLISH_TOPIC, print what arrived
# (nothing when the ACL hides it). Runs in a subshell, so callers count.
read_one() {
    local payload=$1 topic=$2 target=$3 id=$4 port=$deploy_port
    shift 4
    # A message that may arrive comes within milliseconds on loopback: wait 1 s for one that
    # must not (the subscriber stops at the first message when one does come).
    local got="$dir/read-$payload"
    mosquitto_sub -V 5 -h 127.0.0.1 -p "$port" -i "$id" "$@" -t "$topic" -C 1 -W 1 >"$got" 2>/dev/null &
    local sub=$!
    sleep 0.2
    publish "$deploy_port" "$target" "$payload" "${SERVICE[@]}" >/dev/null
    wait "$sub" 2>/dev/null || true
    cat "$got"
}
reads() { # what topic id credentials...: must arrive
    local what=$1 topic=$2 id=$3
    shift 3
    local try
    for try in 1 2 3; do # a slow subscription start under load must not look like a refusal
        n=$((n + 1))
        [ "$(read_one "r$n" "$topic" "$topic" "$id" "$@")" = "r$n" ] && break
        [ "$try" = 3 ] && fail "$what cannot read $topic"
    done
    pass "$what reads $topic"
}
hidden() { # what filter published-topic id credentials...: must not arrive
    local what=$1 filter=$2 topic=$3 id=$4
    shift 4
    n=$((n + 1))
    [ -z "$(read_one "r$n" "$filter" "$topic" "$id" "$@")" ] || fail "$what read $topic through $filter"
    pass "$what does not read $topic (subscribed to $filter)"
}
for who in CLIENT PLUGIN; do
    declare -n creds=$who
    w=${who,,}
    reads "$w" bigskies/coordinator/telescope/health/status "$w-a" "${creds[@]}"
    reads "$w" bigskies/coordinator/telescope/event/slew/completed "$w-a" "${creds[@]}"
    reads "$w" bigskies/coordinator/security/event/token_revoked "$w-a" "${creds[@]}"
    reads "$w" bigskies/coordinator/message/event/system/health "$w-a" "${creds[@]}"
    reads "$w" bigskies/coordinator/security/response/auth/login/response "$w-a" "${creds[@]}"
    reads "$w" bigskies/plugin/p1/health "$w-a" "${creds[@]}"
    # Its own reply namespace, named after its MQTT client id; nobody else's.
    reads "$w" "bigskies/client/$w-a/reply" "$w-a" "${creds[@]}"
    hidden "$w" "bigskies/client/$w-b/reply" "bigskies/client/$w-b/reply" "$w-a" "${creds[@]}"
    hidden "$w" "bigskies/client/#" "bigskies/client/$w-b/reply" "$w-a" "${creds[@]}"
    hidden "$w" "bigskies/#" "bigskies/client/$w-b/reply" "$w-a" "${creds[@]}"
    # Requests carry passwords and tokens: only coordinators read them.
    hidden "$w" "bigskies/coordinator/security/auth/login" bigskies/coordinator/security/auth/login "$w-a" "${creds[@]}"
    hidden "$w" "bigskies/#" bigskies/coordinator/telescope/control/slew "$w-a" "${creds[@]}"
    hidden "$w" "bigskies/coordinator/+/event/#" bigskies/coordinator/uielement/event/register "$w-a" "${creds[@]}"
    hidden "$w" "bigskies/coordinator/service/event/#" bigskies/coordinator/service/event/register "$w-a" "${creds[@]}"
    unset -n creds
done
publish "$deploy_port" bigskies/coordinator/bootstrap/credentials '{"retained":true}' -r "${SERVICE[@]}" >/dev/null
for who in CLIENT PLUGIN; do
    declare -n creds=$who
    out=$(mosquitto_sub -h 127.0.0.1 -p "$deploy_port" "${creds[@]}" -t 'bigskies/coordinator/bootstrap/credentials' -C 1 -W 3 2>&1) \
        || fail "${who,,} cannot read the retained credentials message: $out"
    pass "${who,,} reads the retained credentials message"
    unset -n creds
done
out=$(mosquitto_sub -h 127.0.0.1 -p "$harness_port" -t 'bigskies/coordinator/bootstrap/credentials' -C 1 -W 3 2>&1) \
    || fail "anonymous harness client cannot read bigskies/#: $out"
pass "anonymous harness client reads bigskies/#"
mosquitto_sub -h 127.0.0.1 -p "$deploy_port" "${HEALTH[@]}" -t '$SYS/broker/uptime' -C 1 -W 3 >/dev/null 2>&1 \
    || fail "healthcheck cannot read \$SYS/broker/uptime"
if mosquitto_sub -h 127.0.0.1 -p "$deploy_port" "${HEALTH[@]}" -t 'bigskies/#' -C 1 -W 2 >/dev/null 2>&1; then
    fail "healthcheck can read bigskies/#"
fi
pass "healthcheck reads \$SYS/broker/uptime and nothing under bigskies/"
publish "$deploy_port" bigskies/coordinator/bootstrap/credentials '' -r "${SERVICE[@]}" >/dev/null
echo "deploy/mosquitto: every check passed"

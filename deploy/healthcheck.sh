#!/bin/sh
# bigskies-healthcheck NAME: the container healthcheck of a coordinator (docker-compose.test.yml).
#
# Coordinators have no HTTP endpoint; they publish their health, retained, on
# <root>/coordinator/NAME/health/status (at start, on every change and every interval), and the
# broker replaces it with an `offline` report (their last will) when one vanishes; a coordinator
# that stops cleanly publishes `stopping`. So the retained message is the coordinator's own view
# of itself: this reads it once and succeeds when its status is `healthy` or `degraded`
# (a degraded coordinator still serves requests).
#
# Connects with the credentials of BIGSKIES_MQTT_URL (mqtt://[user:pass@]host[:port], as the
# coordinator does) under BIGSKIES_TOPIC_ROOT (default bigskies). Needs mosquitto_sub and jq.
set -eu

name=${1:?usage: bigskies-healthcheck <coordinator>}
root=${BIGSKIES_TOPIC_ROOT:-bigskies}
rest=${BIGSKIES_MQTT_URL:-mqtt://127.0.0.1:1883}
rest=${rest#*://}
rest=${rest%/}

set -- -t "$root/coordinator/$name/health/status" -C 1 -W 5
case $rest in
*@*)
    creds=${rest%@*}
    rest=${rest##*@}
    case $creds in
    *:*) set -- "$@" -u "${creds%%:*}" -P "${creds#*:}" ;;
    *) set -- "$@" -u "$creds" ;;
    esac
    ;;
esac
case $rest in
*:*) set -- "$@" -h "${rest%:*}" -p "${rest##*:}" ;;
*) set -- "$@" -h "$rest" -p 1883 ;;
esac

status=$(mosquitto_sub "$@" | jq -r '.payload.status // empty')
case $status in
healthy | degraded) exit 0 ;;
esac
echo "$name: health status ${status:-not published}" >&2
exit 1

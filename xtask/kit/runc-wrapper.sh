#!/bin/sh
# runc for machines whose capability bounding set lacks CAP_SYS_RESOURCE (some sandboxed VMs).
# There, runc fails to lower oom_score_adj (containerd's CRI asks -998 for every pod sandbox) and
# to grant the capability to privileged containers. Where the capability is present, this is a
# plain `exec` of the real runc; where it is missing, the OCI spec is adjusted first: the
# capability is dropped from every set, and an oom_score_adj below our own is left out.
REAL=@REAL@

cap=
while read -r key value; do
    [ "$key" = "CapBnd:" ] && cap=$value
done < /proc/self/status
if [ -z "$cap" ] || [ $(( (0x$cap >> 24) & 1 )) -eq 1 ]; then
    exec "$REAL" "$@"
fi

read -r own < /proc/self/oom_score_adj
spec=
process=
command=
prev=
for arg in "$@"; do
    case "$prev" in
        --bundle|-b) spec="$arg/config.json" ;;
        --process|-p) process="$arg" ;;
    esac
    case "$arg" in
        --bundle=*) spec="${arg#--bundle=}/config.json" ;;
        --process=*) process="${arg#--process=}" ;;
        create|run|exec) [ -z "$command" ] && command=$arg ;;
    esac
    prev=$arg
done
if [ "$command" = create ] || [ "$command" = run ]; then
    [ -z "$spec" ] && spec="$PWD/config.json"
fi

drop_caps='with_entries(.value |= (if type == "array" then map(select(. != "CAP_SYS_RESOURCE")) else . end))'
if [ -n "$spec" ] && [ -f "$spec" ]; then
    jq --argjson own "$own" "
        (if (.process.oomScoreAdj // \$own) < \$own then del(.process.oomScoreAdj) else . end)
        | (if .process.capabilities then .process.capabilities |= $drop_caps else . end)
    " "$spec" > "$spec.kit-tmp" && mv "$spec.kit-tmp" "$spec"
fi
if [ -n "$process" ] && [ -f "$process" ]; then
    jq "if .capabilities then .capabilities |= $drop_caps else . end" "$process" > "$process.kit-tmp" \
        && mv "$process.kit-tmp" "$process"
fi
exec "$REAL" "$@"

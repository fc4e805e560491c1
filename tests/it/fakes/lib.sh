# Shared by kscale's fake tools (sourced, not run). Each fake appends its argv as one line to
# "$KSCALE_FAKE_LOG" (program name first, arguments joined by single spaces) and keeps what the
# real tool would remember in "$KSCALE_FAKE_STATE", a directory owned by the test:
#   minikube/profiles/NAME/{status,nodes,addons/ADDON,images}   minikube profiles
#   docker/images                                                 images in the local daemon
#   docker/networks/PROFILE                                       minikube's network of a profile
#   helm/repos                                                    "NAME URL" per line
#   helm/releases/NAMESPACE/NAME/{chart,version,status,revision,values.yaml}
# Failure injection: KSCALE_FAKE_FAIL is a comma-separated list of
#   helm-install:RELEASE   `helm upgrade --install RELEASE` fails like a wait past its deadline
#   helm-hang:RELEASE      `helm upgrade --install RELEASE` waits until a signal stops it
#   docker-daemon          the Docker daemon is down
#   minikube-delete-leaves-network  the first `minikube delete` leaves the profile's network
#   minikube-addons-format `minikube addons list -o json` prints another format (a list)
#   helm-repo-format       `helm repo list -o json` prints another format (an object)
# The variables may also come from fakes.env beside the fakes: kscale refuses unknown KSCALE_*
# variables in its own environment, so the tests hand them to the fakes that way.
if [[ -f "${BASH_SOURCE[0]%/*}/fakes.env" ]]; then
    source "${BASH_SOURCE[0]%/*}/fakes.env"
fi
: "${KSCALE_FAKE_STATE:?the fakes need KSCALE_FAKE_STATE}" "${KSCALE_FAKE_LOG:?the fakes need KSCALE_FAKE_LOG}"

log_call() {
    local line=$1 a
    shift
    for a in "$@"; do line+=" $a"; done
    printf '%s\n' "$line" >>"$KSCALE_FAKE_LOG"
}

fail_injected() {
    [[ ",${KSCALE_FAKE_FAIL:-}," == *",$1,"* ]]
}

# JSON string literal of $1 (the values the fakes print contain no control characters).
json_str() {
    local s=${1//\\/\\\\}
    s=${s//\"/\\\"}
    printf '"%s"' "$s"
}

#!/usr/bin/env bash
# self-deploy.sh: deploys the application on this instance with Capistrano, over SSH to
# localhost, as the application user. Run as root (the SSM agent does, through the
# SelfDeploy document); `self-deploy.sh --help` lists every input and exit code.
set -Eeuo pipefail
export LC_ALL=C
umask 022

# The SelfDeploy document's parameter contract (functions/shared/document-contract.ts).
# The document builder refuses to build unless these lines equal the contract exactly.
readonly PATTERN_SELFDEPLOY_ENVIRONMENT='^[a-z][a-z0-9_-]{0,31}$'
readonly DEFAULT_SELFDEPLOY_ENVIRONMENT='production'
readonly PATTERN_SELFDEPLOY_REVISION='^$|^[A-Za-z0-9_][A-Za-z0-9._/-]{0,127}$'
readonly DEFAULT_SELFDEPLOY_REVISION=''
readonly PATTERN_SELFDEPLOY_APP_USER='^[a-z_][a-z0-9_-]{0,31}$'
readonly DEFAULT_SELFDEPLOY_APP_USER='deploy'
readonly PATTERN_SELFDEPLOY_DEPLOY_PATH='^(/[A-Za-z0-9_-][A-Za-z0-9._-]*)+$'
readonly DEFAULT_SELFDEPLOY_DEPLOY_PATH='/var/www/app/deploy'
readonly PATTERN_SELFDEPLOY_APP_PATH='^(/[A-Za-z0-9_-][A-Za-z0-9._-]*)+$'
readonly DEFAULT_SELFDEPLOY_APP_PATH='/var/www/app'
readonly PATTERN_SELFDEPLOY_MIGRATE='^(true|false)$'
readonly DEFAULT_SELFDEPLOY_MIGRATE='false'
readonly PATTERN_SELFDEPLOY_HEALTH_CHECK_URL='^$|^https?://(127\.0\.0\.1|localhost|\[::1\])(:[0-9]{1,5})?(/[A-Za-z0-9._~/%?=&+-]*)?$'
readonly DEFAULT_SELFDEPLOY_HEALTH_CHECK_URL=''
readonly PATTERN_SELFDEPLOY_AUTO_SCALING_GROUP_NAME='^$|^[A-Za-z0-9._:/@+=-]{1,255}$'
readonly DEFAULT_SELFDEPLOY_AUTO_SCALING_GROUP_NAME=''
readonly PATTERN_SELFDEPLOY_LIFECYCLE_HOOK_NAME='^$|^[A-Za-z0-9_/-]{1,255}$'
readonly DEFAULT_SELFDEPLOY_LIFECYCLE_HOOK_NAME=''
readonly PATTERN_SELFDEPLOY_INSTANCE_ID='^$|^i-[0-9a-f]{8,17}$'
readonly DEFAULT_SELFDEPLOY_INSTANCE_ID=''
readonly PATTERN_SELFDEPLOY_LIFECYCLE_ACTION_TOKEN='^$|^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$'
readonly DEFAULT_SELFDEPLOY_LIFECYCLE_ACTION_TOKEN=''

# Build-time settings have their own patterns (not document parameters).
readonly PATTERN_BRANCH='^[A-Za-z0-9_][A-Za-z0-9._/-]{0,127}$'
readonly PATTERN_PARAMETER_NAME='^[A-Za-z0-9_./{}-]{1,1011}$'
readonly PATTERN_COUNT='^[0-9]{1,6}$'

# Exit codes (functions/shared/exit-codes.ts SELF_DEPLOY_EXIT_CODES; a test keeps them equal).
# Never 194: it makes the SSM agent reboot the instance and run the script again.
readonly EXIT_SUCCESS=0
readonly EXIT_UNEXPECTED=1
readonly EXIT_INVALID_INPUT=2
readonly EXIT_MISSING_PREREQUISITE=3
readonly EXIT_LOCK_TIMEOUT=4
readonly EXIT_LOCALHOST_TRUST=5
readonly EXIT_PARAMETER_STORE=6
readonly EXIT_REVISION=7
readonly EXIT_GEM_INSTALL=8
readonly EXIT_DEPLOY_COMMAND=9
readonly EXIT_VERIFICATION=10
readonly EXIT_BOOT_NOT_FINISHED=11
readonly EXIT_HEALTH_CHECK=12
readonly EXIT_SAME_WAIT_IN_PROGRESS=13
# Only the document's wrapper exits with it (this script produced no result); listed so the
# table is complete.
# shellcheck disable=SC2034
readonly EXIT_NO_RESULT=14

# Lines of the deploy log printed when the deploy command fails; SSM keeps the first
# 8,000 characters of stderr, so the tail has to fit (40 lines of at most 160 characters).
readonly ERROR_TAIL_LINES=40
readonly KEPT_DEPLOY_LOGS=20

usage() {
  cat <<'EOF'
Usage: self-deploy.sh [--help]

Deploys the application on this instance: waits (bounded) for boot to finish, takes a
lock, makes sure the application user can SSH to localhost (a key usable only from
127.0.0.1/::1, localhost's current host keys as the only trusted ones), fetches the deploy
checkout, resolves the target revision, runs the deploy command as the application user,
verifies current/REVISION and, when a URL is given, that the application answers. The
deploy is skipped only when this script's own record says the last run for the target
succeeded completely. Runs as root; when not root, the application user must be the caller.

Inputs (environment variables; the SelfDeploy document sets them from its parameters):
  SELFDEPLOY_ENVIRONMENT        environment; Capistrano stage local_<environment> (production)
  SELFDEPLOY_REVISION           commit SHA, tag or branch to deploy; empty = pinned, else branch head
  SELFDEPLOY_APP_USER           unprivileged user that owns and deploys the application (deploy)
  SELFDEPLOY_DEPLOY_PATH        deploy checkout: a git clone with the Capfile (/var/www/app/deploy)
  SELFDEPLOY_APP_PATH           Capistrano deploy_to (/var/www/app)
  SELFDEPLOY_MIGRATE            true: this instance runs migrations (the stage gives it the db role) (false)
  SELFDEPLOY_HEALTH_CHECK_URL   loopback http(s) URL that must answer 2xx after the deploy (none)
  SELFDEPLOY_AUTO_SCALING_GROUP_NAME, SELFDEPLOY_LIFECYCLE_HOOK_NAME,
  SELFDEPLOY_LIFECYCLE_ACTION_TOKEN, SELFDEPLOY_INSTANCE_ID
                                lifecycle context: logged, and identifies a run of the same
                                wait (exit 13) (empty)
Settings:
  SELFDEPLOY_DEPLOY_COMMAND     run by sh -c as the application user in the deploy checkout
                                (bundle exec cap "local_$SELFDEPLOY_ENVIRONMENT" deploy)
  SELFDEPLOY_GEM_INSTALL_COMMAND  run when Gemfile.lock changed since the last success (bundle install)
  SELFDEPLOY_BRANCHES           "environment=branch ..." (none: every environment deploys
                                the remote's default branch); environments not listed too
  SELFDEPLOY_PINNED_REVISION_PARAMETER  SSM parameter with a pinned revision, {environment}
                                replaced; missing parameter = not pinned (none)
  SELFDEPLOY_DEPLOY_KEY_PARAMETER  SSM SecureString with the git deploy key, {environment}
                                replaced; removed from disk when the run ends (none)
  SELFDEPLOY_GIT_KNOWN_HOSTS    known_hosts lines for the git host (the system's known_hosts)
  SELFDEPLOY_ALLOW_ROOT         1 allows SELFDEPLOY_APP_USER to be root (0)
  SELFDEPLOY_ALLOW_SUDO         1 allows an application user that sudo lists rules for (0)
  SELFDEPLOY_BOOT_WAIT_SECONDS  longest wait for boot to finish before anything else; it counts
                                inside the document's execution timeout; 0 = no wait (600)
  SELFDEPLOY_BOOT_CHECK_COMMAND run by sh -c as root, exits 0 once boot has finished (built in:
                                `cloud-init status --wait` where cloud-init exists, else
                                `systemctl is-system-running --wait`; neither = nothing to wait for)
  SELFDEPLOY_HEALTH_CHECK_ATTEMPTS  health check attempts (10)
  SELFDEPLOY_HEALTH_CHECK_INTERVAL  seconds between health check attempts (3)
  SELFDEPLOY_LOCK_TIMEOUT       seconds to wait for a concurrent run of another wait (600)
  SELFDEPLOY_RETRY_ATTEMPTS     attempts of each network step: git fetch, origin's default
                                branch, each Parameter Store read (4; 1-10)
  SELFDEPLOY_RETRY_DELAY        seconds before the second attempt, doubled before each next
                                one, each wait plus up to half of it at random (2: 2, 4, 8 s; 0-60)
  SELFDEPLOY_STATE_DIR          root's: lock, records, deploy logs, the user's ssh files (/var/lib/selfdeploy)
  SELFDEPLOY_SSH_PORT           localhost sshd port (22)
  SELFDEPLOY_HOST_KEY_DIR       directory of this host's ssh_host_*_key.pub (/etc/ssh)
  SELFDEPLOY_RESULT_FILE        where the result's JSON is written as the very last act (none)

The deploy command gets SELFDEPLOY_REVISION and REVISION (the full target SHA),
SELFDEPLOY_ENVIRONMENT, SELFDEPLOY_MIGRATE, SELFDEPLOY_APP_USER, SELFDEPLOY_APP_PATH,
SELFDEPLOY_DEPLOY_PATH, SELFDEPLOY_SSH_PORT, SELFDEPLOY_SSH_KEY, SELFDEPLOY_KNOWN_HOSTS,
SELFDEPLOY_GIT_SSH (a wrapper that checks host keys strictly) and SELFDEPLOY_GIT_SSH_COMMAND
(the same, for GIT_SSH_COMMAND; see scripts/instance/capistrano/local_production.rb).

The last line of output is always one result:
  SELFDEPLOY_RESULT {"status":"success"|"failure","exitCode":N,"revision":"<sha>",...}

Exit codes:
  0   deployed and verified, or already deployed and verified (fast path)
  1   unexpected error (the line is named)
  2   invalid input, or an application user that is root or can sudo; nothing was touched
  3   missing prerequisite (command, user, deploy checkout, SSM agent too old, unsafe path)
  4   another run held the lock for longer than SELFDEPLOY_LOCK_TIMEOUT
  5   localhost SSH trust could not be set up or used
  6   SSM Parameter Store read failed (pinned revision or deploy key)
  7   fetch failed, or the revision is not a commit
  8   gem install failed
  9   deploy command failed (its last lines are printed)
  10  current/REVISION is not the target after the deploy
  11  boot did not finish (the check failed or timed out)
  12  health check failed (the last error is printed)
  13  another run for the same lifecycle wait is in progress (no verdict: its result decides)
  14  the script produced no result (the document's wrapper reports this one)
EOF
}

info() { printf 'self-deploy: %s\n' "$*"; }
warn() { printf 'self-deploy: warning: %s\n' "$*" >&2; }
# fail CODE MESSAGE: one clear line on stderr, then exit with a documented code.
fail() {
  local code=$1
  shift
  RESULT_REASON="$*"
  printf 'self-deploy: error: %s\n' "$*" >&2
  exit "$code"
}

# Result of this run, printed as the last line by on_exit whatever happens.
RESULT_REVISION=''
RESULT_PREVIOUS=''
RESULT_SOURCE=''
RESULT_SKIPPED=false
RESULT_REASON=''
START_SECONDS=$SECONDS
# Set once validated; on_exit writes the result there last (the document's wrapper needs it).
RESULT_FILE=''
# Cleaned up by on_exit whatever the outcome.
DEPLOY_KEY_FILE=''
OWNS_LOCK=0

json_string() {
  local s=$1
  s=${s//\\/\\\\}
  s=${s//\"/\\\"}
  s=${s//$'\n'/\\n}
  s=${s//$'\t'/\\t}
  s=${s//[^[:print:]]/?}
  printf '"%s"' "$s"
}

on_error() {
  local status=$1 line=$2 command=$3
  # A failing command substitution runs this in its subshell too; report once, in the main shell.
  if [ "$BASHPID" = "$$" ]; then
    RESULT_REASON="line $line: '$command' exited with $status"
    printf 'self-deploy: error: line %s: %s exited with %s\n' "$line" "$command" "$status" >&2
  fi
  exit "$EXIT_UNEXPECTED"
}

on_exit() {
  local status=$?
  trap - EXIT
  if [ "$status" -eq 194 ]; then
    status=$EXIT_UNEXPECTED
  fi
  local result status_word=success
  [ "$status" -eq "$EXIT_SUCCESS" ] || status_word=failure
  result="{\"status\":\"$status_word\",\"exitCode\":$status"
  result+=",\"environment\":$(json_string "${ENVIRONMENT:-}")"
  result+=",\"revision\":$(json_string "$RESULT_REVISION")"
  result+=",\"previousRevision\":$(json_string "$RESULT_PREVIOUS")"
  result+=",\"source\":$(json_string "$RESULT_SOURCE")"
  result+=",\"skipped\":$RESULT_SKIPPED,\"seconds\":$((SECONDS - START_SECONDS))"
  [ -z "$RESULT_REASON" ] || result+=",\"reason\":$(json_string "$RESULT_REASON")"
  # The deploy key is needed only during the run (Capistrano's git:update reads it).
  [ -z "$DEPLOY_KEY_FILE" ] || rm -f "$DEPLOY_KEY_FILE" || true
  # The lock is still ours: the next holder must not take this run's identity for its own.
  [ "$OWNS_LOCK" -eq 0 ] || rm -f "$STATE_DIR/lock.owner" || true
  printf 'SELFDEPLOY_RESULT %s}\n' "$result"
  # Last: a run without this file counts as cut short. Renamed into place, never half-written.
  if [ -n "$RESULT_FILE" ]; then
    { printf '%s}\n' "$result" >"$RESULT_FILE.tmp" && mv -f "$RESULT_FILE.tmp" "$RESULT_FILE"; } 2>/dev/null || true
  fi
  exit "$status"
}

# Input problems found so far: all of them are reported at once, on one line.
PROBLEMS=()

# check NAME VALUE PATTERN: records a problem unless VALUE matches PATTERN (ERE, as in the
# document); fails when it does not.
check() {
  local name=$1 value=$2 pattern=$3
  [[ $value =~ $pattern ]] && return 0
  PROBLEMS+=("$name $(printf '%q' "$value") does not match $pattern")
  return 1
}

# report_problems: exit 2 naming every recorded problem, if there is any.
report_problems() {
  [ "${#PROBLEMS[@]}" -eq 0 ] && return 0
  local message=${PROBLEMS[0]} problem
  for problem in "${PROBLEMS[@]:1}"; do
    message+="; $problem"
  done
  fail "$EXIT_INVALID_INPUT" "$message"
}

# check_count NAME VALUE MIN: records a problem unless VALUE is a whole number >= MIN.
check_count() {
  check "$1" "$2" "$PATTERN_COUNT" || return 0
  [ "$2" -ge "$3" ] || PROBLEMS+=("$1 $2 is less than $3")
}

# check_range NAME VALUE MIN MAX: check_count, and records a problem when VALUE > MAX.
check_range() {
  check_count "$1" "$2" "$3"
  [[ ! $2 =~ $PATTERN_COUNT ]] || [ "$2" -le "$4" ] || PROBLEMS+=("$1 $2 is more than $4")
}

# The document's parameters, set by read_inputs from SELFDEPLOY_<NAME>.
ENVIRONMENT='' REVISION='' APP_USER='' DEPLOY_PATH='' APP_PATH='' MIGRATE='' HEALTH_CHECK_URL=''
AUTO_SCALING_GROUP_NAME='' LIFECYCLE_HOOK_NAME='' INSTANCE_ID='' LIFECYCLE_ACTION_TOKEN=''

# read_parameter NAME DEFAULT PATTERN: sets NAME from SELFDEPLOY_NAME (DEFAULT when unset),
# checked against PATTERN.
read_parameter() {
  local variable="SELFDEPLOY_$1"
  local value=${!variable-$2}
  check "$variable" "$value" "$3" || value=$2
  printf -v "$1" '%s' "$value"
}

read_inputs() {
  read_parameter ENVIRONMENT "$DEFAULT_SELFDEPLOY_ENVIRONMENT" "$PATTERN_SELFDEPLOY_ENVIRONMENT"
  read_parameter REVISION "$DEFAULT_SELFDEPLOY_REVISION" "$PATTERN_SELFDEPLOY_REVISION"
  read_parameter APP_USER "$DEFAULT_SELFDEPLOY_APP_USER" "$PATTERN_SELFDEPLOY_APP_USER"
  read_parameter DEPLOY_PATH "$DEFAULT_SELFDEPLOY_DEPLOY_PATH" "$PATTERN_SELFDEPLOY_DEPLOY_PATH"
  read_parameter APP_PATH "$DEFAULT_SELFDEPLOY_APP_PATH" "$PATTERN_SELFDEPLOY_APP_PATH"
  read_parameter MIGRATE "$DEFAULT_SELFDEPLOY_MIGRATE" "$PATTERN_SELFDEPLOY_MIGRATE"
  read_parameter HEALTH_CHECK_URL "$DEFAULT_SELFDEPLOY_HEALTH_CHECK_URL" "$PATTERN_SELFDEPLOY_HEALTH_CHECK_URL"
  read_parameter AUTO_SCALING_GROUP_NAME "$DEFAULT_SELFDEPLOY_AUTO_SCALING_GROUP_NAME" \
    "$PATTERN_SELFDEPLOY_AUTO_SCALING_GROUP_NAME"
  read_parameter LIFECYCLE_HOOK_NAME "$DEFAULT_SELFDEPLOY_LIFECYCLE_HOOK_NAME" "$PATTERN_SELFDEPLOY_LIFECYCLE_HOOK_NAME"
  read_parameter INSTANCE_ID "$DEFAULT_SELFDEPLOY_INSTANCE_ID" "$PATTERN_SELFDEPLOY_INSTANCE_ID"
  read_parameter LIFECYCLE_ACTION_TOKEN "$DEFAULT_SELFDEPLOY_LIFECYCLE_ACTION_TOKEN" \
    "$PATTERN_SELFDEPLOY_LIFECYCLE_ACTION_TOKEN"

  # The default is a literal: the deploy command's own sh expands it.
  DEPLOY_COMMAND=${SELFDEPLOY_DEPLOY_COMMAND:-'bundle exec cap "local_$SELFDEPLOY_ENVIRONMENT" deploy'}
  GEM_INSTALL_COMMAND=${SELFDEPLOY_GEM_INSTALL_COMMAND:-bundle install}
  BOOT_CHECK_COMMAND=${SELFDEPLOY_BOOT_CHECK_COMMAND:-}
  local command
  for command in DEPLOY_COMMAND GEM_INSTALL_COMMAND BOOT_CHECK_COMMAND; do
    [[ ${!command} =~ ^[[:print:]]*$ ]] || PROBLEMS+=("SELFDEPLOY_$command must be one line of printable characters")
  done

  # None by default: a repository's default branch (main, master, trunk) is whatever origin says.
  BRANCHES=${SELFDEPLOY_BRANCHES-}
  BRANCH=''
  local entry entries
  read -r -a entries <<<"$BRANCHES"
  for entry in "${entries[@]}"; do
    if [[ $entry != *=* ]]; then
      PROBLEMS+=("SELFDEPLOY_BRANCHES entry $(printf '%q' "$entry") is not environment=branch")
      continue
    fi
    check "SELFDEPLOY_BRANCHES environment" "${entry%%=*}" "$PATTERN_SELFDEPLOY_ENVIRONMENT" || true
    check "SELFDEPLOY_BRANCHES branch" "${entry#*=}" "$PATTERN_BRANCH" || true
    [ "${entry%%=*}" != "$ENVIRONMENT" ] || BRANCH=${entry#*=}
  done

  PINNED_PARAMETER=${SELFDEPLOY_PINNED_REVISION_PARAMETER:-}
  PINNED_PARAMETER=${PINNED_PARAMETER//\{environment\}/$ENVIRONMENT}
  [ -z "$PINNED_PARAMETER" ] || check SELFDEPLOY_PINNED_REVISION_PARAMETER "$PINNED_PARAMETER" "$PATTERN_PARAMETER_NAME" || true
  DEPLOY_KEY_PARAMETER=${SELFDEPLOY_DEPLOY_KEY_PARAMETER:-}
  DEPLOY_KEY_PARAMETER=${DEPLOY_KEY_PARAMETER//\{environment\}/$ENVIRONMENT}
  [ -z "$DEPLOY_KEY_PARAMETER" ] || check SELFDEPLOY_DEPLOY_KEY_PARAMETER "$DEPLOY_KEY_PARAMETER" "$PATTERN_PARAMETER_NAME" || true
  GIT_KNOWN_HOSTS=${SELFDEPLOY_GIT_KNOWN_HOSTS:-}

  ALLOW_ROOT=${SELFDEPLOY_ALLOW_ROOT:-0}
  check SELFDEPLOY_ALLOW_ROOT "$ALLOW_ROOT" '^[01]$' || true
  ALLOW_SUDO=${SELFDEPLOY_ALLOW_SUDO:-0}
  check SELFDEPLOY_ALLOW_SUDO "$ALLOW_SUDO" '^[01]$' || true
  BOOT_WAIT=${SELFDEPLOY_BOOT_WAIT_SECONDS:-600}
  check_count SELFDEPLOY_BOOT_WAIT_SECONDS "$BOOT_WAIT" 0
  HEALTH_CHECK_ATTEMPTS=${SELFDEPLOY_HEALTH_CHECK_ATTEMPTS:-10}
  check_count SELFDEPLOY_HEALTH_CHECK_ATTEMPTS "$HEALTH_CHECK_ATTEMPTS" 1
  HEALTH_CHECK_INTERVAL=${SELFDEPLOY_HEALTH_CHECK_INTERVAL:-3}
  check_count SELFDEPLOY_HEALTH_CHECK_INTERVAL "$HEALTH_CHECK_INTERVAL" 0
  LOCK_TIMEOUT=${SELFDEPLOY_LOCK_TIMEOUT:-600}
  check_count SELFDEPLOY_LOCK_TIMEOUT "$LOCK_TIMEOUT" 0
  RETRY_ATTEMPTS=${SELFDEPLOY_RETRY_ATTEMPTS:-4}
  check_range SELFDEPLOY_RETRY_ATTEMPTS "$RETRY_ATTEMPTS" 1 10
  RETRY_DELAY=${SELFDEPLOY_RETRY_DELAY:-2}
  check_range SELFDEPLOY_RETRY_DELAY "$RETRY_DELAY" 0 60
  STATE_DIR=${SELFDEPLOY_STATE_DIR:-/var/lib/selfdeploy}
  check SELFDEPLOY_STATE_DIR "$STATE_DIR" "$PATTERN_SELFDEPLOY_APP_PATH" || true
  SSH_PORT=${SELFDEPLOY_SSH_PORT:-22}
  if check SELFDEPLOY_SSH_PORT "$SSH_PORT" "$PATTERN_COUNT" && { [ "$SSH_PORT" -lt 1 ] || [ "$SSH_PORT" -gt 65535 ]; }; then
    PROBLEMS+=("SELFDEPLOY_SSH_PORT $SSH_PORT is not a port")
  fi
  HOST_KEY_DIR=${SELFDEPLOY_HOST_KEY_DIR:-/etc/ssh}
  check SELFDEPLOY_HOST_KEY_DIR "$HOST_KEY_DIR" "$PATTERN_SELFDEPLOY_APP_PATH" || true

  if [ "$APP_USER" = root ] && [ "$ALLOW_ROOT" != 1 ]; then
    PROBLEMS+=("SELFDEPLOY_APP_USER root is not allowed: deploy as an unprivileged user (or set SELFDEPLOY_ALLOW_ROOT=1)")
  fi
  report_problems
}

# read_result_file: the wrapper's result file, first of all, so that even invalid input
# leaves a result there.
read_result_file() {
  local file=${SELFDEPLOY_RESULT_FILE:-}
  if check SELFDEPLOY_RESULT_FILE "$file" "^\$|$PATTERN_SELFDEPLOY_APP_PATH"; then
    RESULT_FILE=$file
  fi
}

# wait_for_boot: the SSM agent comes online before cloud-init has finished (user data may
# still be installing git or Ruby, or cloning the deploy checkout), so wait, bounded.
wait_for_boot() {
  if [ "$BOOT_WAIT" -eq 0 ]; then
    info "boot: not waiting (SELFDEPLOY_BOOT_WAIT_SECONDS=0)"
    return 0
  fi
  local boot_check=() what
  if [ -n "$BOOT_CHECK_COMMAND" ]; then
    boot_check=(sh -c "$BOOT_CHECK_COMMAND")
    what="boot check ($BOOT_CHECK_COMMAND)"
  elif command -v cloud-init >/dev/null 2>&1; then
    boot_check=(cloud-init status --wait)
    what='cloud-init status --wait'
  elif command -v systemctl >/dev/null 2>&1; then
    boot_check=(systemctl is-system-running --wait)
    what='systemctl is-system-running --wait'
  else
    info "boot: neither cloud-init nor systemd here; nothing to wait for"
    return 0
  fi
  command -v timeout >/dev/null 2>&1 || fail "$EXIT_MISSING_PREREQUISITE" "timeout (coreutils) is not installed"
  info "boot: waiting up to ${BOOT_WAIT}s for $what"
  local output status=0 last
  # timeout signals the check's whole process group, so nothing of it outlives the bound.
  output=$(timeout --kill-after=5 "$BOOT_WAIT" "${boot_check[@]}" </dev/null 2>&1) || status=$?
  if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
    fail "$EXIT_BOOT_NOT_FINISHED" "boot did not finish within ${BOOT_WAIT}s ($what)"
  fi
  last=$(printf '%s\n' "$output" | sed '/^[[:space:].]*$/d' | tail -n 5 | tr '\n' ' ' | cut -c1-300)
  last=${last% }
  case "${boot_check[0]}" in
  sh)
    [ "$status" -eq 0 ] || fail "$EXIT_BOOT_NOT_FINISHED" "$what exited with $status: ${last:-no output}"
    ;;
  cloud-init)
    # 2: done with recoverable errors (cloud-init 23.4+); the instance did boot.
    [ "$status" -ne 2 ] || warn "cloud-init finished with recoverable errors: $last"
    [ "$status" -eq 0 ] || [ "$status" -eq 2 ] || fail "$EXIT_BOOT_NOT_FINISHED" "$what exited with $status: ${last:-no output}"
    ;;
  systemctl)
    case "${output##*$'\n'}" in
    running | degraded) ;;
    offline)
      # No systemd running (a container, CI): no boot to wait for.
      info "boot: systemd is offline here; nothing to wait for"
      return 0
      ;;
    *) fail "$EXIT_BOOT_NOT_FINISHED" "the system is ${last:-in an unknown state} ($what exited with $status)" ;;
    esac
    ;;
  esac
  info "boot: finished"
}

check_prerequisites() {
  local command
  local commands=(git ssh ssh-keygen flock sha256sum)
  [ -z "$HEALTH_CHECK_URL" ] || commands+=(curl)
  for command in "${commands[@]}"; do
    command -v "$command" >/dev/null 2>&1 || fail "$EXIT_MISSING_PREREQUISITE" "$command is not installed"
  done
  local passwd
  passwd=$(getent passwd "$APP_USER") || fail "$EXIT_MISSING_PREREQUISITE" "application user $APP_USER does not exist"
  APP_UID=$(cut -d: -f3 <<<"$passwd")
  APP_HOME=$(cut -d: -f6 <<<"$passwd")
  if [ "$APP_UID" -eq 0 ] && [ "$ALLOW_ROOT" != 1 ]; then
    fail "$EXIT_INVALID_INPUT" "application user $APP_USER has uid 0, which is not allowed (SELFDEPLOY_ALLOW_ROOT=1 allows it)"
  fi
  if [ "$(id -u)" -eq 0 ]; then
    IS_ROOT=1
    command -v runuser >/dev/null 2>&1 || fail "$EXIT_MISSING_PREREQUISITE" "runuser (util-linux) is not installed"
  else
    IS_ROOT=0
    [ "$(id -u)" -eq "$APP_UID" ] || fail "$EXIT_MISSING_PREREQUISITE" "run as root, or as the application user $APP_USER"
  fi
  refuse_sudo_user
  [ -d "$APP_HOME" ] || fail "$EXIT_MISSING_PREREQUISITE" "home directory $APP_HOME of $APP_USER does not exist"
  [ -d "$DEPLOY_PATH/.git" ] || fail "$EXIT_MISSING_PREREQUISITE" "deploy checkout $DEPLOY_PATH is not a git clone: clone the application there when building the machine image"
  [ "$(stat -c %u "$DEPLOY_PATH")" -eq "$APP_UID" ] || fail "$EXIT_MISSING_PREREQUISITE" "deploy checkout $DEPLOY_PATH is not owned by $APP_USER (chown -R it when building the image)"
}

# refuse_sudo_user: an application user with sudo rights makes the repository's Gemfile and
# Capfile run as root in effect (ec2-user on Amazon Linux has them), as root itself would.
refuse_sudo_user() {
  [ "$IS_ROOT" -eq 1 ] && [ "$ALLOW_SUDO" != 1 ] && [ "$APP_UID" -ne 0 ] || return 0
  command -v sudo >/dev/null 2>&1 || return 0
  local rules
  rules=$(sudo -n -l -U "$APP_USER" 2>/dev/null || true)
  if grep -q 'may run the following commands' <<<"$rules"; then
    fail "$EXIT_INVALID_INPUT" "application user $APP_USER has sudo rights (sudo -l -U $APP_USER lists rules for it): deploy as a user without them (or set SELFDEPLOY_ALLOW_SUDO=1)"
  fi
}

# as_app_user COMMAND...: runs COMMAND as the application user with a clean environment
# (VAR=value words first are added to it), from /, so nothing of root's leaks into it. The
# lock's descriptor is closed for it: a process it leaves behind (git's detached gc --auto)
# must not hold the lock after this run has ended.
as_app_user() {
  local environment=(HOME="$APP_HOME" USER="$APP_USER" LOGNAME="$APP_USER" SHELL=/bin/sh PATH="$PATH" LANG=C.UTF-8)
  if [ "$IS_ROOT" -eq 1 ]; then
    (cd / && close_lock && runuser -u "$APP_USER" -- env -i "${environment[@]}" "$@")
  else
    (cd / && close_lock && env -i "${environment[@]}" "$@")
  fi
}

# close_lock: closes the lock's descriptor in the (sub)shell that calls it.
close_lock() {
  [ -z "${LOCK_FD:-}" ] || exec {LOCK_FD}>&-
}

# in_dir_as_app_user DIR [VAR=value...] COMMAND...: as_app_user, in DIR.
in_dir_as_app_user() {
  local dir=$1 assignments=()
  shift
  while [[ ${1:-} =~ ^[A-Z_][A-Z0-9_]*= ]]; do
    assignments+=("$1")
    shift
  done
  as_app_user "${assignments[@]}" sh -c 'cd -- "$1" && shift && exec "$@"' sh "$dir" "$@"
}

# read_as_app_user FILE: FILE's content, or nothing when it does not exist.
read_as_app_user() {
  as_app_user sh -c 'cat -- "$1" 2>/dev/null || true' sh "$1"
}

# write_as_app_user FILE MODE: replaces FILE with stdin, written by the application user
# so that root never follows a link the user planted in their own home. The temporary name
# is per writer: runs with different state directories may share the user.
write_as_app_user() {
  as_app_user sh -c 'tmp="$1.selfdeploy-$$" && umask 077 && cat >"$tmp" && chmod "$2" "$tmp" && mv -f "$tmp" "$1"' sh "$1" "$2"
}

# prepare_state_dir: the state directory is root's (when root), so the application user's
# ssh directory inside it cannot be swapped for anything else. Each state directory (each
# simulated instance, when several share a user) has its own key, known_hosts and git ssh.
prepare_state_dir() {
  mkdir -p "$STATE_DIR"
  if [ "$IS_ROOT" -eq 1 ]; then
    if [ -L "$STATE_DIR" ] || [ "$(stat -c %u "$STATE_DIR")" -ne 0 ]; then
      fail "$EXIT_MISSING_PREREQUISITE" "state directory $STATE_DIR must be a directory owned by root, not a link"
    fi
    # The application user reaches its ssh directory through it.
    chmod 755 "$STATE_DIR"
  fi
  SSH_DIR="$STATE_DIR/ssh"
  [ ! -L "$SSH_DIR" ] || fail "$EXIT_MISSING_PREREQUISITE" "$SSH_DIR is a link"
  # Before the lock: a run for the same wait may make it at the same moment (-p). Empty
  # until the chmod below.
  mkdir -p "$SSH_DIR"
  [ "$IS_ROOT" -eq 0 ] || chown -h "$APP_USER:" "$SSH_DIR"
  chmod 700 "$SSH_DIR"
  SSH_KEY="$SSH_DIR/localhost_key"
  KNOWN_HOSTS="$SSH_DIR/known_hosts"
  GIT_SSH_WRAPPER="$SSH_DIR/git_ssh"
  # This script's word that the last run for a target succeeded completely: the fast path
  # needs it, since Capistrano writes REVISION before its post-publish hooks, which may fail.
  SUCCESS_RECORD="$STATE_DIR/last-success"
  GEMS_RECORD="$STATE_DIR/gems"
  STATE_ID=$(printf '%s' "$STATE_DIR" | sha256sum | cut -c1-12)
}

take_lock() {
  exec {LOCK_FD}>>"$STATE_DIR/lock"
  if ! flock --nonblock "$LOCK_FD"; then
    if same_wait_in_progress; then
      fail "$EXIT_SAME_WAIT_IN_PROGRESS" "another self-deploy for this lifecycle wait (group $AUTO_SCALING_GROUP_NAME, hook $LIFECYCLE_HOOK_NAME) is in progress; its result decides"
    fi
    info "another self-deploy is running; waiting up to ${LOCK_TIMEOUT}s for it"
    flock --wait "$LOCK_TIMEOUT" "$LOCK_FD" || fail "$EXIT_LOCK_TIMEOUT" "another self-deploy still held $STATE_DIR/lock after ${LOCK_TIMEOUT}s"
  fi
  OWNS_LOCK=1
  # Who holds the lock, for a run that finds it taken: pid, group, hook, token.
  printf '%s\n' "$$" "$AUTO_SCALING_GROUP_NAME" "$LIFECYCLE_HOOK_NAME" "$LIFECYCLE_ACTION_TOKEN" >"$STATE_DIR/lock.owner.tmp"
  mv -f "$STATE_DIR/lock.owner.tmp" "$STATE_DIR/lock.owner"
}

# same_wait_in_progress: succeeds when the lock's holder is a lifecycle run for this run's
# group and hook, unless both carry a token and the tokens differ (a new wait of the same
# instance). Then this run is a duplicate and must not end the wait with a verdict of its own.
same_wait_in_progress() {
  [ -n "$AUTO_SCALING_GROUP_NAME" ] && [ -n "$LIFECYCLE_HOOK_NAME" ] || return 1
  local pid='' group='' hook='' token=''
  { IFS= read -r pid && IFS= read -r group && IFS= read -r hook && IFS= read -r token; } <"$STATE_DIR/lock.owner" 2>/dev/null || true
  # A record left by a run that was killed names no live process.
  [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
  [ "$group" = "$AUTO_SCALING_GROUP_NAME" ] && [ "$hook" = "$LIFECYCLE_HOOK_NAME" ] || return 1
  [ -z "$token" ] || [ -z "$LIFECYCLE_ACTION_TOKEN" ] || [ "$token" = "$LIFECYCLE_ACTION_TOKEN" ]
}

trust_localhost() {
  # ECDSA in PEM form: net-ssh reads it without the optional ed25519/bcrypt gems.
  if ! as_app_user test -f "$SSH_KEY" || ! as_app_user test -f "$SSH_KEY.pub"; then
    info "generating the localhost key for $APP_USER"
    as_app_user rm -f "$SSH_KEY" "$SSH_KEY.pub"
    as_app_user ssh-keygen -q -t ecdsa -b 256 -m PEM -N '' -C "selfdeploy-localhost-$STATE_ID" -f "$SSH_KEY" ||
      fail "$EXIT_LOCALHOST_TRUST" "ssh-keygen failed for $SSH_KEY"
  fi
  local key_type key_body
  read -r key_type key_body _ < <(as_app_user cat "$SSH_KEY.pub") || true
  [ -n "$key_body" ] || fail "$EXIT_LOCALHOST_TRUST" "$SSH_KEY.pub is empty"
  # The comment names this state directory: runs with other state directories (other
  # simulated instances sharing the user) keep their own entries. An untagged entry is an
  # earlier version's and goes.
  local tag="selfdeploy-localhost-$STATE_ID"
  local entry="restrict,from=\"127.0.0.1,::1\" $key_type $key_body $tag"
  as_app_user sh -c "$AUTHORIZE_KEY" sh "$entry" "$tag" || fail "$EXIT_LOCALHOST_TRUST" "cannot update $APP_HOME/.ssh/authorized_keys"

  # This instance's host keys are new on every launch; trust exactly the current ones.
  local hosts='127.0.0.1,localhost,::1' pub host_keys=''
  [ "$SSH_PORT" -eq 22 ] || hosts="[127.0.0.1]:$SSH_PORT,[localhost]:$SSH_PORT,[::1]:$SSH_PORT"
  for pub in "$HOST_KEY_DIR"/ssh_host_*_key.pub; do
    [ -f "$pub" ] || continue
    read -r key_type key_body _ <"$pub"
    host_keys+="$hosts $key_type $key_body"$'\n'
  done
  [ -n "$host_keys" ] || fail "$EXIT_LOCALHOST_TRUST" "no host keys in $HOST_KEY_DIR (ssh_host_*_key.pub)"
  if [ "$(read_as_app_user "$KNOWN_HOSTS")"$'\n' != "$host_keys" ]; then
    info "trusting this instance's current host keys for localhost"
    printf '%s' "$host_keys" | write_as_app_user "$KNOWN_HOSTS" 644 ||
      fail "$EXIT_LOCALHOST_TRUST" "cannot write $KNOWN_HOSTS"
  fi
}

# Run by the application user (sh -c AUTHORIZE_KEY sh ENTRY TAG): replaces the entry tagged
# TAG in ~/.ssh/authorized_keys with ENTRY, under a lock of the user's own, since runs with
# other state directories may rewrite the same file at the same time.
readonly AUTHORIZE_KEY='set -e
umask 077
mkdir -p "$HOME/.ssh"
chmod 700 "$HOME/.ssh"
exec 9>>"$HOME/.ssh/selfdeploy-authorized_keys.lock"
flock --wait 60 9
keys="$HOME/.ssh/authorized_keys"
current=$(cat "$keys" 2>/dev/null || true)
wanted=$({ printf "%s\n" "$current" | grep -v -e " $2\$" -e " selfdeploy-localhost\$" || true; printf "%s\n" "$1"; } | sed "/^\$/d")
[ "$current" != "$wanted" ] || exit 0
echo "self-deploy: authorizing the localhost key for $USER (from 127.0.0.1 and ::1 only)"
printf "%s\n" "$wanted" >"$keys.selfdeploy-$$"
chmod 600 "$keys.selfdeploy-$$"
mv -f "$keys.selfdeploy-$$" "$keys"'

# retry WHAT ATTEMPT...: runs ATTEMPT up to RETRY_ATTEMPTS times while it returns 1 (a
# failure that may pass: a dropped connection, throttling, credentials not there yet on a
# young instance); any other status ends it at once. Waits RETRY_DELAY seconds before the
# second attempt and twice as long before each next one, each wait plus up to half of it at
# random so that instances launched together do not retry in step.
retry() {
  local what=$1 attempt=1 delay=$RETRY_DELAY status pause
  shift
  while :; do
    status=0
    "$@" || status=$?
    if [ "$status" -ne 1 ] || [ "$attempt" -ge "$RETRY_ATTEMPTS" ]; then
      return "$status"
    fi
    pause=$((delay * 1000 + (RANDOM * 32768 + RANDOM) % (delay * 500 + 1)))
    pause=$((pause / 1000)).$(printf '%03d' $((pause % 1000)))
    warn "$what failed (attempt $attempt of $RETRY_ATTEMPTS); trying again in ${pause}s"
    sleep "$pause"
    attempt=$((attempt + 1))
    delay=$((delay * 2))
  done
}

# need_aws PARAMETER: exit 3 unless the AWS CLI is there to read PARAMETER.
need_aws() {
  command -v aws >/dev/null 2>&1 || fail "$EXIT_MISSING_PREREQUISITE" "the AWS CLI (aws) is needed to read $1"
}

# parameter_value NAME [--with-decryption]: the parameter's value on stdout, read with
# retries; 3 when the parameter does not exist, another non-zero status when it cannot be
# read (the errors are on stderr).
parameter_value() {
  retry "reading $1 from Parameter Store" parameter_attempt "$@"
}

# parameter_attempt NAME [--with-decryption]: one read of the parameter. 3: it does not
# exist; 2: refused (access denied, invalid request or key), which no retry changes; 1: any
# other failure. The AWS CLI makes a single request: retry() is the one bound on attempts,
# and it also covers what the CLI does not retry (no credentials yet, DNS not ready).
parameter_attempt() {
  local region=${AWS_REGION:-${AWS_DEFAULT_REGION:-${AWS_SSM_REGION_NAME:-}}} errors status=0 value
  local args=(ssm get-parameter --name "$1" --query Parameter.Value --output text)
  shift
  [ -z "$region" ] || args+=(--region "$region")
  errors=$(mktemp) || return 1
  value=$(AWS_RETRY_MODE=standard AWS_MAX_ATTEMPTS=1 aws "${args[@]}" "$@" 2>"$errors") || status=$?
  if [ "$status" -ne 0 ]; then
    status=1
    if grep -q ParameterNotFound "$errors"; then
      status=3
    else
      sed 's/^/self-deploy:   /' "$errors" >&2
      ! grep -q -E 'AccessDenied|ValidationException|InvalidKeyId|ParameterVersionNotFound' "$errors" || status=2
    fi
    rm -f "$errors"
    return "$status"
  fi
  rm -f "$errors"
  printf '%s\n' "$value"
}

# Git's SSH (for the deploy checkout and for Capistrano's mirror) checks host keys strictly,
# with the deploy key when one is configured.
prepare_git_ssh() {
  local options=(-o BatchMode=yes -o StrictHostKeyChecking=yes)
  # Earlier versions kept the deploy key in the user's home, where an image baked after a
  # deploy would carry it.
  as_app_user rm -f "$APP_HOME/.ssh/selfdeploy_deploy_key"
  if [ -n "$DEPLOY_KEY_PARAMETER" ]; then
    need_aws "$DEPLOY_KEY_PARAMETER"
    local key status=0
    key=$(parameter_value "$DEPLOY_KEY_PARAMETER" --with-decryption) || status=$?
    [ "$status" -ne 3 ] || fail "$EXIT_PARAMETER_STORE" "deploy key parameter $DEPLOY_KEY_PARAMETER does not exist"
    [ "$status" -eq 0 ] || fail "$EXIT_PARAMETER_STORE" "cannot read deploy key parameter $DEPLOY_KEY_PARAMETER"
    DEPLOY_KEY_FILE="$SSH_DIR/deploy_key"
    printf '%s\n' "$key" | write_as_app_user "$DEPLOY_KEY_FILE" 600 ||
      fail "$EXIT_PARAMETER_STORE" "cannot write the deploy key for $APP_USER"
    unset key
    options+=(-o IdentitiesOnly=yes -i "$DEPLOY_KEY_FILE")
  fi
  if [ -n "$GIT_KNOWN_HOSTS" ]; then
    printf '%s\n' "$GIT_KNOWN_HOSTS" | write_as_app_user "$SSH_DIR/git_known_hosts" 644 ||
      fail "$EXIT_LOCALHOST_TRUST" "cannot write the git host's known_hosts"
    options+=(-o UserKnownHostsFile="$SSH_DIR/git_known_hosts" -o GlobalKnownHostsFile=/dev/null)
  fi
  printf '#!/bin/sh\nexec ssh %s "$@"\n' "$(printf '%q ' "${options[@]}")" |
    write_as_app_user "$GIT_SSH_WRAPPER" 700 || fail "$EXIT_LOCALHOST_TRUST" "cannot write $GIT_SSH_WRAPPER"
}

# git_as_app_user ARGS...: git in the deploy checkout. GIT_SSH_COMMAND, not GIT_SSH: the
# user's core.sshCommand overrides GIT_SSH (and could switch host key checks off), never it.
git_as_app_user() {
  as_app_user GIT_SSH_COMMAND="$GIT_SSH_WRAPPER" GIT_SSH_VARIANT=ssh GIT_TERMINAL_PROMPT=0 git -C "$DEPLOY_PATH" "$@"
}

# remote_git_attempt ARGS...: one git command that talks to origin, its errors on stderr.
# 2 when git's SSH refused the host key or the key, which no retry changes; 1 on any other
# failure.
remote_git_attempt() {
  local errors
  errors=$(git_as_app_user "$@" 2>&1 >/dev/null) && return 0
  printf '%s\n' "$errors" | sed 's/^/self-deploy:   /' >&2
  if grep -q -e 'Host key verification failed' -e 'Permission denied (publickey' <<<"$errors"; then
    return 2
  fi
  return 1
}

# fetch_origin: brings origin's branches and tags into the deploy checkout, retried.
fetch_origin() {
  info "fetching origin into $DEPLOY_PATH"
  retry "git fetch in $DEPLOY_PATH" remote_git_attempt fetch --quiet --prune --tags --force origin ||
    fail "$EXIT_REVISION" "git fetch in $DEPLOY_PATH failed"
}

# origin_default_branch: the branch origin's HEAD names (asking origin), on stdout.
origin_default_branch() {
  retry "asking origin for its default branch" remote_git_attempt remote set-head origin --auto || return 1
  local branch
  branch=$(git_as_app_user symbolic-ref --short refs/remotes/origin/HEAD) || return 1
  printf '%s\n' "${branch#origin/}"
}

# commit_of REF: the full SHA REF names, or nothing.
commit_of() {
  git_as_app_user rev-parse --verify --quiet --end-of-options "$1^{commit}" || true
}

# named_commit NAME: the full SHA NAME names, or nothing. A name means origin's branch
# before a stale local one, then a tag, then a SHA (prefix).
named_commit() {
  local candidate sha
  for candidate in "refs/remotes/origin/$1" "refs/tags/$1" "$1"; do
    sha=$(commit_of "$candidate")
    [ -z "$sha" ] || break
  done
  printf '%s' "$sha"
}

# resolve_target: sets TARGET, the full SHA to deploy, and RESULT_SOURCE, where it comes
# from: the explicit revision, else the pinned one, else the branch head. Reads only what
# fetch_origin brought: a revision origin does not have fails at once.
resolve_target() {
  local wanted=$REVISION status=0
  if [ -n "$wanted" ]; then
    RESULT_SOURCE=explicit
  elif [ -n "$PINNED_PARAMETER" ]; then
    need_aws "$PINNED_PARAMETER"
    wanted=$(parameter_value "$PINNED_PARAMETER") || status=$?
    case $status in
    0)
      [ -n "$wanted" ] || fail "$EXIT_PARAMETER_STORE" "pinned revision parameter $PINNED_PARAMETER is empty"
      [[ $wanted =~ $PATTERN_SELFDEPLOY_REVISION ]] ||
        fail "$EXIT_REVISION" "pinned revision $(printf '%q' "$wanted") in $PINNED_PARAMETER does not match $PATTERN_SELFDEPLOY_REVISION"
      RESULT_SOURCE="pinned:$PINNED_PARAMETER"
      info "revision pinned by $PINNED_PARAMETER: $wanted"
      ;;
    3) info "no pinned revision ($PINNED_PARAMETER does not exist)" ;;
    *) fail "$EXIT_PARAMETER_STORE" "cannot read pinned revision parameter $PINNED_PARAMETER" ;;
    esac
  fi
  if [ -n "$wanted" ]; then
    TARGET=$(named_commit "$wanted")
    [ -n "$TARGET" ] || fail "$EXIT_REVISION" "revision $wanted is not a commit, branch or tag of origin"
    return 0
  fi
  local branch=$BRANCH
  if [ -z "$branch" ]; then
    branch=$(origin_default_branch) || fail "$EXIT_REVISION" "cannot find origin's default branch"
  fi
  RESULT_SOURCE="branch:$branch"
  TARGET=$(commit_of "refs/remotes/origin/$branch")
  [ -n "$TARGET" ] || fail "$EXIT_REVISION" "branch $branch does not exist on origin"
}

current_revision() {
  read_as_app_user "$APP_PATH/current/REVISION"
}

# gems_marker: what the gems record holds after a success with this checkout's
# Gemfile.lock, on stdout; nothing when the checkout has no Gemfile.
gems_marker() {
  as_app_user test -f "$DEPLOY_PATH/Gemfile" || return 0
  local lock_digest
  lock_digest=$(read_as_app_user "$DEPLOY_PATH/Gemfile.lock" | sha256sum) || return
  printf '%s\n' "${lock_digest%% *} $DEPLOY_PATH"
}

# install_gems_if_changed MARKER: runs the gem install command unless MARKER (gems_marker)
# is what the last successful run recorded.
install_gems_if_changed() {
  [ -n "$1" ] || return 0
  if [ "$(cat "$GEMS_RECORD" 2>/dev/null || true)" = "$1" ]; then
    info "Gemfile.lock unchanged since the last successful run; not installing gems"
    return 0
  fi
  info "installing gems: $GEM_INSTALL_COMMAND"
  if ! in_dir_as_app_user "$DEPLOY_PATH" sh -c "$GEM_INSTALL_COMMAND" </dev/null >>"$LOG" 2>&1; then
    print_log_tail
    fail "$EXIT_GEM_INSTALL" "gem install ($GEM_INSTALL_COMMAND) failed in $DEPLOY_PATH"
  fi
}

check_ssh_to_localhost() {
  local errors
  if ! errors=$(as_app_user ssh -F /dev/null -p "$SSH_PORT" -i "$SSH_KEY" -o IdentitiesOnly=yes -o BatchMode=yes \
    -o StrictHostKeyChecking=yes -o UserKnownHostsFile="$KNOWN_HOSTS" -o GlobalKnownHostsFile=/dev/null \
    -o ConnectTimeout=10 "$APP_USER@127.0.0.1" true 2>&1); then
    printf '%s\n' "$errors" | sed 's/^/self-deploy:   /' >&2
    fail "$EXIT_LOCALHOST_TRUST" "$APP_USER cannot SSH to 127.0.0.1:$SSH_PORT with the localhost key (is sshd running?)"
  fi
}

# Gem install and deploy output goes to a log, not to stdout: SSM keeps only the first
# 24,000 characters of stdout, and the result line must be the last one.
start_log() {
  mkdir -p "$STATE_DIR/logs"
  chmod 700 "$STATE_DIR/logs"
  LOG="$STATE_DIR/logs/deploy-$(date -u +%Y%m%dT%H%M%SZ)-$$.log"
  : >"$LOG"
  # The newest logs stay for whoever investigates on the instance.
  find "$STATE_DIR/logs" -name 'deploy-*.log' -printf '%T@ %p\n' | sort -rn | tail -n +$((KEPT_DEPLOY_LOGS + 1)) |
    cut -d' ' -f2- | xargs -r rm -f
}

# Blank lines and Ruby backtrace lines ("from /path:line") carry no news; the rest is cut
# short so the tail fits in what SSM keeps of stderr.
print_log_tail() {
  printf 'self-deploy: last lines of %s:\n' "$LOG" >&2
  grep -v -e '^[[:space:]]*$' -e '^[[:space:]]*from /' "$LOG" | tail -n "$ERROR_TAIL_LINES" | cut -c1-160 |
    sed 's/^/  | /' >&2 || true
}

run_deploy() {
  local status=0
  info "deploying $TARGET: $DEPLOY_COMMAND (output in $LOG)"
  in_dir_as_app_user "$DEPLOY_PATH" \
    SELFDEPLOY_REVISION="$TARGET" REVISION="$TARGET" SELFDEPLOY_ENVIRONMENT="$ENVIRONMENT" SELFDEPLOY_MIGRATE="$MIGRATE" \
    SELFDEPLOY_APP_USER="$APP_USER" SELFDEPLOY_APP_PATH="$APP_PATH" SELFDEPLOY_DEPLOY_PATH="$DEPLOY_PATH" \
    SELFDEPLOY_SSH_PORT="$SSH_PORT" SELFDEPLOY_SSH_KEY="$SSH_KEY" SELFDEPLOY_KNOWN_HOSTS="$KNOWN_HOSTS" \
    SELFDEPLOY_GIT_SSH="$GIT_SSH_WRAPPER" SELFDEPLOY_GIT_SSH_COMMAND="$GIT_SSH_WRAPPER" \
    sh -c "$DEPLOY_COMMAND" </dev/null >>"$LOG" 2>&1 || status=$?
  if [ "$status" -ne 0 ]; then
    print_log_tail
    # Capistrano switches current before its post-publish hooks run: say where it is now.
    local now
    now=$(current_revision)
    if [ "$now" = "$RESULT_PREVIOUS" ]; then
      fail "$EXIT_DEPLOY_COMMAND" "deploy command exited with $status; current is still ${now:-nothing}"
    fi
    fail "$EXIT_DEPLOY_COMMAND" "deploy command exited with $status; current is now ${now:-nothing} (was ${RESULT_PREVIOUS:-nothing})"
  fi
}

# ensure_app_path: creates deploy_to for the application user. Root never creates or chowns
# it through a link (which could point anywhere), nor below a directory someone else owns
# (who could swap it for a link meanwhile): then the user creates it, with its own rights.
ensure_app_path() {
  [ ! -d "$APP_PATH" ] || return 0
  local path='' component components root_owned=1
  IFS=/ read -r -a components <<<"${APP_PATH#/}"
  for component in "${components[@]}"; do
    path+="/$component"
    if [ -L "$path" ]; then
      fail "$EXIT_MISSING_PREREQUISITE" "cannot create $APP_PATH safely: $path is a symbolic link (create $APP_PATH for $APP_USER when building the image)"
    fi
    [ -e "$path" ] || break
    [ "$(stat -c %u "$path")" -eq 0 ] || root_owned=0
  done
  if [ "$IS_ROOT" -eq 1 ] && [ "$root_owned" -eq 1 ]; then
    mkdir -p "$APP_PATH"
    chown -h "$APP_USER:" "$APP_PATH"
  else
    as_app_user mkdir -p "$APP_PATH" || fail "$EXIT_MISSING_PREREQUISITE" "$APP_USER cannot create $APP_PATH"
  fi
}

# health_check: current/REVISION only proves that the link moved; the application must answer.
health_check() {
  [ -n "$HEALTH_CHECK_URL" ] || return 0
  local attempt=1 errors=''
  info "health check: $HEALTH_CHECK_URL (up to $HEALTH_CHECK_ATTEMPTS attempts, ${HEALTH_CHECK_INTERVAL}s apart)"
  until errors=$(as_app_user curl -fsS --max-time 10 --proto =http,https -o /dev/null "$HEALTH_CHECK_URL" 2>&1); do
    if [ "$attempt" -ge "$HEALTH_CHECK_ATTEMPTS" ]; then
      rm -f "$SUCCESS_RECORD"
      fail "$EXIT_HEALTH_CHECK" "health check of $HEALTH_CHECK_URL failed $attempt times; last: $(printf '%s' "$errors" | tr '\n' ' ' | cut -c1-300)"
    fi
    attempt=$((attempt + 1))
    sleep "$HEALTH_CHECK_INTERVAL"
  done
  info "health check passed (attempt $attempt)"
}

# write_root_file FILE: replaces FILE (in root's state directory) with stdin, whole or not at all.
write_root_file() {
  cat >"$1.tmp"
  mv -f "$1.tmp" "$1"
}

# handle_arguments ARGS...: --help prints the usage and exits 0; any other argument is
# invalid input. No argument is the normal run.
handle_arguments() {
  case "${1:-}" in
  -h | --help)
    usage
    exit 0
    ;;
  '') ;;
  *)
    usage >&2
    exit "$EXIT_INVALID_INPUT"
    ;;
  esac
}

# log_context: what this run works on, first in the output, for whoever reads it later.
log_context() {
  info "environment $ENVIRONMENT, user $APP_USER, checkout $DEPLOY_PATH, deploy_to $APP_PATH${AUTO_SCALING_GROUP_NAME:+, group $AUTO_SCALING_GROUP_NAME}${LIFECYCLE_HOOK_NAME:+, hook $LIFECYCLE_HOOK_NAME}${INSTANCE_ID:+, instance $INSTANCE_ID}${LIFECYCLE_ACTION_TOKEN:+, token $LIFECYCLE_ACTION_TOKEN}"
}

# already_verified: succeeds when current is the target and this script's own record says
# the last run for it succeeded completely (current alone proves nothing).
already_verified() {
  [ "$RESULT_PREVIOUS" = "$TARGET" ] && [ "$(cat "$SUCCESS_RECORD" 2>/dev/null || true)" = "$TARGET $APP_PATH" ]
}

# check_out_target: the deploy checkout holds the Capfile and the Gemfile the deploy runs with.
check_out_target() {
  git_as_app_user -c advice.detachedHead=false checkout --quiet --force --detach "$TARGET" ||
    fail "$EXIT_REVISION" "cannot check out $TARGET in $DEPLOY_PATH"
}

# verify_current: a deploy command that exits 0 has not necessarily moved current.
verify_current() {
  local deployed
  deployed=$(current_revision)
  [ "$deployed" = "$TARGET" ] ||
    fail "$EXIT_VERIFICATION" "after the deploy $APP_PATH/current/REVISION is ${deployed:-missing}, not $TARGET"
}

# record_success GEMS_MARKER: the fast path's record and the gems record, both written only
# once the deploy is verified.
record_success() {
  [ -z "$1" ] || printf '%s\n' "$1" | write_root_file "$GEMS_RECORD"
  printf '%s\n' "$TARGET $APP_PATH" | write_root_file "$SUCCESS_RECORD"
}

main() {
  handle_arguments "$@"
  trap 'on_error $? $LINENO "$BASH_COMMAND"' ERR
  trap on_exit EXIT
  cd /

  read_result_file
  read_inputs
  wait_for_boot
  check_prerequisites
  log_context
  prepare_state_dir
  take_lock
  trust_localhost
  prepare_git_ssh
  fetch_origin
  resolve_target
  RESULT_REVISION=$TARGET
  RESULT_PREVIOUS=$(current_revision)
  info "target $TARGET ($RESULT_SOURCE); current ${RESULT_PREVIOUS:-none}"
  if already_verified; then
    RESULT_SKIPPED=true
    info "already deployed and verified; skipping the deploy"
    health_check
    return 0
  fi
  [ "$RESULT_PREVIOUS" != "$TARGET" ] || info "current is the target, but no complete success of it is recorded; deploying again"
  rm -f "$SUCCESS_RECORD"

  check_out_target
  ensure_app_path
  start_log
  local gems
  gems=$(gems_marker)
  install_gems_if_changed "$gems"
  check_ssh_to_localhost
  run_deploy
  verify_current
  health_check
  record_success "$gems"
  info "deployed and verified $TARGET in $((SECONDS - START_SECONDS))s"
}

main "$@"

#!/usr/bin/env bash
# Installs everything selfdeploy needs on this machine: the npm packages (npm ci) and
# the OS packages the tests and the local run use (git, OpenSSH server, Capistrano,
# Ruby's bundler, shellcheck, curl for health checks, sudo to test the refusal of app
# users with sudo rights, the AWS CLI and boto3 for the conformance test of the local
# control plane). Safe to run again: it installs only what is missing.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

readonly OS_PACKAGES=(git openssh-server openssh-client capistrano ruby bundler shellcheck curl sudo awscli python3-boto3)
# How to tell each package is there before installing anything: the command it provides,
# or python:<module> for a Python library (which provides no command), imported by Debian's python3.
readonly OS_CHECKS=(git /usr/sbin/sshd ssh-keygen cap ruby bundle shellcheck curl sudo /usr/bin/aws python:boto3)

info() { printf 'setup: %s\n' "$*"; }
fail() {
  printf 'setup: error: %s\n' "$*" >&2
  exit 1
}

present() {
  case "$1" in
    python:*) /usr/bin/python3 -c "import ${1#python:}" >/dev/null 2>&1 ;;
    *) command -v "$1" >/dev/null 2>&1 ;;
  esac
}

missing_os_packages() {
  local i
  for i in "${!OS_PACKAGES[@]}"; do
    present "${OS_CHECKS[$i]}" || printf '%s\n' "${OS_PACKAGES[$i]}"
  done
}

install_os_packages() {
  local missing
  mapfile -t missing < <(missing_os_packages)
  if [ "${#missing[@]}" -eq 0 ]; then
    info "OS packages already present"
    return
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    fail "this machine has no apt-get; install these packages with its package manager, then run setup again: ${missing[*]}"
  fi
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || fail "not root and no sudo: install as root: apt-get install ${missing[*]}"
    sudo=(sudo)
  fi
  info "installing OS packages: ${missing[*]}"
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

install_npm_packages() {
  command -v npm >/dev/null 2>&1 || fail "npm not found: install Node.js 20 or later first"
  if [ -d node_modules ] && [ node_modules/.package-lock.json -nt package-lock.json ]; then
    info "npm packages already installed"
    return
  fi
  info "installing npm packages (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error
}

install_npm_packages
install_os_packages
info "done"

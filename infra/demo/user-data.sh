# shellcheck shell=bash
# Prepares an Amazon Linux 2023 instance of the demo group for selfdeploy: the SSM agent,
# git, Ruby with bundler and Capistrano, and the deploy checkout. The deploy itself is not
# run here: the launch lifecycle hook holds the instance until selfdeploy has deployed.
# APP_USER, DEPLOY_PATH, APP_PATH and REPOSITORY_URL are set above by the demo stack.
set -Eeuo pipefail
trap 'echo "selfdeploy demo user data: failed at line $LINENO" >&2' ERR

retry() {
  local attempt
  for attempt in 1 2 3 4 5; do
    "$@" && return 0
    echo "retrying ($attempt/5): $*" >&2
    sleep $((attempt * 5))
  done
  return 1
}

retry dnf install -y git ruby ruby-devel gcc make openssh-server util-linux
# Installed system-wide so that `bundle install` as the application user resolves locally.
retry gem install --no-document bundler capistrano:'~> 3.17'
systemctl enable --now sshd amazon-ssm-agent

as_app_user() { runuser -u "$APP_USER" -- "$@"; }

install -d -o "$APP_USER" -g "$APP_USER" "$APP_PATH"

if [[ -z "$REPOSITORY_URL" ]]; then
  # No repository given: a one-page application in a repository on the instance itself.
  REPOSITORY_URL="file://$APP_PATH/demo-origin.git"
  if [[ ! -d "$APP_PATH/demo-origin.git" ]]; then
    seed=$(mktemp -d)
    chown "$APP_USER" "$seed"
    as_app_user git init -q -b master "$seed"
    as_app_user mkdir -p "$seed/config/deploy" "$seed/public"
    as_app_user tee "$seed/Gemfile" >/dev/null <<'RUBY'
source 'https://rubygems.org'
gem 'capistrano', '~> 3.17'
RUBY
    as_app_user tee "$seed/Capfile" >/dev/null <<'RUBY'
require 'capistrano/setup'
require 'capistrano/deploy'
require 'capistrano/scm/git'
install_plugin Capistrano::SCM::Git
RUBY
    as_app_user tee "$seed/config/deploy.rb" >/dev/null <<RUBY
set :application, 'selfdeploy-demo'
set :repo_url, '$REPOSITORY_URL'
set :deploy_to, '$APP_PATH'
set :branch, ENV.fetch('REVISION', 'master')
set :keep_releases, 3
RUBY
    as_app_user tee "$seed/config/deploy/local_production.rb" >/dev/null <<RUBY
server 'localhost', user: '$APP_USER', roles: %w[app]
RUBY
    as_app_user tee "$seed/public/index.html" >/dev/null <<'HTML'
<p>Deployed by selfdeploy.</p>
HTML
    as_app_user bash -c "cd '$seed' && bundle lock --local && git add -A &&
      git -c user.name=selfdeploy -c user.email=selfdeploy@localhost commit -q -m 'Demo application'"
    as_app_user git clone -q --bare "$seed" "$APP_PATH/demo-origin.git"
    rm -rf "$seed"
  fi
fi

if [[ ! -d "$DEPLOY_PATH/.git" ]]; then
  retry as_app_user git clone -q "$REPOSITORY_URL" "$DEPLOY_PATH"
fi
as_app_user bash -c "cd '$DEPLOY_PATH' && bundle install --quiet"
echo "selfdeploy demo user data: ready"

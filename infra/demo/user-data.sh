# shellcheck shell=bash
# Prepares an Amazon Linux 2023 instance of the demo group for selfdeploy: the SSM agent,
# sshd, git, Ruby with bundler and Capistrano, a dedicated application user and the deploy
# checkout. The deploy itself is not run here: the launch lifecycle hook holds the instance
# until selfdeploy has deployed (after waiting for this script: cloud-init must be done).
# APP_USER, DEPLOY_PATH, APP_PATH and REPOSITORY_URL are set above by the demo stack, and
# write_stage, which prints selfdeploy's shipped Capistrano stage
# (scripts/instance/capistrano/local_production.rb) byte for byte.
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

# AL2023's Ruby is namespaced: ruby3.2 pulls in ruby3.2-rubygems (gem) and
# ruby3.2-rubygem-bundler (bundle); -devel, gcc and make build an application's native gems.
retry dnf install -y git openssh-server util-linux \
  ruby3.2 ruby3.2-rubygems ruby3.2-rubygem-bundler ruby3.2-devel gcc make
# The plain names are alternatives that AL2023 may leave unset; self-deploy.sh and the
# deploy command call ruby, gem and bundle.
command -v ruby >/dev/null || alternatives --install /usr/bin/ruby ruby /usr/bin/ruby3.2 32
for tool in gem bundle bundler; do
  command -v "$tool" >/dev/null || alternatives --install "/usr/bin/$tool" "$tool" "/usr/bin/ruby3.2-$tool" 32
done
# Installed system-wide so that `bundle install` as the application user resolves locally.
retry gem install --no-document capistrano:'~> 3.17'
systemctl enable --now sshd amazon-ssm-agent

# A dedicated user without sudo rights: the repository's Gemfile and Capfile run as this user
# (ec2-user has passwordless sudo, so they would run as root in effect).
if ! id -u "$APP_USER" >/dev/null 2>&1; then
  useradd --create-home --shell /bin/bash "$APP_USER"
  # No password, but not locked: sshd refuses a locked ('!!') account's key when PAM is off.
  usermod --password '*' "$APP_USER"
fi

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
    # The stage sets the server, branch and deploy_to from what self-deploy.sh passes.
    as_app_user tee "$seed/config/deploy.rb" >/dev/null <<RUBY
set :application, 'selfdeploy-demo'
set :repo_url, '$REPOSITORY_URL'
set :keep_releases, 3
RUBY
    write_stage | as_app_user tee "$seed/config/deploy/local_production.rb" >/dev/null
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

# Capistrano stage for selfdeploy: this instance deploys itself, over SSH to localhost, as
# the application user. Copy it into your application as config/deploy/local_<environment>.rb
# (one copy per environment, e.g. local_production.rb, local_staging.rb); the file is the
# same for every environment. self-deploy.sh runs it with every SELFDEPLOY_* variable set:
#   bundle exec cap local_<environment> deploy
# Everything else (application, repo_url, linked_files, keep_releases, hooks) stays in your
# config/deploy.rb.

# self-deploy.sh sets these; without them this stage must not guess.
selfdeploy = lambda do |name|
  ENV.fetch(name) { abort "#{name} is not set: this stage runs through selfdeploy's self-deploy.sh" }
end

server '127.0.0.1',
       user: selfdeploy.call('SELFDEPLOY_APP_USER'),
       port: Integer(selfdeploy.call('SELFDEPLOY_SSH_PORT'), 10),
       roles: %w[app web db],
       primary: true

# The full commit SHA self-deploy.sh resolved (explicit revision, pinned or branch head).
set :branch, selfdeploy.call('SELFDEPLOY_REVISION')
set :deploy_to, selfdeploy.call('SELFDEPLOY_APP_PATH')

# The localhost key self-deploy.sh generated for this user on this instance (accepted only
# from 127.0.0.1/::1), and this instance's current host keys as the only trusted ones.
set :ssh_options, {
  keys: [selfdeploy.call('SELFDEPLOY_SSH_KEY')],
  keys_only: true,
  auth_methods: %w[publickey],
  use_agent: false,
  forward_agent: false,
  config: false,
  verify_host_key: :always,
  user_known_hosts_file: selfdeploy.call('SELFDEPLOY_KNOWN_HOSTS'),
  global_known_hosts_file: [],
}

# Capistrano's own git wrapper turns host key checking off; self-deploy.sh provides one that
# keeps it on (and carries the deploy key for a private repository).
Rake::Task['git:wrapper'].clear_actions
set :git_environmental_variables, {
  git_askpass: '/bin/echo',
  git_ssh: selfdeploy.call('SELFDEPLOY_GIT_SSH'),
}

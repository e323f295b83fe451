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

# Only the instance a deploy names with the document parameter migrate=true gets the db role
# (and so runs db:migrate): launches never set it, so a burst of new instances does not
# migrate concurrently. An operator's deploy of a release sets it for exactly one instance.
migrate = selfdeploy.call('SELFDEPLOY_MIGRATE')
abort "SELFDEPLOY_MIGRATE is #{migrate.inspect}; it must be 'true' or 'false'" unless %w[true false].include?(migrate)

server '127.0.0.1',
       user: selfdeploy.call('SELFDEPLOY_APP_USER'),
       port: Integer(selfdeploy.call('SELFDEPLOY_SSH_PORT'), 10),
       roles: migrate == 'true' ? %w[app web db] : %w[app web],
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
# keeps it on (and carries the deploy key for a private repository). GIT_SSH_COMMAND, not
# GIT_SSH: git prefers a user's core.sshCommand over GIT_SSH, which could switch the checks
# off again; GIT_SSH_COMMAND comes before both. The wrapper takes OpenSSH's options (a port).
Rake::Task['git:wrapper'].clear_actions
set :git_environmental_variables, {
  git_askpass: '/bin/echo',
  git_ssh_command: selfdeploy.call('SELFDEPLOY_GIT_SSH_COMMAND'),
  git_ssh_variant: 'ssh',
}

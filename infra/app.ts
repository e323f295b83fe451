import { Annotations, App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { loadExistingGroupsConfig } from './app-config';
import { DemoStack } from './demo-stack';
import { ExistingGroupsStack } from './existing-groups-stack';

// Both stacks are environment-agnostic: synth needs no account, and `cdk deploy` deploys to
// the account and region of the caller's credentials.
const app = new App();

const loaded = loadExistingGroupsConfig((key) => app.node.tryGetContext(key));
const existing = new ExistingGroupsStack(app, 'SelfDeployExistingGroups', {
  description: `selfdeploy for existing Auto Scaling groups (configuration: ${loaded.isExample ? 'example' : 'given'})`,
  config: loaded.config,
});
if (loaded.isExample) {
  Annotations.of(existing).addWarningV2(
    'selfdeploy:exampleConfig',
    `no configuration given; using ${loaded.source}. Pass -c selfdeployConfigFile=<file> or -c selfdeploy=<json>.`,
  );
}

const optionalContext = (key: string): string | undefined => {
  const value: unknown = app.node.tryGetContext(key);
  return typeof value === 'string' && value !== '' ? value : undefined;
};
new DemoStack(app, 'SelfDeployDemo', {
  description: 'selfdeploy demo: a small VPC and an Amazon Linux 2023 group kept current by selfdeploy',
  repositoryUrl: optionalContext('demoRepositoryUrl'),
  alarmEmail: optionalContext('alarmEmail'),
});

Validations.of(app).addPlugins(new AwsSolutionsChecks(app, { verbose: true }));

// One config, one project per test tier; `npm test` runs them all.
const transform = {
  '^.+\\.ts$': ['@swc/jest', { jsc: { parser: { syntax: 'typescript' }, target: 'es2022' } }],
};
const tier = (name, extra = {}) => ({
  displayName: name,
  testEnvironment: 'node',
  transform,
  testMatch: [`<rootDir>/test/${name}/**/*.test.ts`],
  setupFilesAfterEnv: ['<rootDir>/test/setup.ts'],
  ...extra,
});

/** @type {import('jest').Config} */
module.exports = {
  projects: [tier('unit'), tier('infra'), tier('instance'), tier('e2e')],
  // Two files at once even on two cores: the slow ones wait on real time (agents, deploys,
  // rate limits), not on the CPU, and every test owns its users, ports and files.
  maxWorkers: 2,
  reporters: ['default', '<rootDir>/test/summary-reporter.js'],
};

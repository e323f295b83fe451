// The bundle's stand-in for @aws-sdk/credential-provider-node (infra/bundling.ts aliases that
// package here). Lambda hands the function its role's credentials in environment variables, so
// the default chain's other providers (SSO, INI files, credential_process, web identity, ECS,
// instance metadata, and the STS and SSO clients they bring) never run there; without them the
// bundle is about a fifth smaller, and every cold start parses that much less.
import { fromEnv } from '@aws-sdk/credential-provider-env';

/** The SDK clients' default credential provider, reduced to the environment's. */
export const defaultProvider: typeof fromEnv = (init) => fromEnv(init);

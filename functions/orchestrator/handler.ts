import type { Context } from 'aws-lambda';
import { createClients } from '../shared/clients';
import { InvalidInputError } from '../shared/errors';
import { cloudWatchMetrics, logger } from '../shared/telemetry';
import { parseConfig } from './config';
import { systemClock } from './deps';
import { type RouteResult, route } from './router';

// Read once per container; a bad configuration fails the cold start with one clear message.
const config = parseConfig(process.env.SELFDEPLOY_CONFIG);
const clients = createClients();

/** The orchestrator: launch lifecycle events, SSM status events, the reconcile schedule and console actions. */
export const handler = async (event: unknown, context: Context): Promise<RouteResult> => {
  logger.addContext(context);
  try {
    return await route(
      {
        config,
        clients,
        logger,
        metrics: cloudWatchMetrics,
        clock: systemClock,
        remainingMs: () => context.getRemainingTimeInMillis(),
      },
      event,
    );
  } catch (error) {
    if (error instanceof InvalidInputError) {
      logger.error(`rejected input: ${error.message}`);
    } else {
      logger.error('orchestrator failed', { error });
    }
    throw error;
  }
};

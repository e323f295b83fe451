import type { Context, SQSBatchResponse } from 'aws-lambda';
import { createClients } from '../shared/clients';
import { InvalidInputError } from '../shared/errors';
import { cloudWatchMetrics, logger } from '../shared/telemetry';
import { parseConfig } from './config';
import { type Deps, systemClock } from './deps';
import { handleQueue, isQueueBatch } from './queue';
import { type RouteResult, route } from './router';

// Read once per container; a bad configuration fails the cold start with one clear message.
const config = parseConfig(process.env.SELFDEPLOY_CONFIG);
const clients = createClients();

/**
 * The orchestrator: batches from the queue (launch events, agent waits, SSM status events),
 * the reconcile schedule, and console actions invoked directly.
 */
export const handler = async (event: unknown, context: Context): Promise<RouteResult | SQSBatchResponse> => {
  logger.addContext(context);
  const deps: Deps = {
    config,
    clients,
    logger,
    metrics: cloudWatchMetrics,
    clock: systemClock,
    remainingMs: () => context.getRemainingTimeInMillis(),
  };
  try {
    return isQueueBatch(event) ? await handleQueue(deps, event, context) : await route(deps, event);
  } catch (error) {
    if (error instanceof InvalidInputError) {
      logger.error(`rejected input: ${error.message}`);
    } else {
      logger.error('orchestrator failed', { error });
    }
    throw error;
  }
};

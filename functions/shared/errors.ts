/** Base class of every error selfdeploy raises on purpose. */
export class SelfDeployError extends Error {
  public constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}

// The classes the orchestrator throws also state their names as literals: its bundle is minified
// without keeping class names (infra/bundling.ts), where new.target.name would be a letter.

/** SELFDEPLOY_CONFIG is missing or invalid; the function cannot start. */
export class ConfigError extends SelfDeployError {
  public override name = 'ConfigError';
}

/** The handler was given something it does not accept; nothing was sent to AWS. */
export class InvalidInputError extends SelfDeployError {
  public override name = 'InvalidInputError';
}

/** A reconcile run could not handle some instances; the others were handled and the metrics published. */
export class ReconcileError extends SelfDeployError {
  public override name = 'ReconcileError';
}

/** A deploy or rollback was asked for while another deployment of the group is in flight. */
export class DeploymentInProgressError extends SelfDeployError {
  public override name = 'DeploymentInProgressError';
  public constructor(
    /** The deployment in flight. */
    public readonly deploymentId: string,
    message: string,
  ) {
    super(message);
  }
}

/** An operator action the group's state does not allow (paused, nothing to roll back to, …); nothing was changed. */
export class ActionRefusedError extends SelfDeployError {
  public override name = 'ActionRefusedError';
}

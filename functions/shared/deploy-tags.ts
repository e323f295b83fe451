/**
 * The EC2 tags a deploy leaves on its instance (functions/orchestrator/revision-tags.ts writes
 * them; the construct's role may write only these). No SDK import: infra reads this at synth.
 */
export const REVISION_TAG = 'selfdeploy:revision';
export const LAST_DEPLOY_TAG = 'selfdeploy:last-deploy';

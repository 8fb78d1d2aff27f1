/** `projectWorkflow` and the types its callers use; the modules of this folder are its parts. */
export { projectWorkflow } from './workflow';
export type { ProjectSummary } from './run';
export type { ProjectCarry } from './carry';
export { PHASES_PER_RUN } from './continue';

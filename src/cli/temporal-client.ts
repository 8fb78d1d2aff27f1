/**
 * The Temporal client, for the commands that connect ({@link connectClient} loads this module when one
 * does): the client and its protobuf definitions are most of a command's start, and commands that never
 * reach Temporal (`init`, `phases`, `tools`, `skills`, `server`) need none of it.
 */
export { Client, Connection, WorkflowNotFoundError } from '@temporalio/client';

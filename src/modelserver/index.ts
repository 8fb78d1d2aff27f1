/** The local Messages-API server and its brains. */
export {
  startModelServer,
  estimateTokens,
  type ModelServer,
  type ModelServerOptions,
  type ModelTotals,
  type ServedRequest,
  type ServedUsage,
} from './server';
export {
  rehearsalBrain,
  findCwd,
  findRole,
  firstUserText,
  lastUserText,
  textOf,
  type Brain,
  type BrainReply,
  type BrainRequest,
  type Fault,
  type ReplyBlock,
  type WireBlock,
  type WireMessage,
} from './brain';

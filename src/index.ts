/** projd's library API: what a projection module, or an application embedding projd, imports. */
export { defineProjection } from './projection/defineProjection.js';
export type * from './projection/types.js';
export { createApp, type App, type AppOptions, type ProjectionSnapshot } from './app.js';
export { adoptStore, migrateStore } from './operations/migrateStore.js';
export type { AdoptResult } from './store/adopt.js';
export type { EventField, EventsTableConfig } from './store/adoptedView.js';
export {
  replayProjections,
  type ReplayOptions,
  type ReplayProgress,
  type ReplayResult,
} from './operations/replayProjections.js';
export {
  verifyProjection,
  ScratchBuildAborted,
  type TableContent,
  type TableVerdict,
  type VerifyOptions,
  type VerifyProgress,
  type VerifyResult,
} from './operations/verifyProjection.js';
export { readStatus, type ReadStatusOptions } from './operations/readStatus.js';
export type { BlockingTransaction, ProjectionOwner, ProjectionStatus } from './status/readStatusReport.js';
export type { ProjectionState } from './projectionStates.js';
export { loadConfig, type LoadConfigOptions } from './config/loadConfig.js';
export type { Config, ResolvedConfig } from './config/types.js';
export { createLogger, type Logger, type LogOptions } from './log.js';
export { isUserError, UserError } from './errors.js';
export { isOperationalError, OperationalError } from './errors.js';
export {
  appendEvents,
  isVersionConflictError,
  VersionConflictError,
  type AppendOptions,
  type AppendResult,
  type ExpectedVersion,
  type NewEvent,
} from './store/appendEvents.js';
export {
  waitFor,
  closeWaitFor,
  isWaitTimeoutError,
  WaitTimeoutError,
  type WaitForOptions,
  type WaitForResult,
  type WaitForTarget,
} from './operations/waitFor.js';
export type { ProjectionBehind } from './wait/progressWaiters.js';

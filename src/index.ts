/** projd's library API: what a projection module imports from 'projd'. */
export { defineProjection } from './projection/defineProjection.js';
export type * from './projection/types.js';
export { isUserError, UserError } from './errors.js';

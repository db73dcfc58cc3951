/**
 * `projd/testing`: run a projection on a real PostgreSQL in a test, then assert on its read
 * model in SQL. See `testProjection`.
 */
export {
  testProjection,
  type GivenEvent,
  type ProjectionTest,
  type TestProjectionOptions,
} from './testProjection.js';

import { describe, expectTypeOf, it } from 'vitest';
import { defineProjection } from '../../src/projection/defineProjection.js';
import type { ProjdEvent } from '../../src/projection/types.js';

// Type-level checks: `npm run typecheck` (tsc) fails when a handler's types go wrong; at run
// time these only build projections.

describe('handler types', () => {
  it('gives event data as unknown when nothing says what it holds', () => {
    defineProjection({
      name: 'untyped',
      version: 1,
      handlers: {
        x: (event) => {
          expectTypeOf(event.data).toBeUnknown();
          // @ts-expect-error data is unknown: reading a field needs a type
          void event.data.amount;
        },
      },
    });
  });

  it('types data from the map given to defineProjection, and leaves patterns unknown', () => {
    type Events = { 'account.credited': { amount: number }; 'account.opened': { owner: string } };
    defineProjection<Events>({
      name: 'typed',
      version: 1,
      handlers: {
        'account.credited': (event) => {
          expectTypeOf(event.data).toEqualTypeOf<{ amount: number }>();
          // @ts-expect-error amount is a number
          const wrong: string = event.data.amount;
          void wrong;
        },
        'account.opened': (event) => {
          expectTypeOf(event.data.owner).toBeString();
        },
        'account.*': (event) => {
          expectTypeOf(event.data).toBeUnknown();
        },
        '*': (event) => {
          expectTypeOf(event.data).toBeUnknown();
        },
      },
    });
  });

  it('accepts a handler whose parameter says what its data holds', () => {
    defineProjection({
      name: 'annotated',
      version: 1,
      handlers: {
        x: (event: ProjdEvent<{ amount: number }>) => {
          expectTypeOf(event.data.amount).toBeNumber();
        },
      },
    });
  });
});

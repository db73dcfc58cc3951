// A leaf module, importable from anywhere: config (`projections.onError`) and projection
// definitions (`onError`) accept the same policies.

/** What a projection does with an event its handler cannot apply: `park` it and go on, or `stop` there. */
export const ON_ERROR_POLICIES = ['park', 'stop'] as const;

export type OnErrorPolicy = (typeof ON_ERROR_POLICIES)[number];

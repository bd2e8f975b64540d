/**
 * The catalogue of named Docker actions: what a policy's `actions:` may name.
 * The table itself lives in catalogue-data.ts; how a request path maps to a row is
 * classify.ts (dockerd's router order).
 */
import type { ActionDef } from '../types.js';
import { SPEC_ACTIONS, UNDOCUMENTED_ACTIONS } from './catalogue-data.js';

export const UNKNOWN_ACTION = 'unknown';

/** Every known action, from the Engine API specifications plus the undocumented routes. */
export const ACTIONS: readonly ActionDef[] = Object.freeze(
  [...SPEC_ACTIONS, ...UNDOCUMENTED_ACTIONS].map((a) => Object.freeze({ ...a })),
);

/** Action name -> definition. `unknown` is not in here but is a valid policy action. */
export const ACTIONS_BY_NAME: ReadonlyMap<string, ActionDef> = buildIndex(ACTIONS);

/**
 * A duplicate name would make a policy rule mean two operations at once; refuse to load
 * (fail closed at start-up) rather than let the later row shadow the earlier one.
 */
function buildIndex(actions: readonly ActionDef[]): ReadonlyMap<string, ActionDef> {
  const byName = new Map<string, ActionDef>();
  const byRoute = new Set<string>();
  for (const action of actions) {
    if (action.name === UNKNOWN_ACTION || byName.has(action.name)) {
      throw new Error(`docker catalogue: duplicate action name ${action.name}`);
    }
    const route = `${action.method} ${action.path}`;
    if (byRoute.has(route)) throw new Error(`docker catalogue: duplicate route ${route}`);
    byName.set(action.name, action);
    byRoute.add(route);
  }
  return byName;
}

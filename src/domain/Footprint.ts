/**
 * Footprints: what one step of an actor touches, for the explorer's
 * partial-order reduction (sleep sets). Pure data and one relation.
 *
 * A step is the work an actor does from one yield point to the next. A yield
 * point may declare the footprint of the step that follows it: the resources
 * it reads and the resources it writes (any strings: "lock:svm",
 * "page:0x1000", "var:x"). Two steps are *independent* when both declare a
 * footprint and neither writes what the other reads or writes; running them in
 * either order reaches the same state, so the explorer needs only one order.
 * A step with no footprint (the default for every machine service call) is
 * dependent on every other step: reduction never prunes it.
 *
 * Soundness rests on the declaration: a footprint that leaves out something
 * the step touches makes the reduction prune orders that differ. The explorer
 * also treats a step as global (no footprint) when another actor made progress
 * during it (a woken lock waiter), since that work is not covered by the
 * declaration.
 *
 * @since 0.2.0
 * @category models
 */

/**
 * What a step reads and writes (resource names).
 *
 * @category models
 */
export interface Footprint {
  readonly reads?: ReadonlyArray<string>
  readonly writes?: ReadonlyArray<string>
}

const overlaps = (a: ReadonlyArray<string> | undefined, b: ReadonlyArray<string> | undefined): boolean => {
  if (a === undefined || b === undefined || a.length === 0 || b.length === 0) return false
  for (const x of a) if (b.includes(x)) return true
  return false
}

/**
 * Are two steps independent? `undefined` stands for "unknown footprint" and is
 * dependent on everything. Symmetric.
 *
 * @since 0.2.0
 * @category predicates
 */
export const independent = (a: Footprint | undefined, b: Footprint | undefined): boolean => {
  if (a === undefined || b === undefined) return false
  return !overlaps(a.writes, b.writes) && !overlaps(a.writes, b.reads) && !overlaps(a.reads, b.writes)
}

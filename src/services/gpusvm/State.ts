/**
 * The GPU SVM state as one immutable value (held in a `TxRef` by the core): the
 * notifier tree (`gpusvm->root`), each notifier holding its range tree
 * (`notifier->root`), and an index from range id to its location. Every update
 * returns a new state sharing structure with the old one.
 *
 * Pure functions; the caller holds whatever lock the kernel holds for the
 * corresponding step (kernel-semantics §6) and swaps the state atomically.
 *
 * @since 0.1.0
 */
import { HashMap } from "effect"
import * as IT from "../../domain/IntervalTree.ts"
import type { Notifier } from "../../domain/Notifier.ts"
import type { NotifierHandle } from "../../domain/NotifierHandle.ts"
import { type Range, type RangeId, rangeId } from "../../domain/Range.ts"
import type { RangeRef } from "../GpuSvm.ts"

/**
 * Where a range lives: its notifier's start and its own key.
 *
 * @category models
 */
export interface RangeLocation {
  readonly notifierStart: number
  readonly start: number
  readonly end: number
}

/**
 * The whole state.
 *
 * @category models
 */
export interface SvmState {
  readonly notifiers: IT.IntervalTree<Notifier>
  readonly index: HashMap.HashMap<RangeId, RangeLocation>
  readonly nextId: number
}

/**
 * The empty state (`drm_gpusvm_init`).
 *
 * @category functions
 */
export const empty: SvmState = { notifiers: IT.empty(), index: HashMap.empty(), nextId: 1 }

/**
 * `drm_gpusvm_notifier_find`: the notifier containing `addr`.
 *
 * @category functions
 */
export const notifierAt = (s: SvmState, addr: number): Notifier | undefined =>
  IT.first(s.notifiers, addr, addr)?.value

/**
 * The notifier registered with this handle, if still in the state.
 *
 * @category functions
 */
export const notifierOf = (s: SvmState, h: NotifierHandle): Notifier | undefined => {
  const n = notifierAt(s, h.start)
  return n !== undefined && n.handle.id === h.id ? n : undefined
}

/**
 * `drm_gpusvm_range_find(notifier, addr, addr + 1)`: the range containing `addr`.
 *
 * @category functions
 */
export const rangeAt = (n: Notifier, addr: number): Range | undefined => IT.first(n.ranges, addr, addr)?.value

/**
 * The live version of a range reference (a stale `Range` or an id), if it was not removed.
 *
 * @category functions
 */
export const live = (s: SvmState, ref: RangeRef): Range | undefined => {
  const loc = typeof ref === "number" ? HashMap.get(s.index, ref) : undefined
  const id = typeof ref === "number" ? ref : ref.id
  const where: RangeLocation | undefined = typeof ref === "number"
    ? (loc !== undefined && loc._tag === "Some" ? loc.value : undefined)
    : ref
  if (where === undefined) return undefined
  const n = notifierAt(s, where.notifierStart)
  if (n === undefined) return undefined
  const r = IT.find(n.ranges, where.start, where.end - 1)?.value
  return r !== undefined && r.id === id ? r : undefined
}

const putNotifier = (s: SvmState, n: Notifier): IT.IntervalTree<Notifier> => IT.insert(s.notifiers, n.start, n.end - 1, n)

/**
 * `drm_gpusvm_notifier_insert`: adds a notifier.
 *
 * @category functions
 */
export const insertNotifier = (s: SvmState, n: Notifier): SvmState => ({ ...s, notifiers: putNotifier(s, n) })

/**
 * `drm_gpusvm_notifier_remove`: drops a notifier (its ranges must be gone).
 *
 * @category functions
 */
export const removeNotifier = (s: SvmState, n: Notifier): SvmState => ({
  ...s,
  notifiers: IT.remove(s.notifiers, n.start, n.end - 1)
})

/**
 * Replaces a notifier value (e.g. to set `removed`).
 *
 * @category functions
 */
export const updateNotifier = (s: SvmState, start: number, f: (n: Notifier) => Notifier): SvmState => {
  const n = notifierAt(s, start)
  return n === undefined ? s : { ...s, notifiers: putNotifier(s, f(n)) }
}

/**
 * Allocates the next range id.
 *
 * @category functions
 */
export const takeId = (s: SvmState): readonly [RangeId, SvmState] => [rangeId(s.nextId), { ...s, nextId: s.nextId + 1 }]

/**
 * `drm_gpusvm_range_insert`: adds a range to its notifier (which must be in the state).
 *
 * @category functions
 */
export const insertRange = (s: SvmState, r: Range): SvmState => {
  const n = notifierAt(s, r.notifierStart)
  if (n === undefined) return s
  return {
    ...s,
    notifiers: putNotifier(s, { ...n, ranges: IT.insert(n.ranges, r.start, r.end - 1, r) }),
    index: HashMap.set(s.index, r.id, { notifierStart: r.notifierStart, start: r.start, end: r.end })
  }
}

/**
 * Replaces the live version of a range (same id and key); a removed range is left removed.
 *
 * @category functions
 */
export const updateRange = (s: SvmState, ref: RangeRef, f: (r: Range) => Range): SvmState => {
  const r = live(s, ref)
  if (r === undefined) return s
  const n = notifierAt(s, r.notifierStart)!
  return { ...s, notifiers: putNotifier(s, { ...n, ranges: IT.insert(n.ranges, r.start, r.end - 1, f(r)) }) }
}

/**
 * `__drm_gpusvm_range_remove`: drops a range from its notifier and the index.
 *
 * @category functions
 */
export const removeRange = (s: SvmState, r: Range): SvmState => {
  const n = notifierAt(s, r.notifierStart)
  if (n === undefined) return s
  return {
    ...s,
    notifiers: putNotifier(s, { ...n, ranges: IT.remove(n.ranges, r.start, r.end - 1) }),
    index: HashMap.remove(s.index, r.id)
  }
}

/**
 * Every notifier, by address.
 *
 * @category functions
 */
export const allNotifiers = (s: SvmState): Array<Notifier> => IT.toArray(s.notifiers).map((e) => e.value)

/**
 * Ranges overlapping `[start, end)`, by address (`drm_gpusvm_for_each_notifier` × `for_each_range`).
 *
 * @category functions
 */
export const rangesIn = (s: SvmState, start: number, end: number): Array<Range> => {
  const out: Array<Range> = []
  if (end <= start) return out
  for (const n of IT.overlapping(s.notifiers, start, end - 1)) {
    for (const r of IT.overlapping(n.value.ranges, start, end - 1)) out.push(r.value)
  }
  return out
}

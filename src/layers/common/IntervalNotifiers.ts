/**
 * MMU interval notifiers of one address space (kernel-semantics §7), shared by
 * the simulated and the native machines (`src/layers/common/` holds the
 * machine-model pieces both machines build on; it is not a layer):
 * `mmu_interval_notifier_insert` / `_remove`, `mmu_interval_read_begin` /
 * `_read_retry` / `_set_seq`, and the invalidation protocol every CPU-side
 * change runs (`mmu_notifier_invalidate_range_start` / `_end`).
 *
 * Each notifier has a sequence number and an "invalidations in flight" count,
 * both `TxRef`s. Sequence values come from one machine-wide counter, so every
 * `curSeq` handed to a callback is fresh (never returned before).
 *
 * An invalidation of `[start, end)` with an event:
 * 1. registers itself as active and, in one transaction, counts itself in on
 *    every overlapping, not removed notifier (`readBegin` on those now waits);
 * 2. calls each callback in address order with a fresh `curSeq`, waiting for
 *    it; the first offer is non-blockable if a `nonBlockable` injection is
 *    pending, and a refusal (`false`) is retried blockably with a fresh
 *    `curSeq` (a refusal of a blockable offer is recorded as a violation);
 * 3. the sequence moves only when the callback publishes it through `setSeq`
 *    (`mmu_interval_set_seq` is the subscriber's job, as in Linux: a callback
 *    that forgets leaves `readRetry` false and lets stale pages be mapped).
 *    Beyond Linux, a blockable callback that returns `true` without having
 *    called `setSeq` for its notifier records the violation
 *    `notifier-seq-not-set` (issue #13 item 8);
 * 4. returns to the caller, which changes the pages;
 * 5. ends: counts itself out of every notifier it counted in (including ones
 *    inserted while it was active, which start counted in, like the kernel's
 *    deferred insertion), waking `readBegin` waiters.
 *
 * `remove` waits until no invalidation is in flight on the notifier (so its
 * callback is never running once `remove` returns); calling it from inside
 * that notifier's own callback deadlocks, as in the kernel.
 *
 * Reads of committed `TxRef` values are done synchronously through `.value`
 * where no waiting is needed; every write goes through a transaction so
 * waiters wake.
 *
 * @since 0.1.0
 */
import { Effect, Fiber, TxRef } from "effect"
import { NOT_NOW, type Now } from "../../domain/Now.ts"
import * as TxSync from "../../internal/TxSync.ts"
import { overlaps } from "../../domain/Address.ts"
import type { MmuEvent, MmuRange } from "../../domain/MmuRange.ts"
import type { NotifierHandle } from "../../domain/NotifierHandle.ts"
import type { Violation } from "../../services/Machine.ts"
import type { InvalidateCallback, InvalidateNow } from "../../services/MmuNotifier.ts"

/**
 * One registered notifier.
 *
 * @category models
 */
export interface NotifierRec {
  readonly handle: NotifierHandle
  readonly callback: InvalidateCallback
  /** The callback's synchronous form, if the subscriber gave one (issue #16; {@link IntervalNotifiers.invalidateNow}). */
  readonly now: InvalidateNow | undefined
  /** `interval_sub->invalidate_seq`. */
  readonly seq: TxRef.TxRef<number>
  /** Invalidations in flight covering this notifier. */
  readonly invalidating: TxRef.TxRef<number>
  /** Set (transactionally) by `remove`. */
  readonly removed: TxRef.TxRef<boolean>
  /** `read_begin`, prebuilt. */
  readonly readBegin: Effect.Effect<number>
  /** Number of `setSeq` calls on this notifier so far (the `notifier-seq-not-set` check compares it around a callback). */
  setSeqCalls: number
}

/**
 * One invalidation in flight.
 *
 * @category models
 */
export interface ActiveInvalidation {
  readonly start: number
  readonly end: number
  readonly event: MmuEvent
  /** Notifiers counted in (and to be counted out at the end). */
  readonly participants: Set<NotifierRec>
}

/**
 * What the notifier machinery needs from the machine.
 *
 * @category models
 */
export interface NotifierEnv {
  /** Consumes one pending `nonBlockable` injection; true if there was one. */
  readonly takeNonBlockable: () => boolean
  /** Is a `nonBlockable` injection pending (without consuming it)? */
  readonly nonBlockablePending: () => boolean
  /** Records a violation. */
  readonly onViolation: (v: Violation) => void
  /** Counts one invalidation of `event`. */
  readonly countEvent: (event: MmuEvent) => void
  /**
   * Runs after every callback returned and before the pages change (the end
   * of `mmu_notifier_invalidate_range_start`): the explorer's yield point
   * there, so that a reader can run between the callbacks and the change, as
   * on a real machine. Default none.
   */
  readonly afterCallbacks?: Effect.Effect<void>
}

/**
 * The notifier registry of one address space.
 *
 * @category models
 */
export class IntervalNotifiers {
  /** Live notifiers by id. */
  readonly byId = new Map<number, NotifierRec>()
  /** Invalidations in flight. */
  readonly active = new Set<ActiveInvalidation>()
  private nextId = 1
  private seqCounter = 0
  private readonly env: NotifierEnv

  constructor(env: NotifierEnv) {
    this.env = env
  }

  /** A fresh sequence value (never returned before). */
  freshSeq(): number {
    return ++this.seqCounter
  }

  /**
   * `mmu_interval_notifier_insert`. A malformed window (not a safe, positive
   * length) registers an empty notifier that never overlaps anything and
   * records a `notifier-bad-window` violation.
   */
  insert(start: number, length: number, callback: InvalidateCallback, now?: InvalidateNow): NotifierHandle {
    const ok = Number.isSafeInteger(start) && start >= 0 && Number.isSafeInteger(length) && length > 0 &&
      Number.isSafeInteger(start + length)
    if (!ok) {
      this.env.onViolation({
        invariant: "notifier-bad-window",
        detail: `mmu_interval_notifier_insert(start=${start}, length=${length}): not a valid window`
      })
    }
    const handle: NotifierHandle = { id: this.nextId++, start, end: ok ? start + length : start }
    let inFlight = 0
    const recActive: Array<ActiveInvalidation> = []
    for (const a of this.active) {
      if (ok && overlaps(a.start, a.end, handle.start, handle.end)) {
        inFlight++
        recActive.push(a)
      }
    }
    const seq = TxRef.makeUnsafe(this.freshSeq())
    const invalidating = TxRef.makeUnsafe(inFlight)
    const removed = TxRef.makeUnsafe(false)
    // Fast path: no invalidation in flight, the committed sequence is the answer
    // (a synchronous read is a consistent snapshot); else wait transactionally.
    const waitBegin = Effect.tx(
      Effect.flatMap(TxRef.get(invalidating), (n) => (n > 0 ? Effect.txRetry : TxRef.get(seq)))
    )
    const readBegin = Effect.suspend(() => (invalidating.value > 0 ? waitBegin : Effect.succeed(seq.value)))
    const rec: NotifierRec = { handle, callback, now, seq, invalidating, removed, readBegin, setSeqCalls: 0 }
    for (const a of recActive) a.participants.add(rec)
    this.byId.set(handle.id, rec)
    return handle
  }

  /** `mmu_interval_notifier_remove`: waits for in-flight invalidations of it, then unregisters. Idempotent. */
  remove(h: NotifierHandle): Effect.Effect<void> {
    return Effect.suspend(() => {
      const rec = this.byId.get(h.id)
      if (rec === undefined) return Effect.void
      return Effect.tx(
        Effect.flatMap(TxRef.get(rec.invalidating), (n) => (n > 0 ? Effect.txRetry : TxRef.set(rec.removed, true)))
      ).pipe(Effect.andThen(Effect.sync(() => {
        this.byId.delete(h.id)
      })))
    })
  }

  /** `mmu_interval_read_begin`. An unknown (removed) handle reads 0, which `readRetry` always reports as moved. */
  readBegin(h: NotifierHandle): Effect.Effect<number> {
    const rec = this.byId.get(h.id)
    return rec === undefined ? Effect.succeed(0) : rec.readBegin
  }

  /**
   * {@link readBegin} decided now: the committed sequence (an `Exit`, no further step) when no
   * invalidation is in flight, else the transactional wait. Call when the effect is about to run (inside
   * `Effect.suspend`); issue #16.
   */
  readBeginNow(h: NotifierHandle): Effect.Effect<number> {
    const rec = this.byId.get(h.id)
    if (rec === undefined) return Effect.succeed(0)
    return rec.invalidating.value > 0 ? rec.readBegin : Effect.succeed(rec.seq.value)
  }

  /**
   * {@link readBegin} answered synchronously: the committed sequence when no invalidation of the notifier
   * is in flight, `NOT_NOW` when `readBegin` would wait (issue #16). An unknown handle reads 0.
   */
  readBeginSync(h: NotifierHandle): Now<number> {
    const rec = this.byId.get(h.id)
    if (rec === undefined) return 0
    return rec.invalidating.value > 0 ? NOT_NOW : rec.seq.value
  }

  /** `mmu_interval_read_retry` (synchronous): has the sequence moved from `seq`? True for unknown handles. */
  moved(h: NotifierHandle, seq: number): boolean {
    const rec = this.byId.get(h.id)
    return rec === undefined || rec.seq.value !== seq
  }

  /**
   * `mmu_interval_set_seq`: publishes `seq` (the callback's `curSeq`) as the
   * notifier's sequence. The only way the sequence of a notifier moves during
   * an invalidation (kernel-semantics §7; issue #13 item 8). No-op for
   * unknown handles.
   */
  setSeq(h: NotifierHandle, seq: number): Effect.Effect<void> {
    return Effect.suspend(() => {
      const rec = this.byId.get(h.id)
      if (rec === undefined) return Effect.void
      rec.setSeqCalls++
      return TxSync.update(rec.seq, () => seq)
    })
  }

  /** {@link setSeq} in the calling step (an {@link InvalidateNow} `run`; issue #16). */
  setSeqSync(h: NotifierHandle, seq: number): void {
    const rec = this.byId.get(h.id)
    if (rec === undefined) return
    rec.setSeqCalls++
    TxSync.commitSync(Fiber.getCurrent()!, rec.seq, seq)
  }

  /** Number of registered notifiers. */
  get live(): number {
    return this.byId.size
  }

  /**
   * Runs a whole invalidation around `change` (steps 1–5 above): the callbacks
   * of every overlapping notifier run and return before `change` runs; the
   * invalidation ends after it, whatever its outcome.
   */
  invalidate<A, E, R>(
    start: number,
    end: number,
    event: MmuEvent,
    change: Effect.Effect<A, E, R>,
    owner?: string
  ): Effect.Effect<A, E, R> {
    return Effect.suspend(() => {
      this.env.countEvent(event)
      const inv: ActiveInvalidation = { start, end, event, participants: new Set() }
      this.active.add(inv)
      const candidates: Array<NotifierRec> = []
      for (const rec of this.byId.values()) {
        if (overlaps(rec.handle.start, rec.handle.end, start, end)) candidates.push(rec)
      }
      candidates.sort((a, b) => a.handle.start - b.handle.start || a.handle.id - b.handle.id)
      const joined: Array<NotifierRec> = []
      const begin = Effect.tx(Effect.suspend(() => {
        joined.length = 0
        return Effect.forEach(candidates, (rec) =>
          Effect.flatMap(TxRef.get(rec.removed), (removed) => {
            if (removed) return Effect.void
            joined.push(rec)
            return TxRef.update(rec.invalidating, (n) => n + 1)
          }), { discard: true })
      }))
      const finish = Effect.suspend(() => {
        this.active.delete(inv)
        if (inv.participants.size === 0) return Effect.void
        const all = [...inv.participants]
        return Effect.tx(Effect.forEach(all, (rec) => TxRef.update(rec.invalidating, (n) => n - 1), { discard: true }))
      })
      if (candidates.length === 0) {
        // Fast path: no notifier to count in or call (one inserted meanwhile still joins through `active`).
        this.env.takeNonBlockable() // consumed as on the full path
        return Effect.uninterruptibleMask((restore) => Effect.ensuring(restore(change), finish))
      }
      const offerAll = Effect.suspend(() => {
        for (const rec of joined) inv.participants.add(rec)
        const nonBlockable = this.env.takeNonBlockable()
        return Effect.forEach(joined, (rec) => this.offer(rec, start, end, event, owner, !nonBlockable), {
          discard: true
        })
      })
      const after = this.env.afterCallbacks
      const body = after === undefined ? change : Effect.andThen(after, change)
      return Effect.uninterruptibleMask((restore) =>
        Effect.flatMap(begin, () => Effect.ensuring(Effect.flatMap(restore(offerAll), () => restore(body)), finish))
      )
    })
  }

  /**
   * Does any registered notifier overlap `[start, end)`? (Then an invalidation
   * of it has callbacks to run and {@link invalidateNow} declines.)
   */
  anyOverlapping(start: number, end: number): boolean {
    for (const rec of this.byId.values()) {
      if (overlaps(rec.handle.start, rec.handle.end, start, end)) return true
    }
    return false
  }

  /**
   * {@link invalidate} of `[start, end)` around a synchronous `change`, done
   * right now in the caller's step (issue #16) when no notifier overlaps the
   * range, or exactly one does whose subscriber gave a synchronous callback
   * ({@link InvalidateNow}) that is `ready`, with no non-blockable injection
   * pending and no `afterCallbacks` hook: the event is counted, a pending
   * non-blockable injection consumed (no notifier) or none pending (one), the
   * one notifier counted in, its callback run with a fresh `curSeq` and
   * checked as {@link offer} checks it (`notifier-refused-blockable`,
   * `notifier-seq-not-set`), then `change`; the invalidation is active while
   * they run and ends after, even if they throw. `undefined`, with nothing
   * done, otherwise (the caller then runs `invalidate`). Nothing else can run
   * in between, so no one can observe the difference (the migrate_vma commits
   * cost one step instead of dozens). Call it only inside an Effect step;
   * `change` must not insert notifiers (an insertion would count itself in on
   * this invalidation, which only `invalidate` counts out).
   */
  invalidateNow<A>(start: number, end: number, event: MmuEvent, change: () => A, owner?: string): { readonly value: A } | undefined {
    let only: NotifierRec | undefined
    for (const rec of this.byId.values()) {
      if (!overlaps(rec.handle.start, rec.handle.end, start, end) || rec.removed.value) continue
      if (only !== undefined) return undefined
      only = rec
    }
    let range: MmuRange | undefined
    if (only !== undefined) {
      if (only.now === undefined || this.env.afterCallbacks !== undefined || this.env.nonBlockablePending()) return undefined
      range = owner === undefined ? { start, end, event, blockable: true } : { start, end, event, owner, blockable: true }
      if (!only.now.ready(range)) return undefined
    }
    this.env.countEvent(event)
    const inv: ActiveInvalidation = { start, end, event, participants: new Set() }
    this.active.add(inv)
    if (only === undefined) this.env.takeNonBlockable() // consumed as on the full path
    else {
      inv.participants.add(only)
      TxSync.commitSync(Fiber.getCurrent()!, only.invalidating, only.invalidating.value + 1)
    }
    try {
      if (only !== undefined) {
        const calls = only.setSeqCalls
        const ok = only.now!.run(range!, this.freshSeq())
        if (!ok) {
          this.env.onViolation({
            invariant: "notifier-refused-blockable",
            detail: `notifier ${only.handle.id} returned false for a blockable ${event} of [${start}, ${end})`
          })
        } else if (only.setSeqCalls === calls) {
          this.env.onViolation({
            invariant: "notifier-seq-not-set",
            detail: `notifier ${only.handle.id}: the callback returned true for a blockable ${event} of [${start}, ${end}) without calling setSeq (mmu_interval_set_seq)`
          })
        }
      }
      return { value: change() }
    } finally {
      this.active.delete(inv)
      for (const rec of inv.participants) TxSync.commitSync(Fiber.getCurrent()!, rec.invalidating, rec.invalidating.value - 1)
    }
  }

  /**
   * Calls one notifier's callback (retrying a refusal blockably). The
   * sequence is the callback's to move (`mmu_interval_set_seq`); a blockable
   * callback that returns `true` without calling `setSeq` records
   * `notifier-seq-not-set` (issue #13 item 8; Linux has no such check).
   */
  private offer(
    rec: NotifierRec,
    start: number,
    end: number,
    event: MmuEvent,
    owner: string | undefined,
    blockable: boolean
  ): Effect.Effect<void> {
    return Effect.suspend(() => {
      const calls = rec.setSeqCalls
      const curSeq = this.freshSeq()
      const range: MmuRange = owner === undefined
        ? { start, end, event, blockable }
        : { start, end, event, owner, blockable }
      return Effect.flatMap(rec.callback(range, curSeq), (ok): Effect.Effect<void> => {
        if (!ok) {
          if (blockable) {
            this.env.onViolation({
              invariant: "notifier-refused-blockable",
              detail: `notifier ${rec.handle.id} returned false for a blockable ${event} of [${start}, ${end})`
            })
          } else {
            return this.offer(rec, start, end, event, owner, true)
          }
        }
        if (ok && blockable && rec.setSeqCalls === calls) {
          this.env.onViolation({
            invariant: "notifier-seq-not-set",
            detail: `notifier ${rec.handle.id}: the callback returned true for a blockable ${event} of [${start}, ${end}) without calling setSeq (mmu_interval_set_seq)`
          })
        }
        return Effect.void
      })
    })
  }
}

/**
 * A pool of worker threads that runs a list of independent items (IGT
 * subtests, scenarios) and gives back one reply per item, in the items'
 * order whatever the number of workers (`gpusvm igt report --workers N`,
 * `gpusvm simulate 'igt:…' --workers N`).
 *
 * - The workers are effect workers over `node:worker_threads`
 *   (`effect/workers/Worker` with `@effect/platform-node`'s `NodeWorker`, as
 *   the explorer's `src/explore/Workers.ts`); the worker side is {@link serve}.
 * - Work is handed out dynamically: each worker holds one item at a time and
 *   gets the next one (in `order`, e.g. the heaviest first) when it replies.
 * - Replies are delivered twice: `onDone` as they come (progress), and
 *   `onInOrder` in the items' order (output), as soon as every earlier item
 *   has its reply.
 * - Nothing is lost and nothing hangs: an item whose handler fails or dies
 *   in the worker, whose reply cannot cross the thread boundary, whose worker
 *   thread exits (a crash, out of memory), or that has no reply within
 *   `itemTimeoutMs` (counted once the worker is ready; its start-up may take
 *   60 s more; the worker is then stopped) gets the reply
 *   `lost(item, reason)`; a worker that ended is replaced by a fresh one.
 *   Every such event charges exactly one item, so the pool always ends.
 *
 * Locking: none; the main side is one fiber that owns all the pool's state.
 *
 * @since 0.3.0
 */
import { NodeWorker } from "@effect/platform-node"
import { Cause, Effect, Exit, type Fiber, Queue } from "effect"
import * as Worker from "effect/workers/Worker"
import type { WorkerError } from "effect/workers/WorkerError"
import * as WorkerRunner from "effect/workers/WorkerRunner"
import type * as WorkerThreads from "node:worker_threads"

/**
 * One item sent to a worker: its position in the pool's items, and the item.
 *
 * @category models
 */
export interface Job<T> {
  readonly index: number
  readonly item: T
}

/**
 * A worker's answer for one job: the handler's reply, or why there is none
 * (the handler's failure or defect, pretty-printed).
 *
 * @category models
 */
export type Done<R> =
  | { readonly index: number; readonly ok: true; readonly reply: R }
  | { readonly index: number; readonly ok: false; readonly reason: string }

/**
 * What {@link runPool} runs.
 *
 * @category models
 */
export interface PoolOptions<T, R> {
  /** The items, in output order. */
  readonly items: ReadonlyArray<T>
  /** Worker threads (at most one per item is started). */
  readonly workers: number
  /** Starts worker thread `id` (a `node:worker_threads` Worker whose module calls {@link serve}). */
  readonly spawn: (id: number) => WorkerThreads.Worker
  /** The order items are handed out in (indices into `items`; default: `items`' order). Must be a permutation. */
  readonly order?: ReadonlyArray<number>
  /** The reply of an item that got none from its worker, with the reason. */
  readonly lost: (item: T, reason: string) => R
  /** Past this time without a reply, the item's worker is stopped and replaced (default: no bound). */
  readonly itemTimeoutMs?: number
  /** Each reply as it comes, with the number of replies so far. */
  readonly onDone?: (index: number, reply: R, done: number) => Effect.Effect<void>
  /** Each reply in the items' order. */
  readonly onInOrder?: (index: number, reply: R) => Effect.Effect<void>
}

type Event<R> =
  | { readonly _tag: "Done"; readonly slot: number; readonly generation: number; readonly done: Done<R> }
  | { readonly _tag: "Exit"; readonly slot: number; readonly generation: number; readonly reason: string }
  | { readonly _tag: "Ready"; readonly slot: number; readonly generation: number }
  | { readonly _tag: "Tick" }

interface Slot<T, R> {
  generation: number
  worker: Worker.Worker<Done<R>, Job<T>>
  fiber: Fiber.Fiber<unknown, unknown>
  /** Its start-up is over (it has said it is ready). */
  ready: boolean
  /** The item it holds, and since when it counts towards the time bound. */
  busy: { readonly index: number; readonly since: number } | undefined
}

/** What a fresh worker's start-up (loading the modules) may take on top of the time bound: 60 s. */
const STARTUP_MS = 60_000

/** A cause in one line: the first line of its pretty form, and the message of what a worker error wraps. */
const firstLine = (cause: Cause.Cause<unknown>): string => {
  const line = Cause.pretty(cause).split("\n")[0] ?? "unknown"
  const inner = (Cause.squash(cause) as { readonly reason?: { readonly cause?: unknown } } | undefined)?.reason?.cause
  return inner instanceof Error ? `${line} (${inner.message})` : line
}

/**
 * Runs every item on `workers` worker threads and returns the replies in the
 * items' order (see the module doc). Never fails: what goes wrong with an
 * item is its `lost` reply.
 *
 * @category running
 */
export const runPool = <T, R>(o: PoolOptions<T, R>): Effect.Effect<ReadonlyArray<R>> =>
  Effect.gen(function*() {
    const n = o.items.length
    const results: Array<R> = []
    const have: Array<boolean> = Array.from({ length: n }, () => false)
    const order = o.order ?? Array.from({ length: n }, (_, i) => i)
    if (n === 0) return results
    // the threads by worker id, to terminate a stuck one at once
    const threads = new Map<number, WorkerThreads.Worker>()
    const spawn = (id: number): WorkerThreads.Worker => {
      const thread = o.spawn(id)
      threads.set(id, thread)
      thread.once("exit", () => threads.delete(id))
      return thread
    }
    yield* Effect.scoped(Effect.gen(function*() {
      const platform = yield* Worker.WorkerPlatform
      const inbox = yield* Queue.unbounded<Event<R>>()
      const slots: Array<Slot<T, R>> = []
      // a worker's id, also its generation: events of a replaced worker are stale
      let nextId = 0
      let next = 0
      let done = 0
      let flushed = 0
      let outstanding = 0

      const start = (slot: number) =>
        Effect.gen(function*() {
          const generation = nextId++
          const worker = yield* Effect.orDie(platform.spawn<Done<R>, Job<T>>(generation))
          const fiber = yield* Effect.forkScoped(
            worker.run((d) => Queue.offer(inbox, { _tag: "Done", slot, generation, done: d }), {
              onSpawn: Effect.asVoid(Queue.offer(inbox, { _tag: "Ready", slot, generation }))
            }).pipe(
              Effect.catchCause((cause) => Queue.offer(inbox, { _tag: "Exit", slot, generation, reason: firstLine(cause) }))
            )
          )
          return { generation, worker, fiber, ready: false, busy: undefined } satisfies Slot<T, R>
        })

      const record = (index: number, reply: R) =>
        Effect.gen(function*() {
          if (have[index]) return
          have[index] = true
          results[index] = reply
          done++
          if (o.onDone !== undefined) yield* o.onDone(index, reply, done)
          while (flushed < n && have[flushed]) {
            if (o.onInOrder !== undefined) yield* o.onInOrder(flushed, results[flushed]!)
            flushed++
          }
        })

      /** Gives the slot its next item (items that cannot be sent are charged at once). */
      const feed = (s: number): Effect.Effect<void> =>
        Effect.gen(function*() {
          const slot = slots[s]!
          slot.busy = undefined
          while (next < order.length) {
            const index = order[next++]!
            const sent = yield* Effect.exit(slot.worker.send({ index, item: o.items[index]! }))
            if (Exit.isSuccess(sent)) {
              slot.busy = { index, since: Date.now() + (slot.ready ? 0 : STARTUP_MS) }
              outstanding++
              return
            }
            yield* record(index, o.lost(o.items[index]!, `could not be sent to a worker: ${firstLine(sent.cause)}`))
          }
        })

      /** Charges the slot's item with `reason` and puts a fresh worker in its place. */
      const replace = (s: number, reason: string) =>
        Effect.gen(function*() {
          const slot = slots[s]!
          const busy = slot.busy
          slot.busy = undefined
          if (busy !== undefined) {
            outstanding--
            yield* record(busy.index, o.lost(o.items[busy.index]!, reason))
          }
          if (next >= order.length) return
          slots[s] = yield* start(s)
          yield* feed(s)
        })

      for (let s = 0; s < Math.min(Math.max(1, o.workers), n); s++) {
        slots.push(yield* start(s))
        yield* feed(s)
      }
      if (o.itemTimeoutMs !== undefined) {
        yield* Effect.forkScoped(Effect.forever(Effect.andThen(Effect.sleep("1 second"), Queue.offer(inbox, { _tag: "Tick" }))))
      }
      while (outstanding > 0) {
        const ev = yield* Queue.take(inbox)
        if (ev._tag === "Tick") {
          const now = Date.now()
          for (let s = 0; s < slots.length; s++) {
            const slot = slots[s]!
            if (slot.busy !== undefined && now - slot.busy.since > o.itemTimeoutMs!) {
              // a worker stuck in a loop cannot read a close request: terminate its thread (its run then ends, stale)
              threads.get(slot.generation)?.terminate()
              slot.generation = -1
              yield* replace(s, `no reply within ${Math.round(o.itemTimeoutMs! / 1000)} s: its worker thread was stopped`)
            }
          }
          continue
        }
        const slot = slots[ev.slot]!
        if (ev.generation !== slot.generation) continue
        if (ev._tag === "Ready") {
          // the time bound counts from the worker's readiness (its start-up has a bound of its own)
          slot.ready = true
          if (slot.busy !== undefined) slot.busy = { index: slot.busy.index, since: Date.now() }
          continue
        }
        if (ev._tag === "Exit") {
          yield* replace(ev.slot, `its worker thread ended: ${ev.reason}`)
          continue
        }
        if (slot.busy?.index !== ev.done.index) continue
        outstanding--
        yield* record(ev.done.index, ev.done.ok ? ev.done.reply : o.lost(o.items[ev.done.index]!, ev.done.reason))
        yield* feed(ev.slot)
      }
    }).pipe(Effect.provide(NodeWorker.layer(spawn))))
    return results
  })

/**
 * The worker side of a pool: answers every {@link Job} with `handle(item)`,
 * or with why not (its failure or defect; a reply that cannot be posted
 * back is answered with that reason instead). Runs until the pool closes it.
 *
 * @category running
 */
export const serve = <T, R>(
  handle: (item: T) => Effect.Effect<R, unknown>
): Effect.Effect<void, WorkerError, WorkerRunner.WorkerRunnerPlatform> =>
  Effect.gen(function*() {
    const platform = yield* WorkerRunner.WorkerRunnerPlatform
    const runner = yield* platform.start<Done<R>, Job<T>>()
    const answer = (port: number, job: Job<T>) =>
      Effect.gen(function*() {
        const exit = yield* Effect.exit(Effect.suspend(() => handle(job.item)))
        const d: Done<R> = Exit.isSuccess(exit)
          ? { index: job.index, ok: true, reply: exit.value }
          : { index: job.index, ok: false, reason: Cause.pretty(exit.cause) }
        const posted = yield* Effect.exit(Effect.try(() => runner.sendUnsafe(port, d)))
        if (Exit.isFailure(posted)) {
          runner.sendUnsafe(port, { index: job.index, ok: false, reason: `its reply could not be posted: ${firstLine(posted.cause)}` })
        }
      })
    yield* runner.run(answer)
  })

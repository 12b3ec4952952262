/**
 * The jobs a worker thread of `--workers N` runs (`igtWorker.ts`) and how to
 * start one: `gpusvm igt report` sends `Outcome` jobs (a subtest by name →
 * its `IgtOutcome`), `gpusvm simulate` sends `Simulate` jobs (an item → its
 * `ScenarioResult`, the object the main thread would print).
 *
 * @since 0.3.0
 */
import { Worker } from "node:worker_threads"
import type { ScenarioResult } from "../domain/ScenarioResult.ts"
import type { IgtOutcome } from "./igt.ts"
import type { SimulateItem, SimulateOptions } from "./simulateItem.ts"

/**
 * One job of an IGT / simulate worker.
 *
 * @category models
 */
export type IgtJob =
  | { readonly _tag: "Outcome"; readonly name: string }
  | { readonly _tag: "Simulate"; readonly item: SimulateItem; readonly options: SimulateOptions }

/**
 * A worker's reply: an `Outcome` job's outcome, a `Simulate` job's result.
 *
 * @category models
 */
export type IgtReply = IgtOutcome | ScenarioResult

/**
 * How long past its run's own time bound the pool waits for a worker's reply
 * before it stops the worker (a worker stuck in a loop that never yields): 60 s.
 *
 * @category constants
 */
export const WORKER_GRACE_MS = 60_000

/**
 * Starts worker thread `id` running `igtWorker` (the same extension as this
 * module: .ts from source, .js when built).
 *
 * @category constructors
 */
export const spawnIgtWorker = (id: number): Worker => {
  const ext = import.meta.url.endsWith(".ts") ? ".ts" : ".js"
  return new Worker(new URL(`./igtWorker${ext}`, import.meta.url), { workerData: id })
}

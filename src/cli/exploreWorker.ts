/**
 * The worker thread of `gpusvm explore --workers N`: receives subtree tasks
 * (`Workers.Task`), explores each on a fresh simulated machine per schedule
 * and replies with what it found (`Workers.Reply`). An effect worker
 * (`effect/workers/WorkerRunner` over `@effect/platform-node`'s
 * `NodeWorkerRunner`); the main side is `src/explore/Workers.ts`.
 *
 * @since 0.2.0
 */
import { NodeRuntime, NodeWorkerRunner } from "@effect/platform-node"
import { workerData } from "node:worker_threads"
import { Effect } from "effect"
import * as WorkerRunner from "effect/workers/WorkerRunner"
import { runSubtree, type Reply, type Task } from "../explore/Workers.ts"
import { simulated } from "./machines.ts"

const id = typeof workerData === "number" ? workerData : 0

const main = Effect.gen(function*() {
  const platform = yield* WorkerRunner.WorkerRunnerPlatform
  const runner = yield* platform.start<Reply, Task>()
  yield* runner.run((port, task) => Effect.flatMap(Effect.promise((signal) => runSubtree(task, simulated, id, signal)), (reply) => runner.send(port, reply)))
}).pipe(Effect.provide(NodeWorkerRunner.layer))

NodeRuntime.runMain(main)

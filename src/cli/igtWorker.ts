/**
 * The worker thread of `gpusvm igt report --workers N` and `gpusvm simulate
 * --workers N`: answers each job (`igtJobs.ts`) by building and running it on
 * the simulated machine in this thread — an IGT subtest's outcome
 * (`igt.ts` `runSubtest`) or a simulate item's result (`simulateItem.ts`
 * `runItem`). The main side is the pool of `pool.ts`.
 *
 * @since 0.3.0
 */
import { NodeRuntime, NodeWorkerRunner } from "@effect/platform-node"
import { Effect } from "effect"
import { subtest } from "../igt/Subtests.ts"
import { runSubtest } from "./igt.ts"
import type { IgtJob, IgtReply } from "./igtJobs.ts"
import { serve } from "./pool.ts"
import { runItem } from "./simulateItem.ts"

const handle = (job: IgtJob): Effect.Effect<IgtReply> => {
  if (job._tag === "Simulate") return runItem(job.item, job.options)
  const t = subtest(job.name)
  return t === undefined ? Effect.die(new Error(`no IGT subtest is named "${job.name}"`)) : runSubtest(t)
}

NodeRuntime.runMain(serve(handle).pipe(Effect.provide(NodeWorkerRunner.layer)))

/**
 * A worker of the pool test (test/cli/pool.test.ts): answers a number with
 * its square, except 3 (the thread exits, as a crash), 5 (the handler dies),
 * 7 (a reply that cannot be posted: a function) and 9 (a loop that never
 * yields, so only the pool's time bound ends it).
 */
import { NodeRuntime, NodeWorkerRunner } from "@effect/platform-node"
import { Effect } from "effect"
import { serve } from "../../src/cli/pool.ts"

const handle = (n: number): Effect.Effect<unknown> =>
  Effect.sync(() => {
    if (n === 3) process.exit(3)
    if (n === 5) throw new Error("five is a defect")
    if (n === 7) return () => n
    if (n === 9) for (;;) {}
    return n * n
  })

NodeRuntime.runMain(serve(handle).pipe(Effect.provide(NodeWorkerRunner.layer)))

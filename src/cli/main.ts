/**
 * The `gpusvm` command line (effect/cli). Thin: parses arguments, picks layers,
 * runs programs. `simulate` and `scenarios` arrive with the scenario-runner issue;
 * until then they answer with a clear "not available yet" message and exit 2.
 *
 * @since 0.1.0
 */
import { NodeRuntime, NodeServices } from "@effect/platform-node"
import { Console, Effect } from "effect"
import { Command } from "effect/cli"
import { VERSION } from "../index.ts"

const notYet = (what: string) =>
  Effect.gen(function*() {
    yield* Console.error(`gpusvm ${what}: not available yet (arrives with the scenario-runner issue)`)
    yield* Effect.sync(() => {
      process.exitCode = 2
    })
  })

/** `gpusvm simulate`: runs scenarios on a machine (placeholder until the runner lands). */
const simulate = Command.make("simulate", {}, () => notYet("simulate")).pipe(
  Command.withDescription("Run scenarios on a simulated or native machine")
)

/** `gpusvm scenarios`: lists the built-in scenarios (placeholder until the runner lands). */
const scenarios = Command.make("scenarios", {}, () => notYet("scenarios")).pipe(
  Command.withDescription("List the built-in scenarios")
)

/** The root `gpusvm` command. */
export const gpusvm = Command.make("gpusvm").pipe(
  Command.withDescription("GPU Shared Virtual Memory (drm_gpusvm) as an executable Effect model"),
  Command.withSubcommands([simulate, scenarios])
)

gpusvm.pipe(
  Command.run({ version: VERSION }),
  Effect.provide(NodeServices.layer),
  NodeRuntime.runMain
)

/**
 * The machines the CLI can run scenarios on, as `MachineFactory`s for the
 * scenario runner. `simulated` builds a fresh simulated machine (with its GPU
 * and VRAM) per scenario; `native` is not available yet and says so.
 *
 * @since 0.1.0
 */
import { Layer } from "effect"
import { Simulated } from "../layers/simulated/Simulated.ts"
import type { SimulatedOptions } from "../layers/simulated/Simulated.ts"
import * as SimGpu from "../layers/simulated/SimGpu.ts"
import type { MachineFactory } from "../programs/ScenarioRunner.ts"

/** Names accepted by `--machine`. */
export const MACHINES = ["simulated", "native"] as const

/** A fresh simulated machine per run, shaped by the scenario's `machine` block. */
export const simulated: MachineFactory = (spec) => {
  const options: SimulatedOptions = {
    ...(spec.seed === undefined ? {} : { schedule: { seed: spec.seed } }),
    inject: spec.inject,
    vramBytes: spec.vramBytes,
    devicePrivateOwner: spec.devicePrivateOwner
  }
  const sim = Simulated.layer(options)
  return Layer.mergeAll(sim, SimGpu.layer.pipe(Layer.provide(sim)))
}

/**
 * The machines the CLI can run scenarios on, as `MachineFactory`s for the
 * scenario runner: `simulated` builds a fresh simulated machine (with its GPU
 * and VRAM) per scenario, `native` a fresh helper process (a real Linux address
 * space) per scenario.
 *
 * @since 0.1.0
 */
import { Layer } from "effect"
import { Native } from "../layers/native/Native.ts"
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

/**
 * A fresh native machine per run, shaped by the scenario's `machine` block (VRAM,
 * injections, the device-private owner). Schedule seeds do not apply (the kernel
 * schedules). A host that cannot run it makes the run fail with the typed error
 * in its `runner` violation; the CLI probes first and reports a missing
 * capability as bad input.
 */
export const native: MachineFactory = (spec) =>
  Layer.orDie(Native.layer({ vramBytes: spec.vramBytes, inject: spec.inject, devicePrivateOwner: spec.devicePrivateOwner }))

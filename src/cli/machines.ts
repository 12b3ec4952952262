/**
 * The stacks the CLI can run scenarios on, as `StackFactory`s for the scenario
 * runner: `simulated` builds a fresh simulated machine (with its GPU and VRAM)
 * and the driver on it per scenario (`Driver.simulated`), `native` a fresh
 * helper process (a real Linux address space) with the driver (`Driver.native`).
 *
 * @since 0.1.0
 */
import { Layer } from "effect"
import type { StackFactory } from "../programs/ScenarioRunner.ts"
import { Driver } from "../stacks/Driver.ts"

/**
 * Names accepted by `--machine`.
 *
 * @category constants
 * @since 0.1.0
 */
export const MACHINES = ["simulated", "native"] as const

/**
 * A fresh simulated stack per run, shaped by the scenario's `machine`, `svm`
 * and `policy` blocks.
 *
 * @category stacks
 * @since 0.1.0
 */
export const simulated: StackFactory = (req) =>
  Driver.simulated({
    machine: {
      ...(req.seed === undefined ? {} : { schedule: { seed: req.seed } }),
      inject: req.inject,
      vramBytes: req.vramBytes,
      devicePrivateOwner: req.devicePrivateOwner
    },
    config: req.config,
    policy: req.policy,
    driver: req.driver
  })

/**
 * A fresh native stack per run, shaped by the scenario's blocks (VRAM,
 * injections, the device-private owner, config, policy). Schedule seeds do not
 * apply (the kernel schedules). A host that cannot run it makes the run fail
 * with the typed error in its `runner` violation; the CLI probes first and
 * reports a missing capability as bad input.
 *
 * @category stacks
 * @since 0.1.0
 */
export const native: StackFactory = (req) =>
  Layer.orDie(Driver.native({
    machine: { vramBytes: req.vramBytes, inject: req.inject, devicePrivateOwner: req.devicePrivateOwner },
    config: req.config,
    policy: req.policy,
    driver: req.driver
  }))

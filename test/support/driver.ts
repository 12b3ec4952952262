/**
 * Test harness for the driver programs: a simulated machine with its GPU, a
 * migration policy and the driver (GpuSvm + fault handler + GC + invalidation).
 */
import { Effect, Layer } from "effect"
import type { SimulatedOptions } from "../../src/layers/simulated/Simulated.ts"
import { Simulated } from "../../src/layers/simulated/Simulated.ts"
import * as SimGpu from "../../src/layers/simulated/SimGpu.ts"
import { Driver } from "../../src/programs/Driver.ts"
import type { DriverOptions } from "../../src/programs/DriverState.ts"
import * as MigrationPolicy from "../../src/programs/MigrationPolicy.ts"

/** Machine + GPU (+ whatever else the simulated layer grows: device memory). */
export const machineLayer = (options: SimulatedOptions = {}) => {
  const sim = Simulated.layer(options)
  return Layer.mergeAll(sim, SimGpu.layer.pipe(Layer.provide(sim)))
}

/** The whole stack for a test. */
export const driverLayer = (o: {
  readonly machine?: SimulatedOptions
  readonly policy?: "never" | "always" | "xe"
  readonly config?: Record<string, unknown>
  readonly driver?: DriverOptions
} = {}) =>
  Driver.layer({ name: "test", devicePrivateOwner: "test-gpu", ...o.config }, o.driver).pipe(
    Layer.provideMerge(Layer.unwrap(Effect.sync(() => {
      const machine = machineLayer(o.machine ?? {})
      return Layer.mergeAll(machine, MigrationPolicy.fromName(o.policy ?? "never").pipe(Layer.provide(machine)))
    })))
  )

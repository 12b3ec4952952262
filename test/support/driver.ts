/**
 * Test harness for the driver programs: a simulated machine with its GPU, a
 * migration policy and the driver (GpuSvm + fault handler + GC + invalidation).
 */
import { Effect, Layer } from "effect"
import type { SimulatedOptions } from "../../src/layers/simulated/Simulated.ts"
import { layerWithState } from "../../src/layers/simulated/Simulated.ts"
import { Driver } from "../../src/programs/Driver.ts"
import type { DriverOptions } from "../../src/programs/DriverState.ts"
import type { GpuSvmConfigInput } from "../../src/domain/GpuSvmConfig.ts"
import { Gpu } from "../../src/services/Gpu.ts"
import { type DeviceMapper, Pagemaps } from "../../src/services/Pagemaps.ts"

/** Machine + GPU (+ whatever else the simulated layer grows: device memory). */
export const machineLayer = (options: SimulatedOptions = {}) => layerWithState(options)

/**
 * Wrappers of machine services as the driver (and the test) see them: a test
 * counts or perturbs calls through them. The machine itself keeps the originals.
 */
export interface Wrappers {
  /** Wraps the GPU (the driver and the test both get the wrapped one). */
  readonly gpu?: (gpu: Gpu["Service"]) => Gpu["Service"]
  /** Wraps the pagemap registry GPU SVM maps device pages through. */
  readonly pagemaps?: (m: ReadonlyMap<string, DeviceMapper>) => ReadonlyMap<string, DeviceMapper>
}

const wrapped = <ROut, E, RIn>(base: Layer.Layer<ROut, E, RIn>, w: Wrappers) => {
  const gpu = w.gpu
  const pagemaps = w.pagemaps
  const overrides = Layer.mergeAll(
    gpu === undefined ? Layer.empty : Layer.effect(Gpu, Effect.map(Gpu, gpu)),
    pagemaps === undefined ? Layer.empty : Layer.effect(Pagemaps, Effect.map(Pagemaps, pagemaps))
  )
  return Layer.provideMerge(overrides, base)
}

/** The whole stack for a test. */
export const driverLayer = (o: {
  readonly machine?: SimulatedOptions
  readonly policy?: "never" | "always" | "xe"
  readonly config?: GpuSvmConfigInput
  readonly driver?: DriverOptions
  readonly wrap?: Wrappers
} = {}) => {
  const machine = layerWithState({ devicePrivateOwner: "test-gpu", ...o.machine })
  const driver = Driver.layer({ name: "test", devicePrivateOwner: "test-gpu", ...o.config }, { ...o.driver, policy: o.policy ?? "never" })
  return driver.pipe(Layer.provideMerge(o.wrap === undefined ? machine : wrapped(machine, o.wrap)))
}

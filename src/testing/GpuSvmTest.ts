/**
 * `GpuSvmTest`: the ready stack a test runs on. One call gives a fresh
 * simulated machine (its GPU and device memory), GPU SVM, a migration policy
 * and the driver programs, with defaults chosen for tests: GPU SVM named
 * `"test"`, device-private owner `"test-gpu"`, policy `"never"` (system memory
 * only) unless the test picks one, any chunk-size list the config accepts
 * (e.g. `[64 KiB, 4 KiB]` to make ranges small). Optional wrappers sit between
 * the machine and the driver, so a test can count or perturb the calls the
 * driver makes to the GPU or to the pagemap registry.
 *
 * @since 0.2.0
 */
import { Effect, Layer } from "effect"
import type { InvalidConfig } from "../domain/Errors.ts"
import type { GpuSvmConfigInput } from "../domain/GpuSvmConfig.ts"
import { layerWithState as simulatedWithState, type SimState, type SimulatedOptions } from "../layers/simulated/Simulated.ts"
import type { DriverOptions } from "../programs/DriverState.ts"
import type { PolicyChoice } from "../programs/MigrationPolicy.ts"
import { Driver, type SimulatedStack } from "../stacks/Driver.ts"
import { Gpu } from "../services/Gpu.ts"
import { type DeviceMapper, Pagemaps } from "../services/Pagemaps.ts"

/**
 * Wrappers of machine services as the driver (and the test) see them: the
 * driver's calls go through the wrapped service, so a test counts or perturbs
 * them (delay a call, fire a racing CPU operation inside it, fail it). The
 * machine itself keeps the originals.
 *
 * @category options
 * @since 0.2.0
 */
export interface Wrappers {
  /** Wraps the GPU (the driver and the test both get the wrapped one). */
  readonly gpu?: (gpu: Gpu["Service"]) => Gpu["Service"]
  /** Wraps the pagemap registry GPU SVM maps device pages through (`drm_pagemap_ops.device_map`/`device_unmap`). */
  readonly pagemaps?: (m: ReadonlyMap<string, DeviceMapper>) => ReadonlyMap<string, DeviceMapper>
}

/**
 * Options of {@link layer}: those of `Driver.simulated` with test defaults,
 * plus {@link Wrappers}.
 *
 * @category options
 * @since 0.2.0
 */
export interface TestOptions<E = never, R = never> {
  /** The simulated machine's options; `devicePrivateOwner` defaults to `"test-gpu"`. */
  readonly machine?: SimulatedOptions
  /** The GPU SVM config; `name` defaults to `"test"`, `devicePrivateOwner` to the machine's. */
  readonly config?: GpuSvmConfigInput
  /** The migration policy: `"never"` (the default here), `"always"`, `"xe"`, or your own `MigrationPolicy` layer. */
  readonly policy?: PolicyChoice<E, R>
  /** The driver's options (retries, read-only mirror, check_pages threshold, …). */
  readonly driver?: DriverOptions
  /** Wrappers of the GPU and of the pagemap registry, between the machine and the driver. */
  readonly wrap?: Wrappers
}

const overrides = (w: Wrappers) => {
  const gpu = w.gpu
  const pagemaps = w.pagemaps
  return Layer.mergeAll(
    gpu === undefined ? Layer.empty : Layer.effect(Gpu, Effect.map(Gpu, gpu)),
    pagemaps === undefined ? Layer.empty : Layer.effect(Pagemaps, Effect.map(Pagemaps, pagemaps))
  )
}

const build = <E, R>(o: TestOptions<E, R>) => {
  const owner = o.machine?.devicePrivateOwner ?? "test-gpu"
  const machine = simulatedWithState({ ...o.machine, devicePrivateOwner: owner })
  const driver = Driver.layer({ name: "test", devicePrivateOwner: owner, ...o.config }, { ...o.driver, policy: o.policy ?? "never" })
  return driver.pipe(Layer.provideMerge(o.wrap === undefined ? machine : Layer.provideMerge(overrides(o.wrap), machine)))
}

/**
 * The whole stack for a test: `Driver.simulated` with test defaults (name
 * `"test"`, owner `"test-gpu"`, policy `"never"`), with the optional
 * {@link Wrappers} between machine and driver. Each build is a fresh machine
 * (provide it per test, or wrap it in `Layer.fresh` to rebuild inside one).
 * Errors: `InvalidConfig` (a bad config field or unknown key) and your policy
 * layer's own.
 *
 * @category layers
 * @since 0.2.0
 */
export const layer = <E = never, R = never>(
  options: TestOptions<E, R> = {}
): Layer.Layer<SimulatedStack, InvalidConfig | E, Exclude<R, SimulatedStack>> =>
  build(options) as Layer.Layer<SimulatedStack, InvalidConfig | E, Exclude<R, SimulatedStack>>

/**
 * White-box variant of {@link layer}: the same stack plus `SimState`, the
 * simulated machine's internal state (page table, frames, VMAs), for tests
 * that inspect what no public service shows. `SimState` is internal: its shape
 * changes without notice; user tests should not need it.
 *
 * @category layers
 * @since 0.2.0
 */
export const layerWithState = <E = never, R = never>(
  options: TestOptions<E, R> = {}
): Layer.Layer<SimulatedStack | SimState, InvalidConfig | E, Exclude<R, SimulatedStack | SimState>> =>
  build(options) as Layer.Layer<SimulatedStack | SimState, InvalidConfig | E, Exclude<R, SimulatedStack | SimState>>

/**
 * The test stacks: `GpuSvmTest.layer(options)` and (white-box)
 * `GpuSvmTest.layerWithState(options)`.
 *
 * @category layers
 * @since 0.2.0
 */
export const GpuSvmTest = { layer, layerWithState } as const

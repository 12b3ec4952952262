/**
 * The composition root: the whole GPU SVM stack over a machine in one call.
 * `Driver.simulated(options)` is a fresh simulated machine (its GPU and device
 * memory included) with GPU SVM, the migration policy and the driver programs
 * on it; `Driver.native(options)` the same over a real Linux process. They are
 * the only place where a machine layer meets the driver layer (design.md §3:
 * programs see only service interfaces, a layer never imports another), and the
 * CLI, the scenario runner's machine factories, the test kit and the benchmarks
 * all build their stacks here.
 *
 * `Driver` here is the driver service of `src/programs/Driver.ts` (the same
 * key: `yield* Driver` works with either) with `simulated` and `native` added.
 *
 * @since 0.2.0
 */
import { Layer } from "effect"
import type { InvalidConfig } from "../domain/Errors.ts"
import type { GpuSvmConfigInput } from "../domain/GpuSvmConfig.ts"
import { Native, type NativeOptions, type NativeServices } from "../layers/native/Native.ts"
import type { NativeError } from "../layers/native/Errors.ts"
import { Simulated, type SimulatedOptions, type SimulatedServices } from "../layers/simulated/Simulated.ts"
import { Driver as DriverService } from "../programs/Driver.ts"
import type { DriverOptions } from "../programs/DriverState.ts"
import type { PolicyChoice } from "../programs/MigrationPolicy.ts"
import type { GpuSvm } from "../services/GpuSvm.ts"

/**
 * Options of a one-call stack: the machine's options, the GPU SVM config (its
 * `devicePrivateOwner` defaults to the machine's, so device pages stay on the
 * device), the migration policy (default `"xe"`) and the driver's options.
 *
 * @category options
 * @since 0.2.0
 */
export interface StackOptions<M, E = never, R = never> {
  /** The machine's options. */
  readonly machine?: M
  /** The GPU SVM config (`drm_gpusvm_init`'s arguments); typed, unknown keys rejected. */
  readonly config?: GpuSvmConfigInput
  /** The migration policy: `"never" | "always" | "xe"` or a layer providing `MigrationPolicy`. */
  readonly policy?: PolicyChoice<E, R>
  /** The driver's options (GPU VA window, retries, read-only mirror, …). */
  readonly driver?: DriverOptions
}

/**
 * What a simulated stack provides: the simulated machine, `GpuSvm` and `Driver`.
 *
 * @category models
 * @since 0.2.0
 */
export type SimulatedStack = SimulatedServices | GpuSvm | DriverService

/**
 * What a native stack provides: the native machine, `GpuSvm` and `Driver`.
 *
 * @category models
 * @since 0.2.0
 */
export type NativeStack = NativeServices | GpuSvm | DriverService

const configFor = (config: GpuSvmConfigInput | undefined, owner: string): GpuSvmConfigInput =>
  config?.devicePrivateOwner === undefined ? { ...config, devicePrivateOwner: owner } : config

/**
 * The whole stack on a fresh simulated machine: `Simulated.layer(machine)` with
 * `Driver.layer(config, { policy, ...driver })` over it. Each build is a new
 * machine. Errors: `InvalidConfig` (a bad config field or unknown key), and a
 * user policy layer's own.
 *
 * @category stacks
 * @since 0.2.0
 */
export const simulated = <E = never, R = never>(
  options: StackOptions<SimulatedOptions, E, R> = {}
): Layer.Layer<SimulatedStack, InvalidConfig | E, Exclude<R, SimulatedServices>> =>
  over(Simulated.layer(options.machine ?? {}), options.machine?.devicePrivateOwner ?? "gpusvm", options) as Layer.Layer<
    SimulatedStack,
    InvalidConfig | E,
    Exclude<R, SimulatedServices>
  >

/** The driver (with its config and policy) over `machine`, whose pagemaps carry `owner`. */
const over = <M, EM, E, R>(machine: Layer.Layer<M, EM>, owner: string, options: StackOptions<unknown, E, R>) =>
  DriverService.layer(configFor(options.config, owner), {
    ...options.driver,
    ...(options.policy === undefined ? {} : { policy: options.policy })
  }).pipe(Layer.provideMerge(machine))

/**
 * The whole stack over a fresh native machine (a helper process):
 * `Native.layer(machine)` with `Driver.layer` over it. Closing the layer kills
 * the helper. Errors: the machine's `NativeError` (host cannot run it),
 * `InvalidConfig`, and a user policy layer's own.
 *
 * @category stacks
 * @since 0.2.0
 */
export const native = <E = never, R = never>(
  options: StackOptions<NativeOptions, E, R> = {}
): Layer.Layer<NativeStack, NativeError | InvalidConfig | E, Exclude<R, NativeServices>> =>
  over(Native.layer(options.machine ?? {}), options.machine?.devicePrivateOwner ?? "native-gpu", options) as Layer.Layer<
    NativeStack,
    NativeError | InvalidConfig | E,
    Exclude<R, NativeServices>
  >

/**
 * The driver service (`yield* Driver`) with its layer and the one-call stacks:
 * `Driver.layer(config, options)` over a machine you provide,
 * `Driver.simulated(options)` and `Driver.native(options)` with the machine.
 *
 * @category services
 * @since 0.1.0
 */
export class Driver extends DriverService {
  /** The whole stack on a fresh simulated machine (see {@link simulated}). */
  static readonly simulated = simulated
  /** The whole stack over a fresh native machine (see {@link native}). */
  static readonly native = native
}

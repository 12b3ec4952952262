/**
 * gpusvm — an Effect 4 rewrite of the Linux DRM GPU SVM layer (`drm_gpusvm`,
 * the migration parts of `drm_pagemap`, and the driver components its
 * documentation expects), with a simulated machine.
 *
 * `import { GpuSvm, Simulated, Cpu } from "gpusvm"`.
 *
 * @since 0.1.0
 */

/**
 * The package version (kept equal to package.json's by a test).
 *
 * @category constants
 */
export const VERSION = "0.1.0"

// Domain values and pure functions
export * as Address from "./domain/Address.ts"
export * as Buddy from "./domain/Buddy.ts"
export * as ChunkSize from "./domain/ChunkSize.ts"
export * as DeviceAddress from "./domain/DeviceAddress.ts"
export * as GpuSvmConfig from "./domain/GpuSvmConfig.ts"
export type { GpuSvmConfigInput } from "./domain/GpuSvmConfig.ts"
export * as GpuSvmCtx from "./domain/GpuSvmCtx.ts"
export * as HmmPfn from "./domain/HmmPfn.ts"
export * as IntervalTree from "./domain/IntervalTree.ts"
export * as MmuRange from "./domain/MmuRange.ts"
export * as PageRef from "./domain/PageRef.ts"
export * as Prot from "./domain/Prot.ts"
export * as Range from "./domain/Range.ts"
export * as RangeFlags from "./domain/RangeFlags.ts"
export * as Vma from "./domain/Vma.ts"
export type { Notifier } from "./domain/Notifier.ts"
export type { NotifierHandle } from "./domain/NotifierHandle.ts"

// Errors
export {
  AccessDenied,
  Again,
  BadAddress,
  Busy,
  GpuFaultCause,
  GpuFaultError,
  InvalidArgument,
  InvalidConfig,
  MixedPages,
  OutOfMemory,
  PermissionDenied,
  TimedOut,
  VmaNotFound
} from "./domain/Errors.ts"
export type { Errno, SvmError } from "./domain/Errors.ts"

// Services (contracts)
export { Cpu } from "./services/Cpu.ts"
export type { MmapOptions, MremapOptions } from "./services/Cpu.ts"
export { DevicePagemap, DevicePagemaps } from "./services/DevicePagemap.ts"
export type { DevicePagemapApi, PagemapTraffic, PagemapUsage, PopulateOptions } from "./services/DevicePagemap.ts"
export { Dma } from "./services/Dma.ts"
export { Gpu, gpuAccess } from "./services/Gpu.ts"
export type { AccessMode, FaultHandler, GpuAccess, GpuPageFault, GpuStats } from "./services/Gpu.ts"
export { GpuSvm } from "./services/GpuSvm.ts"
export type { GpuSvmApi, GpuSvmOps, RangeRef, ScanResult } from "./services/GpuSvm.ts"
export { Hmm } from "./services/Hmm.ts"
export type { HmmRange } from "./services/Hmm.ts"
export { Machine } from "./services/Machine.ts"
export type { Injection, MachineServices, MachineStats, Violation } from "./services/Machine.ts"
export { Mm } from "./services/Mm.ts"
export { MmuNotifier } from "./services/MmuNotifier.ts"
export type { InvalidateCallback } from "./services/MmuNotifier.ts"
export { Pagemaps } from "./services/Pagemaps.ts"
export type { DeviceMapper } from "./services/Pagemaps.ts"

// Machines
export { Simulated } from "./layers/simulated/Simulated.ts"
export type { SimulatedOptions, SimulatedServices } from "./layers/simulated/Simulated.ts"
export { Native } from "./layers/native/Native.ts"
export type { NativeOptions, NativeServices } from "./layers/native/Native.ts"
export type { PagemapOptions } from "./layers/simulated/MachineState.ts"

// Driver programs and the one-call stacks (Driver.simulated / Driver.native)
export { Driver } from "./stacks/Driver.ts"
export type { NativeStack, SimulatedStack, StackOptions } from "./stacks/Driver.ts"
export type { DriverApi, DriverLayerOptions, DriverRequirements } from "./programs/Driver.ts"
export type { DriverOptions } from "./programs/DriverState.ts"
export * as MigrationPolicy from "./programs/MigrationPolicy.ts"

// The explorer (docs/explorer.md)
export { ActorName, asActor, Interleaving, lockHooks, lockWait, uncontrolled } from "./services/Interleaving.ts"
export type { Footprint, InterleavingApi, PointOptions } from "./services/Interleaving.ts"
export { check, Explore, InvalidExploreOptions } from "./explore/Explore.ts"
export type { CheckOptions, CheckResult, Progress, StrategyName, Target, Verdict, Violation as ExploreViolation } from "./explore/Explore.ts"
export type { Chooser, Decision, Enabled, RunEnd, RunRecord, TraceStep } from "./explore/Controller.ts"
export * as ScenarioExplorer from "./explore/ScenarioTarget.ts"
export * as ScheduleString from "./domain/ScheduleString.ts"

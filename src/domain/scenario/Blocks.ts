/**
 * The blocks of a scenario file (`scenarios.md`) besides its steps — `machine`,
 * `svm`, `policy`, the threads — and the shape of a file as written (`steps`
 * or `threads`, `policy` optional), before the cross-step checks and the
 * normalisation of `Codec.ts`.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"
import * as GpuSvmConfig from "../GpuSvmConfig.ts"
import { NonNegativeIntLike, NotifierSize, PageMultiple, PositiveIntLike } from "./Numbers.ts"
import { ProcessName, VmName } from "./steps/Fields.ts"
import { Step } from "./Step.ts"
import { KernelBlock } from "./steps/Kernel.ts"

const optional = Schema.optionalKey

/**
 * Schema of the `machine` block: VRAM per pagemap (a page multiple; 0 = no device memory), the
 * seed of the thread interleaving, fault-injection counts, and the kernel actor's page-move rates
 * (`kernel`, kernel-semantics §11.17).
 *
 * @category schemas
 * @since 0.1.0
 */
export const MachineBlock = Schema.Struct({
  /** VRAM per pagemap, a multiple of the 4 KiB page (0 = no device memory). */
  vramBytes: optional(PageMultiple),
  schedule: optional(Schema.Struct({ seed: optional(NonNegativeIntLike) })),
  inject: optional(Schema.Struct({
    hmmBusy: optional(NonNegativeIntLike),
    dmaMapFail: optional(NonNegativeIntLike),
    vramAllocFail: optional(NonNegativeIntLike),
    nonBlockable: optional(NonNegativeIntLike),
    /** The next N device-memory migration copies fail mid-way (the migration leaves every page untouched). */
    copyFail: optional(NonNegativeIntLike),
    /** kernel-semantics §11.16: the next N `mmu_interval_read_retry` checks see the sequence moved. */
    seqRace: optional(NonNegativeIntLike),
    /** kernel-semantics §11.16: the next N pfn-array allocations of `drm_gpusvm_range_evict` fail (ENOMEM). */
    evictPfnAllocFail: optional(NonNegativeIntLike)
  })),
  /** kernel-semantics §11.17: the kernel actor's page-move rates (simulated only). */
  kernel: optional(KernelBlock)
})
/** @category models @since 0.1.0 */
export type MachineBlock = typeof MachineBlock.Type

/**
 * Schema of the `svm` block (the `drm_gpusvm_init` arguments); omitted fields
 * take kernel-like defaults. Also checked against the `GpuSvmConfig` rules.
 *
 * @category schemas
 * @since 0.1.0
 */
export const SvmSpec = Schema.Struct({
  chunkSizes: optional(Schema.Array(PositiveIntLike)),
  /** kernel-semantics §2: a power of two ≤ 2^52 (and ≥ 4096, checked with the other config rules). */
  notifierSize: optional(NotifierSize),
  checkPagesThreshold: optional(NonNegativeIntLike),
  gpuvaStart: optional(NonNegativeIntLike),
  gpuvaEnd: optional(PositiveIntLike),
  /** The HMM retry timeout of get_pages / check_pages / evict, ms (default 1000, the kernel's `HMM_RANGE_DEFAULT_TIMEOUT`). */
  hmmTimeoutMs: optional(NonNegativeIntLike),
  /** kernel-semantics §11.16: the kernel profile, `"6.17"` (the seed, bugs included) or `"7.0"` (default). */
  kernel: optional(Schema.Literals(GpuSvmConfig.KERNEL_PROFILES)),
  /** kernel-semantics §11.3: a read-only GPU mirror (default false, Xe's writable mirror). */
  readOnlyMirror: optional(Schema.Boolean),
  /** kernel-semantics §11.4: `"retry"` (default, Xe's bounded livelock) or `"recreate"` (drop and re-create the range). */
  onSplitVma: optional(Schema.Literals(["retry", "recreate"])),
  /** kernel-semantics §11.17: `"native"` (default, Xe) or `"exclusive"` (GPU atomics on system memory through device-exclusive access, as nouveau). */
  systemAtomics: optional(Schema.Literals(["native", "exclusive"]))
})
/** @category models @since 0.1.0 */
export type SvmSpec = typeof SvmSpec.Type

/**
 * The migration policies: never to VRAM, always, or Xe-like (the default).
 *
 * @category schemas
 * @since 0.1.0
 */
export const MigratePolicy = Schema.Literals(["never", "always", "xe"])
/** @category models @since 0.1.0 */
export type MigratePolicy = typeof MigratePolicy.Type

/**
 * The policy used when a file gives none.
 *
 * @category constructors
 * @since 0.1.0
 */
export const DEFAULT_MIGRATE_POLICY: MigratePolicy = "xe"

/**
 * Schema of one thread: its steps, run in order.
 *
 * @category schemas
 * @since 0.1.0
 */
export const ScenarioThread = Schema.Struct({
  steps: Schema.Array(Step),
  /** kernel-semantics §11.17: the GPU VM of its process the thread's GPU steps use (default the first). */
  vm: optional(VmName)
})
/** @category models @since 0.1.0 */
export type ScenarioThread = typeof ScenarioThread.Type

/**
 * A list of VM names: at least one, all distinct.
 *
 * @category schemas
 * @since 0.4.0
 */
export const VmNames = Schema.Array(VmName).check(
  Schema.makeFilter((vs: ReadonlyArray<string>) => {
    if (vs.length === 0) return "expected at least one VM"
    const dup = vs.find((v, i) => vs.indexOf(v) !== i)
    return dup === undefined || `VM ${JSON.stringify(dup)} is listed twice`
  })
)

/**
 * Schema of one process of the `processes` form (kernel-semantics §11.17):
 * its name, its GPU VMs (`vms`, default one named `"v0"`), and its steps (one
 * thread) or threads. A process some `fork` step names with `as` is that
 * fork's child and starts when the fork runs; every other starts with the run.
 *
 * @category schemas
 * @since 0.4.0
 */
export const ScenarioProcess = Schema.Struct({
  name: ProcessName,
  vms: optional(VmNames),
  steps: optional(Schema.Array(Step)),
  threads: optional(Schema.Array(ScenarioThread))
})
/** @category models @since 0.4.0 */
export type ScenarioProcess = typeof ScenarioProcess.Type

const ScenarioName = Schema.String.check(
  Schema.makeFilter((s: string) =>
    /^[a-z0-9-]+$/.test(s) || `expected a name of lowercase letters, digits and "-" ([a-z0-9-]+), got ${JSON.stringify(s)}`
  )
)

/**
 * The fields every form of a scenario has: `name`, `description`, `machine`, `svm`.
 *
 * @category schemas
 * @since 0.1.0
 */
export const commonFields = {
  name: ScenarioName,
  description: optional(Schema.String),
  machine: optional(MachineBlock),
  svm: optional(SvmSpec)
}

/**
 * The shape of a file as written: `steps` or `threads`, `policy` optional.
 *
 * @category schemas
 * @since 0.1.0
 */
export const ScenarioFileShape = Schema.Struct({
  ...commonFields,
  policy: optional(Schema.Struct({ migrate: optional(MigratePolicy) })),
  steps: optional(Schema.Array(Step)),
  threads: optional(
    Schema.Array(ScenarioThread).check(Schema.makeFilter((ts) => ts.length > 0 || "expected at least one thread"))
  ),
  /** kernel-semantics §11.17: the GPU VMs of the one process of the `steps` / `threads` forms (default `["v0"]`). */
  vms: optional(VmNames),
  /** kernel-semantics §11.17: several processes on one machine, each with its own threads and VMs. */
  processes: optional(
    Schema.Array(ScenarioProcess).check(Schema.makeFilter((ps) => ps.length > 0 || "expected at least one process"))
  )
})
/**
 * A file decoded to its shape, before the cross-step checks and the normal form.
 *
 * @category models
 * @since 0.1.0
 */
export type ScenarioFileType = typeof ScenarioFileShape.Type

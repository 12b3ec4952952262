/**
 * `Machine`: the machine-level view tests and the scenario runner use beyond the
 * kernel interfaces: invariant violations detected by the machine (the
 * `CONFIG_DMA_API_DEBUG`-like checks), fault injection, and counters.
 *
 * @since 0.1.0
 */
import { Context, type Effect } from "effect"
import type { InvalidArgument } from "../domain/Errors.ts"

/**
 * One invariant breach the machine observed (e.g. `dma-unmap-unknown`, `frame-freed-while-mapped`,
 * `notifier-seq-not-set`: a blockable notifier callback returned true without `setSeq`, issue #13 item 8).
 *
 * @category models
 */
export interface Violation {
  readonly invariant: string
  readonly detail: string
}

/**
 * Fault-injection knobs: each counts how many of the next calls fail.
 *
 * @category models
 */
export interface Injection {
  /** The next N `Hmm.rangeFault` calls fail with `Busy`. */
  readonly hmmBusy?: number
  /** The next N `Dma.mapPage` calls fail (`dma_mapping_error`). */
  readonly dmaMapFail?: number
  /** The next N VRAM allocations fail. */
  readonly vramAllocFail?: number
  /** The next N invalidations are raised non-blockable first. */
  readonly nonBlockable?: number
  /**
   * The next N device-memory migration copies (to device memory or back to
   * RAM) fail mid-way; the migration then leaves every page untouched.
   */
  readonly copyFail?: number
  /**
   * The next N `mmu_interval_read_retry` checks (`MmuNotifier.readRetry`) report
   * that the sequence moved, as if an invalidation had raced the caller's walk
   * every time (kernel-semantics §11.16: what makes the 6.17 get_pages restart
   * loop spin). Simulated machine only.
   */
  readonly seqRace?: number
  /**
   * The next N pfn-array allocations (`kvmalloc_array`) of
   * `drm_gpusvm_range_evict` fail with ENOMEM (kernel-semantics §11.16: the
   * 6.17 mm-reference leak). Simulated machine only (`KernelAlloc`).
   */
  readonly evictPfnAllocFail?: number
}

/**
 * Machine counters.
 *
 * @category models
 */
export interface MachineStats {
  /** System frames allocated and not yet freed. */
  readonly framesLive: number
  /** Bytes of page contents actually held (lazily materialised). */
  readonly bytesHeld: number
  /** Invalidations raised, by event. */
  readonly invalidations: Readonly<Record<string, number>>
  /** Live DMA mappings. */
  readonly dmaMappingsLive: number
  /** Registered MMU notifiers. */
  readonly notifiersLive: number
}

/**
 * The kinds of kernel-initiated page move (kernel-semantics §11.17): `reclaim` (anonymous pages
 * swapped out, `shrink_folio_list` → `try_to_unmap`), `compact` (compaction / NUMA migration,
 * `migrate_pages` → `try_to_migrate`), `collapse` (khugepaged, `collapse_huge_page`), `ksm-merge`
 * (ksmd, `try_to_merge_one_page`), `split-thp` (`split_huge_pmd`).
 *
 * @category models
 * @since 0.3.0
 */
export type KernelMoveKind = "reclaim" | "compact" | "collapse" | "ksm-merge" | "split-thp"

/**
 * Every {@link KernelMoveKind}, in the order of kernel-semantics §11.17.
 *
 * @category constants
 * @since 0.3.0
 */
export const KERNEL_MOVE_KINDS: ReadonlyArray<KernelMoveKind> = ["reclaim", "compact", "collapse", "ksm-merge", "split-thp"]

/**
 * What a kernel page move did: `Moved` (how many 4 KiB pages changed and how many CLEAR
 * invalidations it raised; 0 and 0 when nothing in the window was eligible), or `Unsupported` —
 * the machine cannot make its kernel move pages on demand (the native machine: kernel page moves
 * are simulated-only).
 *
 * @category models
 * @since 0.3.0
 */
export type KernelMoveOutcome =
  | { readonly _tag: "Moved"; readonly kind: KernelMoveKind; readonly pages: number; readonly events: number }
  | { readonly _tag: "Unsupported"; readonly reason: string }

/**
 * The machine itself.
 *
 * @category services
 */
export class Machine extends Context.Service<Machine, {
  /** Every violation recorded so far. */
  readonly violations: Effect.Effect<ReadonlyArray<Violation>>
  /** Adds fault injections (counts add up). */
  readonly inject: (i: Injection) => Effect.Effect<void>
  /**
   * Current counters: `notifiersLive` is this process's, the rest machine-wide
   * (memory, the IOMMU and the invalidation counts are shared by every process).
   */
  readonly stats: Effect.Effect<MachineStats>
  /**
   * A new process on this machine (kernel-semantics §11.17, IGT `processes-*`): an empty address
   * space of its own, sharing the machine's memory, IOMMU, GPU device and its VRAM (pagemaps are
   * per device: an allocation of one process may be evicted by another's populate). Returns the
   * process's machine services; its `Gpu` is a fresh VM. Errors: a machine that cannot host more
   * processes (the native one) → `InvalidArgument`.
   */
  readonly spawn: Effect.Effect<Context.Context<MachineServices>, InvalidArgument>
  /**
   * Makes the kernel move the pages of `[start, end)` on its own (kernel-semantics §11.17; see
   * {@link KernelMoveKind}): every move raises CLEAR over what it changes before it changes it;
   * holes and ineligible pages (device-private, shared, file-backed, the zero page) are skipped.
   * Errors: `InvalidArgument` for a window that is not page aligned or empty. An exited process
   * moves nothing. The native machine answers `Unsupported`.
   */
  readonly kernelMove: (kind: KernelMoveKind, start: number, end: number) => Effect.Effect<KernelMoveOutcome, InvalidArgument>
}>()("gpusvm/Machine") {}

/**
 * The services every machine layer provides (`Simulated.layer`,
 * `Native.layer`): the kernel interfaces GPU SVM uses (`Mm`, `MmuNotifier`,
 * `Hmm`, `Dma`), the CPU side a program drives (`Cpu`), the machine view
 * (`Machine`), the GPU and its device memory (`DevicePagemap(s)`). What a
 * scenario, a driver and a test need of a machine; a machine may provide more
 * (the simulated `KernelAlloc`, the native `NativeMachine`).
 *
 * @category models
 * @since 0.2.0
 */
export type MachineServices =
  | import("./Cpu.ts").Cpu
  | import("./Mm.ts").Mm
  | import("./MmuNotifier.ts").MmuNotifier
  | import("./Hmm.ts").Hmm
  | import("./Dma.ts").Dma
  | Machine
  | import("./Gpu.ts").Gpu
  | import("./DevicePagemap.ts").DevicePagemap
  | import("./DevicePagemap.ts").DevicePagemaps

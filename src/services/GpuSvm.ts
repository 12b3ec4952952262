/**
 * `GpuSvm`: the GPU SVM core — every exported function of the kernel's
 * `drm_gpusvm.c` over the `Mm`, `MmuNotifier`, `Hmm` and `Dma` services, with the
 * behaviour of kernel-semantics §2–§7. Its one implementation lives in
 * `src/services/gpusvm/`; `GpuSvm.layer(config, ops)` builds it.
 *
 * Locking (kernel-semantics §6): the *driver SVM lock* is the caller's (the
 * fault handler and the garbage collector serialise `rangeFindOrInsert` and
 * `rangeRemove`); the *notifier lock* is this service's transactional
 * read/write lock, taken with `withNotifierLock` / `withNotifierWriteLock`; the
 * *mmap lock* is `Mm.withReadLock`, taken internally where the kernel takes it.
 *
 * @since 0.1.0
 */
import type { Now } from "../domain/Now.ts"
import { Context, Effect, Layer, type Option } from "effect"
import type {
  BadAddress,
  Busy,
  InvalidArgument,
  InvalidConfig,
  MixedPages,
  OutOfMemory,
  PermissionDenied,
  TimedOut,
  VmaNotFound
} from "../domain/Errors.ts"
import type { GpuSvmConfig, GpuSvmConfigInput } from "../domain/GpuSvmConfig.ts"
import type { GpuSvmCtx } from "../domain/GpuSvmCtx.ts"
import type { MmuRange } from "../domain/MmuRange.ts"
import type { Notifier } from "../domain/Notifier.ts"
import type { Range, RangeId } from "../domain/Range.ts"
import type { Dma } from "./Dma.ts"
import { make } from "./gpusvm/make.ts"
import type { Hmm } from "./Hmm.ts"
import type { Mm } from "./Mm.ts"
import type { MmuNotifier } from "./MmuNotifier.ts"

/**
 * Where a range's pages live, from `scanMm` (an advisory, non-faulting walk).
 *
 * @category models
 */
export type ScanResult = "unpopulated" | "system" | "equal" | "other" | "mixed"

/**
 * `struct drm_gpusvm_ops`: the driver's callbacks. `invalidate` (mandatory) is
 * called from the MMU notifier callback with the notifier lock held for writing;
 * it receives the GpuSvm service itself, as the C callback receives `gpusvm`. It
 * must unmap the pages of every overlapping range (`rangeUnmapPages` with
 * `inNotifier: true`) before returning.
 *
 * @category models
 */
export interface GpuSvmOps {
  readonly invalidate: (svm: GpuSvmApi, notifier: Notifier, mmuRange: MmuRange) => Effect.Effect<void>
  /**
   * Optional synchronous form of `invalidate` (issue #16, `src/domain/Now.ts`): `ready` says, without side
   * effects, whether `run` does the whole callback in the calling step (with the notifier lock held for
   * writing, or free); then the machine may run the invalidation in one step.
   */
  readonly invalidateNow?: {
    readonly ready: (svm: GpuSvmApi, notifier: Notifier, mmuRange: MmuRange) => boolean
    readonly run: (svm: GpuSvmApi, notifier: Notifier, mmuRange: MmuRange) => void
  }
}

/**
 * Counters of one GPU SVM instance.
 *
 * @category models
 */
export interface GpuSvmStats {
  readonly notifiersCreated: number
  readonly notifiersRemoved: number
  readonly rangesCreated: number
  readonly rangesRemoved: number
  /**
   * get_pages calls that spent the 6.17 profile's restart budget
   * (`KERNEL_617_RETRY_BUDGET`, kernel-semantics §11.16): each is a livelock the
   * seed would have spun in forever. Always 0 under "7.0".
   */
  readonly livelocks: number
}

/**
 * A range argument: a (possibly stale) `Range` value or its id. The live version is always used.
 *
 * @category models
 */
export type RangeRef = Range | RangeId

/**
 * The GPU SVM API (design.md §3).
 *
 * @category models
 */
export interface GpuSvmApi {
  /** The decoded configuration. */
  readonly config: GpuSvmConfig
  /**
   * `drm_gpusvm_range_find_or_insert` (kernel-semantics §3): the range containing
   * `faultAddr`, creating it (and its notifier) if needed. Caller holds the driver
   * SVM lock. A failure leaves no new notifier or range behind.
   */
  readonly rangeFindOrInsert: (
    faultAddr: number,
    gpuvaStart: number,
    gpuvaEnd: number,
    ctx?: Partial<GpuSvmCtx>
  ) => Effect.Effect<Range, InvalidArgument | BadAddress | VmaNotFound | PermissionDenied | OutOfMemory>
  /**
   * `drm_gpusvm_range_get_pages` (kernel-semantics §4): fault the range's pages in
   * and map them for the device. `Busy` once the HMM timeout passes.
   */
  readonly rangeGetPages: (
    range: RangeRef,
    ctx?: Partial<GpuSvmCtx>
  ) => Effect.Effect<void, BadAddress | MixedPages | PermissionDenied | Busy | OutOfMemory>
  /**
   * Synchronous fast path of {@link rangeFindOrInsert} (issue #16, `src/domain/Now.ts`): the range, found or
   * created in the calling step, or `NOT_NOW` (nothing changed: call `rangeFindOrInsert`) where the notifier
   * is not registered yet, a lock is taken, a schedule point would be passed, the present-pages check would
   * walk, or the call would fail. Caller holds the driver SVM lock or runs in one step with it free.
   * The four `…Now` members are attached non-enumerably (`withNow`): a GpuSvm wrapped by spreading has
   * none, so its wrapper sees every call.
   */
  readonly rangeFindOrInsertNow?: (faultAddr: number, gpuvaStart: number, gpuvaEnd: number, ctx?: Partial<GpuSvmCtx>) => Now<Range>
  /**
   * Synchronous fast path of {@link rangeGetPages}: its first round done in the calling step, or `NOT_NOW`
   * (call `rangeGetPages`; at most pages were faulted in, as it would fault them) where the machine cannot
   * answer now, an invalidation is in flight, a lock is taken, or the call would fail or restart.
   */
  readonly rangeGetPagesNow?: (range: RangeRef, ctx?: Partial<GpuSvmCtx>) => Now<void>
  /**
   * `f` under the notifier read lock in the calling step when the lock is free (no writer holds or waits,
   * no schedule point at it), else `NOT_NOW` without running `f` (issue #16).
   */
  readonly withNotifierLockNow?: <A>(f: () => A) => Now<A>
  /** The live version of a range, or `undefined` if it was removed (the synchronous {@link range}). */
  readonly rangeNow?: (id: RangeRef) => Range | undefined
  /** `drm_gpusvm_range_unmap_pages`: drop every device address; with `ctx.inNotifier` the caller holds the write lock. */
  readonly rangeUnmapPages: (range: RangeRef, ctx?: Partial<GpuSvmCtx>) => Effect.Effect<void>
  /**
   * `drm_gpusvm_range_evict`: fault the range with no device owner, pulling device pages back; `TimedOut` past the HMM timeout;
   * `OutOfMemory` when the pfn array cannot be allocated (under "6.17" without dropping the mm reference: §11.16).
   */
  readonly rangeEvict: (range: RangeRef) => Effect.Effect<void, BadAddress | TimedOut | OutOfMemory>
  /** `drm_gpusvm_range_remove`: unmap, remove; drop the notifier when it empties. Caller holds the driver SVM lock. */
  readonly rangeRemove: (range: RangeRef) => Effect.Effect<void>
  /** `drm_gpusvm_range_pages_valid`: `hasDevmemPages || hasDmaMapping`. Caller holds the notifier lock. */
  readonly rangePagesValid: (range: RangeRef) => Effect.Effect<boolean>
  /** `drm_gpusvm_range_set_unmapped`: mark unmapped (+ partial). Caller holds the notifier lock for writing. */
  readonly rangeSetUnmapped: (range: RangeRef, mmuRange: MmuRange) => Effect.Effect<void>
  /** `drm_gpusvm_notifier_lock` … `unlock` around `e` (read side). */
  readonly withNotifierLock: <A, E, R>(e: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  /** The write side of the notifier lock (what the invalidation takes). */
  readonly withNotifierWriteLock: <A, E, R>(e: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  /** `drm_gpusvm_has_mapping`: does any range overlap `[start, end)`? */
  readonly hasMapping: (start: number, end: number) => Effect.Effect<boolean>
  /** `drm_gpusvm_find_vma_start`: start of the first VMA intersecting `[start, end)`, or none. */
  readonly findVmaStart: (start: number, end: number) => Effect.Effect<Option.Option<number>>
  /** The live version of a range, or none if it was removed. */
  readonly range: (id: RangeRef) => Effect.Effect<Option.Option<Range>>
  /** Live ranges overlapping `[start, end)` (all if omitted), by address. */
  readonly ranges: (start?: number, end?: number) => Effect.Effect<ReadonlyArray<Range>>
  /** Live notifiers, by address. */
  readonly notifiers: Effect.Effect<ReadonlyArray<Notifier>>
  /** Advisory scan of where a range's pages live (`drm_gpusvm_scan_mm`); never faults. */
  readonly scanMm: (range: RangeRef, pagemapOwner?: string) => Effect.Effect<ScanResult>
  /** `drm_gpusvm_fini`: unregister every notifier, then remove every range. */
  readonly fini: Effect.Effect<void>
  /** Counters since creation: notifiers and ranges created and removed. */
  readonly stats: Effect.Effect<GpuSvmStats>
}

/**
 * The GPU SVM service key.
 *
 * @category services
 */
export class GpuSvm extends Context.Service<GpuSvm, GpuSvmApi>()("gpusvm/GpuSvm") {
  /**
   * `drm_gpusvm_init` as a layer: decodes `config` (a `GpuSvmConfigInput`;
   * `InvalidConfig` names the bad field, or an unknown key) and builds the core
   * over the machine's services. `drm_gpusvm_fini` runs when the layer's scope
   * closes. An already decoded `GpuSvmConfig` is used as it is.
   */
  static readonly layer = (
    config: GpuSvmConfigInput | GpuSvmConfig,
    ops: GpuSvmOps
  ): Layer.Layer<GpuSvm, InvalidConfig, Mm | MmuNotifier | Hmm | Dma> =>
    Layer.effect(
      GpuSvm,
      Effect.tap(make(config, ops), (api) => Effect.addFinalizer(() => api.fini))
    )
}

/**
 * The shared internals of one GPU SVM instance (`struct drm_gpusvm`): its
 * configuration and driver ops, the services it runs on, the state `TxRef` and
 * the notifier lock. The concern modules (`Notifiers`, `Ranges`, `Pages`,
 * `Invalidation`) are functions of a `Core`.
 *
 * @since 0.1.0
 */
import type { TxRef } from "effect"
import type { GpuSvmConfig } from "../../domain/GpuSvmConfig.ts"
import type { Dma } from "../Dma.ts"
import type { GpuSvmApi, GpuSvmOps } from "../GpuSvm.ts"
import type { Hmm } from "../Hmm.ts"
import type { KernelAlloc } from "../KernelAlloc.ts"
import type { Mm } from "../Mm.ts"
import type { MmuNotifier } from "../MmuNotifier.ts"
import type { DeviceMapper } from "../Pagemaps.ts"
import type { Effect } from "effect"
import type { RwLock } from "../../internal/RwLock.ts"
import type { SvmState } from "./State.ts"

/**
 * One GPU SVM instance's internals. `api` is bound once the service is built (callbacks receive it, as C's receive `gpusvm`).
 *
 * @category models
 */
export interface Core {
  readonly config: GpuSvmConfig
  readonly ops: GpuSvmOps
  readonly mm: Mm["Service"]
  readonly mmu: MmuNotifier["Service"]
  readonly hmm: Hmm["Service"]
  readonly dma: Dma["Service"]
  readonly pagemaps: ReadonlyMap<string, DeviceMapper>
  /** The kernel allocator, if the machine provides one (else allocations never fail). */
  readonly alloc: KernelAlloc["Service"] | undefined
  /**
   * The state. Read through `.value` (the committed version: a read outside a
   * transaction needs no journal, and JS runs one fiber step at a time, so it is
   * always a consistent snapshot); written only through `TxRef` transactions.
   */
  readonly state: TxRef.TxRef<SvmState>
  readonly lock: RwLock
  /**
   * One round of a retry loop (get_pages on EBUSY / a moved sequence, evict):
   * `Effect.yieldNow` normally; under the explorer a spin yield point, so the
   * actor it waits for can run.
   */
  readonly spin: Effect.Effect<void>
  readonly api: () => GpuSvmApi
  /** Counters (plain, mutated in `Effect.sync` after the state commits). */
  readonly counters: { notifiersCreated: number; notifiersRemoved: number; rangesCreated: number; rangesRemoved: number; livelocks: number }
}

/**
 * Hard cap on get_pages/evict retry rounds, in addition to the HMM timeout, so that a frozen test clock cannot make a retry loop unbounded.
 *
 * @category constants
 */
export const MAX_RETRY_ROUNDS = 100_000

/**
 * Work budget of the 6.17 profile's get_pages restart loop (kernel-semantics
 * §11.16). The seed restarts on a moved sequence and on `EAGAIN` with no bound
 * at all; here the loop gives up after this many restarts, counts a livelock
 * (`GpuSvmStats.livelocks`, which the scenario runner reports as violation
 * `livelock`) and fails with `Busy` whose reason starts with "livelock", so a
 * run that cannot progress ends instead of hanging.
 *
 * @category constants
 */
export const KERNEL_617_RETRY_BUDGET = 10_000

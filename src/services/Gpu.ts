/**
 * `Gpu`: the device — a GPU page table (VA → device address per page, bound per
 * range) and an access engine. A missing PTE raises a GPU page fault that is
 * handed to the registered fault handler (the driver's), then the access is
 * retried; a present PTE reaches system memory only through the IOMMU (an IOVA
 * with no live DMA mapping is a violation) and VRAM directly. The native
 * machine uses the same simulated GPU.
 *
 * @since 0.1.0
 */
import type { Now } from "../domain/Now.ts"
import { Context, type Effect } from "effect"
import type { DeviceAddress } from "../domain/DeviceAddress.ts"
import type { GpuFaultError } from "../domain/Errors.ts"

/**
 * How the GPU touches memory. `atomic` is a 32-bit atomic increment.
 *
 * @category models
 */
export type AccessMode = "read" | "write" | "atomic"

/**
 * A GPU page fault as the hardware reports it.
 *
 * @category models
 */
export interface GpuPageFault {
  readonly addr: number
  readonly write: boolean
  readonly atomic: boolean
}

/**
 * The driver's page-fault handler the GPU calls on a missing or insufficient PTE.
 *
 * @category models
 */
export type FaultHandler = (fault: GpuPageFault) => Effect.Effect<void, GpuFaultError>

/**
 * GPU counters.
 *
 * @category models
 */
export interface GpuStats {
  readonly faults: number
  readonly tlbFlushes: number
  readonly ptesLive: number
  readonly accesses: number
}

/**
 * `Gpu.access`, typed by mode: a `read` or `atomic` yields the bytes (the old
 * u32 for an atomic), a `write` nothing; with a mode only known at run time,
 * either.
 *
 * @category models
 * @since 0.2.0
 */
export interface GpuAccess {
  (addr: number, length: number, mode: "read" | "atomic"): Effect.Effect<Uint8Array, GpuFaultError>
  (addr: number, length: number, mode: "write", bytes: Uint8Array): Effect.Effect<void, GpuFaultError>
  (addr: number, length: number, mode: AccessMode, bytes?: Uint8Array): Effect.Effect<Uint8Array | void, GpuFaultError>
}

/**
 * Types an access function written over the runtime mode (what a GPU
 * implementation or a test's wrapper naturally writes) as a {@link GpuAccess}.
 * The function must return the bytes for `read` / `atomic` and nothing for
 * `write`, as the contract says.
 *
 * @category constructors
 * @since 0.2.0
 */
export const gpuAccess = (
  f: (addr: number, length: number, mode: AccessMode, bytes?: Uint8Array) => Effect.Effect<Uint8Array | void, GpuFaultError>
): GpuAccess => f as GpuAccess

/**
 * The `Gpu` service's interface (one GPU VM).
 *
 * @category models
 * @since 0.4.0
 */
export interface GpuApi {
  /**
   * A GPU access of `[addr, addr + length)`: `read` returns the bytes, `write`
   * stores `bytes`, `atomic` increments the little-endian u32 at `addr` and
   * returns its old value (4 bytes). Faults are resolved through the handler;
   * `GpuFaultError` when it gives up or none is registered.
   */
  readonly access: GpuAccess
  /**
   * Binds `[rangeStart, rangeEnd)` to device addresses (one per page run, in order), replacing older PTEs.
   * `readOnly`: writes and atomics through them fault. `atomicWindow` (kernel-semantics §11.17): when
   * given, system-memory PTEs carry the atomic bit only inside `[start, end)` — an atomic through one
   * without it faults, as a GPU that cannot do atomics to system memory over its bus faults unless the
   * driver mapped the page for atomics (nouveau's `NVIF_VMM_PFNMAP_V0_A` after `make_device_exclusive`);
   * absent, every PTE carries it. Device-memory PTEs always do.
   */
  readonly bind: (
    rangeStart: number,
    rangeEnd: number,
    addrs: ReadonlyArray<DeviceAddress>,
    o?: { readonly readOnly?: boolean; readonly atomicWindow?: readonly [number, number] }
  ) => Effect.Effect<void>
  /**
   * Fast path of {@link bind} (issue #16, `src/domain/Now.ts`): the PTEs written in the calling step, or
   * `NOT_NOW` (nothing written) when the bind passes a schedule point. Absent on GPUs that cannot bind
   * synchronously.
   */
  readonly bindNow?: (
    rangeStart: number,
    rangeEnd: number,
    addrs: ReadonlyArray<DeviceAddress>,
    o?: { readonly readOnly?: boolean; readonly atomicWindow?: readonly [number, number] }
  ) => Now<void>
  /** Zaps the PTEs of `[start, end)` and flushes the TLB (one flush per call). */
  readonly invalidate: (start: number, end: number) => Effect.Effect<void>
  /** Registers the driver's page-fault handler (the last registration wins). */
  readonly setFaultHandler: (h: FaultHandler) => Effect.Effect<void>
  /** Is any PTE of `[start, end)` present? */
  readonly isBound: (start: number, end: number) => Effect.Effect<boolean>
  /** Counters (this VM's). */
  readonly stats: Effect.Effect<GpuStats>
  /**
   * A new GPU VM on the same device (Xe's `xe_vm_create`; kernel-semantics §11.17, IGT
   * "one VM per thread"): its own GPU page table and fault handler, the same memories. Each
   * `Driver.layer` over it is its own GPU SVM instance on the process's mm.
   */
  readonly createVm: Effect.Effect<GpuApi>
}

/**
 * The simulated GPU.
 *
 * @category services
 */
export class Gpu extends Context.Service<Gpu, GpuApi>()("gpusvm/Gpu") {}

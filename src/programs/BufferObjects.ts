/**
 * Buffer objects and GPU VM binds beside the CPU-address mirror (Xe's
 * `xe_bo_create`, `DRM_IOCTL_XE_VM_BIND` with `DRM_XE_VM_BIND_OP_MAP` of a BO
 * or of `DRM_XE_VM_BIND_FLAG_CPU_ADDR_MIRROR`, and `OP_UNMAP`;
 * kernel-semantics §11.17, IGT xe_exec_system_allocator `bo-unmap`, `busy`,
 * `evict-malloc-mix-bo`).
 *
 * What Xe does, and this file follows:
 * - a BO lives in device memory (`vram_if_possible`), allocated by TTM, which
 *   evicts SVM allocations to make room (VRAM is shared by BOs and SVM);
 * - binding a BO over a window of the mirror first removes the SVM ranges
 *   there (`xe_svm_unmap_address_range`: evict their device pages, unbind,
 *   remove) and then maps the BO's pages; SVM faults never create ranges in a
 *   BO-bound window (the GPU VMA there is the BO's; a fault there rebinds it);
 * - binding the mirror over a BO-bound window replaces the BO mapping (IGT
 *   `bo-unmap`: the BO is bound, then the mirror is bound over it again);
 * - a BO can be mapped by the CPU (`xe_bo_map_fixed`, IGT `new-bo-map`): `memory` hands its device
 *   memory to `Cpu.mmap({ bo })`, whose mapping reads and writes it directly and keeps it allocated
 *   past `destroy` until unmapped (the VMA's reference on the GEM object);
 * - unbinding the mirror fails `EBUSY` while any SVM range there still has GPU
 *   mappings (`xe_svm_has_mapping`, IGT `busy`); once unbound, a GPU fault there
 *   has no GPU VMA and fails.
 *
 * Locking: every operation runs under the driver SVM lock (Xe: the VM lock),
 * so it never races a fault, a collection or a prefetch of the same VM.
 * Errors: bad or overlapping windows, an unknown BO → `InvalidArgument`; no
 * device memory → `OutOfMemory` (the pagemap's); `EBUSY` → `Busy`.
 *
 * @since 0.4.0
 */
import { Effect } from "effect"
import { PAGE_SIZE } from "../domain/Address.ts"
import { type BadAddress, Busy, InvalidArgument, type OutOfMemory } from "../domain/Errors.ts"
import type { DeviceBo, DevicePagemapApi } from "../services/DevicePagemap.ts"
import type { Gpu } from "../services/Gpu.ts"
import type { GpuSvmApi } from "../services/GpuSvm.ts"
import type { DriverState } from "./DriverState.ts"
import * as GarbageCollector from "./GarbageCollector.ts"

/**
 * The BO and bind operations of one GPU VM (the driver's `bo` field).
 *
 * @category models
 * @since 0.4.0
 */
export interface BufferObjectsApi {
  /** `xe_bo_create` in device memory: a BO of `bytes` (a multiple of 4 KiB); returns its id. */
  readonly create: (bytes: number) => Effect.Effect<number, OutOfMemory | BadAddress | InvalidArgument>
  /** `VM_BIND MAP` of BO `bo` at `addr` (page aligned): the SVM ranges there are removed first. */
  readonly bind: (bo: number, addr: number) => Effect.Effect<void, InvalidArgument>
  /**
   * The device memory of BO `bo`, for a CPU mapping of it (`xe_bo_map_fixed`: the caller maps it
   * with `Cpu.mmap({ bo })`, kernel-semantics §11.17). Unknown BO → `InvalidArgument`.
   */
  readonly memory: (bo: number) => Effect.Effect<DeviceBo, InvalidArgument>
  /** `VM_BIND UNMAP` of BO `bo`'s binding: the window returns to the mirror. */
  readonly unbind: (bo: number) => Effect.Effect<void, InvalidArgument>
  /** `gem_close` + last unbind: unbinds BO `bo` if bound and frees its memory. */
  readonly destroy: (bo: number) => Effect.Effect<void, InvalidArgument>
  /** `VM_BIND UNMAP` of the CPU-address mirror over `[start, end)`: `Busy` while an SVM range there has GPU mappings. */
  readonly unbindMirror: (start: number, end: number) => Effect.Effect<void, Busy | InvalidArgument>
  /** `VM_BIND MAP` with `CPU_ADDR_MIRROR` over `[start, end)`: BO bindings there are replaced. */
  readonly bindMirror: (start: number, end: number) => Effect.Effect<void, InvalidArgument>
}

const bad = (reason: string, addr?: number) =>
  addr === undefined ? new InvalidArgument({ reason }) : new InvalidArgument({ reason, addr })

const checkWindow = (call: string, start: number, end: number): InvalidArgument | undefined => {
  if (!Number.isSafeInteger(start) || start < 0 || start % PAGE_SIZE !== 0) return bad(`${call}: start must be a page-aligned address`)
  if (!Number.isSafeInteger(end) || end <= start || end % PAGE_SIZE !== 0) return bad(`${call}: end must be page aligned and above start`, start)
  return undefined
}

/**
 * The BO operations of the VM whose driver state is `st`, over its GPU SVM
 * instance, GPU VM and default pagemap (`undefined`: no device memory, so
 * `create` fails `OutOfMemory`).
 *
 * @category constructors
 * @since 0.4.0
 */
export const make = (
  st: DriverState,
  svm: GpuSvmApi,
  gpu: Gpu["Service"],
  pagemap: DevicePagemapApi | undefined
): BufferObjectsApi => {
  let nextId = 1
  const binds = st.vmBinds

  /** `xe_svm_unmap_address_range`: every SVM range overlapping `[start, end)` evicted, unbound and removed. */
  const dropRanges = (start: number, end: number) =>
    Effect.gen(function*() {
      for (const r of yield* svm.ranges(start, end)) {
        if (r.flags.hasDevmemPages) yield* Effect.ignore(svm.rangeEvict(r))
        yield* GarbageCollector.unbind(gpu, r, st.metrics)
        yield* svm.rangeRemove(r)
        st.seen.delete(r.id)
      }
    })

  const unbindLocked = (bo: number) =>
    Effect.suspend(() => {
      const b = binds.unbindBo(bo)
      return b === undefined ? Effect.void : gpu.invalidate(b.start, b.end)
    })

  const known = (bo: number) => {
    const entry = st.bos.get(bo)
    return entry === undefined ? Effect.fail(bad(`unknown buffer object ${bo}`)) : Effect.succeed(entry)
  }

  return {
    create: (bytes) =>
      st.withSvmLock(Effect.gen(function*() {
        if (pagemap === undefined) return yield* bad("bo_create: the device has no device memory")
        const bo = yield* pagemap.allocateBo(bytes)
        const id = nextId++
        st.bos.set(id, { bo, pagemap })
        return id
      })),
    bind: (bo, addr) =>
      st.withSvmLock(Effect.gen(function*() {
        const { bo: mem } = yield* known(bo)
        const end = addr + mem.bytes
        const err = checkWindow("vm_bind", addr, end)
        if (err !== undefined) return yield* err
        if (binds.bos.some((b) => b.bo === bo)) return yield* bad(`vm_bind: buffer object ${bo} is already bound`, addr)
        if (binds.bosIn(addr, end).length > 0) return yield* bad("vm_bind: the window overlaps another buffer object's binding", addr)
        yield* dropRanges(addr, end)
        binds.bindBo(bo, addr, end)
        yield* gpu.bind(addr, end, mem.addrs)
      })),
    memory: (bo) => Effect.map(known(bo), (entry) => entry.bo),
    unbind: (bo) =>
      st.withSvmLock(Effect.gen(function*() {
        yield* known(bo)
        if (!binds.bos.some((b) => b.bo === bo)) return yield* bad(`vm_unbind: buffer object ${bo} is not bound`)
        yield* unbindLocked(bo)
      })),
    destroy: (bo) =>
      st.withSvmLock(Effect.gen(function*() {
        const { bo: mem, pagemap: pm } = yield* known(bo)
        yield* unbindLocked(bo)
        st.bos.delete(bo)
        yield* pm.freeBo(mem)
      })),
    unbindMirror: (start, end) =>
      st.withSvmLock(Effect.gen(function*() {
        const err = checkWindow("vm_unbind", start, end)
        if (err !== undefined) return yield* err
        const ranges = yield* svm.ranges(start, end)
        for (const r of ranges) {
          if (yield* gpu.isBound(r.start, r.end)) {
            return yield* new Busy({ reason: "vm_unbind: an SVM range of the CPU-address mirror still has GPU mappings (xe_svm_has_mapping)", addr: r.start })
          }
        }
        yield* dropRanges(start, end)
        binds.unmirror(start, end)
      })),
    bindMirror: (start, end) =>
      st.withSvmLock(Effect.gen(function*() {
        const err = checkWindow("vm_bind", start, end)
        if (err !== undefined) return yield* err
        for (const b of binds.bosIn(start, end)) yield* unbindLocked(b.bo)
        binds.mirror(start, end)
      }))
  }
}

/**
 * Every BO of the VM unbound and freed (the VM's teardown, before
 * `drm_gpusvm_fini`, as `xe_vm_close_and_put` drops its BO mappings; the GPU
 * VM itself goes away, so no PTE is zapped). Caller holds the driver SVM lock.
 *
 * @category functions
 * @since 0.4.0
 */
export const teardown = (st: DriverState): Effect.Effect<void> =>
  Effect.suspend(() =>
    Effect.forEach([...st.bos], ([id, { bo, pagemap }]) =>
      Effect.andThen(Effect.sync(() => {
        st.vmBinds.unbindBo(id)
        st.bos.delete(id)
      }), pagemap.freeBo(bo)), { discard: true })
  )

/**
 * The fault path's check (kernel-semantics §11.17): `"bo"` — the fault is in
 * a BO-bound window (the caller rebinds it, no SVM range); `"unmirrored"` —
 * no GPU VMA there (the mirror is unbound); `"mirror"` — an ordinary SVM fault.
 *
 * @category functions
 * @since 0.4.0
 */
export const classify = (st: DriverState, addr: number): "bo" | "unmirrored" | "mirror" => {
  const binds = st.vmBinds
  if (binds.plain) return "mirror"
  if (binds.boAt(addr) !== undefined) return "bo"
  return binds.mirrored(addr) ? "mirror" : "unmirrored"
}

/**
 * Rebinds the BO holding `addr` (a GPU fault in its window: its PTEs were
 * zapped). Caller holds the driver SVM lock.
 *
 * @category functions
 * @since 0.4.0
 */
export const rebindAt = (st: DriverState, gpu: Gpu["Service"], addr: number): Effect.Effect<void> =>
  Effect.suspend(() => {
    const b = st.vmBinds.boAt(addr)
    const entry = b === undefined ? undefined : st.bos.get(b.bo)
    return b === undefined || entry === undefined ? Effect.void : gpu.bind(b.start, b.end, entry.bo.addrs)
  })

/**
 * `Prefetch.run(start, end, { to })`: migrate and bind ahead of use (Xe's
 * VM_BIND prefetch). Under the driver SVM lock, walk the window: skip holes
 * (`findVmaStart`), create ranges as a fault would, migrate to device memory
 * (`to: "vram"`, if a pagemap exists and the range may migrate) or evict to
 * RAM (`to: "system"`), get pages and bind. Errors of one range are retried by
 * faulting it through the normal handler later; prefetch itself only fails if
 * a range cannot be created, or the address space has exited (§3.2: a
 * `GpuFaultError` whose cause is the `BadAddress` of `mmget_not_zero`, as a
 * fault after exit).
 *
 * @since 0.1.0
 */
import { Effect, Option, Result } from "effect"
import { alignUp } from "../domain/Address.ts"
import { GpuFaultError } from "../domain/Errors.ts"
import type { DevicePagemapApi } from "../services/DevicePagemap.ts"
import * as Attributes from "./Attributes.ts"
import type { FaultEnv } from "./FaultHandler.ts"
import { bindRange, migrateRange } from "./FaultHandler.ts"
import * as GarbageCollector from "./GarbageCollector.ts"
import * as Metrics from "./Metrics.ts"

/**
 * Where to put the window.
 *
 * @category models
 */
export interface PrefetchOptions {
  readonly to: "vram" | "system"
}

/**
 * Runs one prefetch of `[start, end)`; `pagemap` is the target for `vram` (none: stays in RAM).
 *
 * @category functions
 */
export const run = (env: FaultEnv, pagemap: DevicePagemapApi | undefined) =>
(start: number, end: number, o: PrefetchOptions): Effect.Effect<void, GpuFaultError> =>
  env.st.withSvmLock(Effect.gen(function*() {
    const { svm, st } = env
    yield* GarbageCollector.run(st, svm, env.gpu)
    let addr = start
    while (addr < end) {
      const vmaStart = yield* svm.findVmaStart(addr, end)
      if (Option.isNone(vmaStart)) {
        // No VMA left in the window, or no address space at all: Xe's prefetch
        // calls drm_gpusvm_range_find_or_insert first, whose mmget_not_zero fails
        // once the process exited (kernel-semantics §3.2, EFAULT) — so a prefetch
        // after exit fails like a fault after exit, it does not succeed silently.
        const mm = yield* Effect.result(env.mm.acquire)
        if (Result.isFailure(mm)) return yield* GpuFaultError.of(addr, "prefetch: the address space has exited", mm.failure)
        return yield* env.mm.release
      }
      addr = Math.max(addr, vmaStart.value)
      const vma = yield* env.mm.vmaLookup(addr)
      if (Option.isNone(vma)) {
        addr = alignUp(addr + 1, 4096)
        continue
      }
      // §11.3: read-only only through a read-only mirror, as in the fault handler.
      const readOnly = st.options.readOnlyMirror && !vma.value.prot.write
      const ctx = { readOnly, devmemPossible: pagemap !== undefined, checkPagesThreshold: 0 }
      // the madvise piece is the GPU VMA: ranges never cross one (Attributes.pieceAt)
      const piece = Attributes.pieceAt(st, addr)
      const found = yield* Effect.result(svm.rangeFindOrInsert(addr, piece.start, piece.end, ctx))
      if (Result.isFailure(found)) {
        return yield* GpuFaultError.of(addr, "prefetch: no GPU SVM range", found.failure)
      }
      const range = found.success
      if (o.to === "vram" && pagemap !== undefined && range.flags.migrateDevmem) {
        const where = yield* svm.scanMm(range, pagemap.owner)
        if (where !== "equal") yield* migrateRange(env, pagemap, range, st.options.timesliceMs).pipe(Effect.ignore)
      } else if (o.to === "system") {
        const evicted = yield* Effect.result(svm.rangeEvict(range))
        if (Result.isSuccess(evicted) && range.flags.hasDevmemPages) Metrics.add(st.metrics, Metrics.bytesToRamTotal, range.end - range.start)
      }
      const got = yield* Effect.result(svm.rangeGetPages(range, ctx))
      if (Result.isSuccess(got)) yield* bindRange(env, range, readOnly)
      addr = Math.min(range.end, end)
    }
  }))

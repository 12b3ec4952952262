/**
 * `Attributes`: the driver's Xe madvise attributes — `DRM_IOCTL_XE_MADVISE`
 * (`xe_vm_madvise_ioctl`) and `VM_QUERY_MEM_RANGE_ATTRS`
 * (`xe_vm_query_vmas_attrs_ioctl`) over the pieces of the GPU VA window kept in
 * `DriverState.attrs` (one per driver instance, i.e. per VM), and the rules
 * the fault handler and the `xe` migration policy read them by:
 * `xe_vma_need_vram_for_atomic` (atomic `cpu` → `EACCES`, `device` needs VRAM
 * unless the device has atomics on system memory, `global` / `undefined` need
 * VRAM), `xe_vma_resolve_pagemap` (preferred location `system` → none,
 * `device` → the device's own pagemap, a pagemap id → that pagemap). (The
 * collector's `xe_svm_range_set_default_attr` is in `GarbageCollector`.)
 *
 * A madvise, under the driver SVM lock (Xe's `vm->lock` for writing): flush the
 * collector (`xe_svm_flush`); then per attribute kind given (preferred location
 * with its migration policy, atomic, PAT — one ioctl each, in that order): cut
 * the pieces at the window's ends (`xe_vm_alloc_madvise_vma`), removing the
 * GPU SVM ranges that straddle a cut as `xe_svm_unmap_address_range` does
 * (evict what is in VRAM, unbind, remove); set the value; and zap the GPU PTEs
 * of the ranges in the pieces whose value changed, under the notifier lock
 * (`xe_zap_ptes_in_madvise_range`): none when nothing changed.
 *
 * @since 0.3.0
 */
import { Effect } from "effect"
import { hex, PAGE_SIZE } from "../domain/Address.ts"
import { AccessDenied, InvalidArgument } from "../domain/Errors.ts"
import * as MA from "../domain/MemAttrs.ts"
import type { DevicePagemapApi } from "../services/DevicePagemap.ts"
import type { Gpu } from "../services/Gpu.ts"
import type { GpuSvmApi } from "../services/GpuSvm.ts"
import type { DriverState } from "./DriverState.ts"
import * as GarbageCollector from "./GarbageCollector.ts"
import * as Metrics from "./Metrics.ts"

/**
 * The attributes one `Driver.madvise` sets (at least one). `migrationPolicy`
 * goes with `preferredLoc` (the uapi's `preferred_mem_loc` carries both; it
 * defaults to `"all-pages"`, `DRM_XE_MIGRATE_ALL_PAGES`).
 *
 * @category models
 * @since 0.3.0
 */
export interface MadviseAttrs {
  /** `"device"`, `"system"` or a pagemap id (`preferred_mem_loc.devmem_fd`). */
  readonly preferredLoc?: MA.PreferredLoc
  readonly migrationPolicy?: MA.MigrationPolicyAttr
  readonly atomic?: MA.AtomicAttr
  /** A PAT index below `PAT_ENTRIES`. */
  readonly pat?: number
}

/**
 * What a madvise needs of the driver.
 *
 * @category models
 * @since 0.3.0
 */
export interface AttrEnv {
  readonly st: DriverState
  readonly svm: GpuSvmApi
  readonly gpu: Gpu["Service"]
}

const bad = (reason: string, addr?: number) => new InvalidArgument(addr === undefined ? { reason } : { reason, addr })

/** `madvise_args_are_sane` / the query's checks on the window: page-aligned, not empty, inside the GPU VA window. */
const windowIssue = (st: DriverState, what: string, start: number, end: number): InvalidArgument | undefined => {
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end)) return bad(`${what}: start and end must be safe integers`)
  if (start % PAGE_SIZE !== 0 || end % PAGE_SIZE !== 0) return bad(`${what}: [${hex(start)}, ${hex(end)}) is not 4 KiB aligned`, start)
  if (end - start < PAGE_SIZE) return bad(`${what}: empty window [${hex(start)}, ${hex(end)})`, start)
  const o = st.options
  if (start < o.gpuvaStart || end > o.gpuvaEnd) {
    return bad(`${what}: [${hex(start)}, ${hex(end)}) is outside the GPU VA window [${hex(o.gpuvaStart)}, ${hex(o.gpuvaEnd)})`, start)
  }
  return undefined
}

/** The per-kind values of `attrs`, in ioctl order, or the reason they are refused. */
const kindsOf = (st: DriverState, a: MadviseAttrs): ReadonlyArray<readonly [MA.AttrKind, MA.MemAttrs]> | InvalidArgument => {
  const out: Array<readonly [MA.AttrKind, MA.MemAttrs]> = []
  if (a.preferredLoc !== undefined) {
    const loc = a.preferredLoc
    if (loc !== "device" && loc !== "system" && !st.attrs.pagemaps.some((p) => p.id === loc)) {
      return bad(`madvise: unknown pagemap ${JSON.stringify(loc)} as preferred location (known: device, system${st.attrs.pagemaps.map((p) => `, ${p.id}`).join("")})`)
    }
    const policy = a.migrationPolicy ?? "all-pages"
    if (!MA.MIGRATION_POLICIES.includes(policy)) return bad(`madvise: unknown migration policy ${JSON.stringify(policy)}`)
    out.push(["preferred-loc", { ...MA.DEFAULT_ATTRS, preferredLoc: loc, migrationPolicy: policy }])
  } else if (a.migrationPolicy !== undefined) {
    return bad("madvise: migrationPolicy is part of the preferred location: give preferredLoc with it")
  }
  if (a.atomic !== undefined) {
    if (!MA.ATOMIC_ATTRS.includes(a.atomic)) return bad(`madvise: unknown atomic attribute ${JSON.stringify(a.atomic)}`)
    out.push(["atomic", { ...MA.DEFAULT_ATTRS, atomic: a.atomic }])
  }
  if (a.pat !== undefined) {
    if (!Number.isSafeInteger(a.pat) || a.pat < 0 || a.pat >= MA.PAT_ENTRIES) {
      return bad(`madvise: PAT index ${a.pat} is not below the ${MA.PAT_ENTRIES} entries of the PAT table`)
    }
    out.push(["pat", { ...MA.DEFAULT_ATTRS, pat: a.pat }])
  }
  if (out.length === 0) return bad("madvise: no attribute given (preferredLoc, atomic or pat)")
  return out
}

/**
 * `xe_svm_unmap_address_range` over the part `[start, end)` of a piece being
 * cut: every GPU SVM range overlapping it but not inside it is evicted (if in
 * VRAM), unbound and removed, and dropped from the collector's queue.
 */
const unmapStraddling = Effect.fnUntraced(function*(env: AttrEnv, start: number, end: number) {
  const { st, svm, gpu } = env
  for (const r of yield* svm.ranges(start, end)) {
    if (r.start >= start && r.end <= end) continue
    if (r.flags.hasDevmemPages) yield* Effect.ignore(svm.rangeEvict(r))
    yield* Effect.uninterruptible(Effect.andThen(GarbageCollector.unbind(gpu, r, st.metrics), svm.rangeRemove(r)))
    Metrics.add(st.metrics, Metrics.rangesRemovedTotal)
    st.seen.delete(r.id)
    const q = st.gcQueue.findIndex((x) => x.id === r.id)
    if (q >= 0) st.gcQueue.splice(q, 1)
  }
})

/**
 * `xe_zap_ptes_in_madvise_range`: under the notifier lock, zap the PTEs of every
 * bound range in the pieces whose value changed (whole ranges,
 * `xe_svm_ranges_zap_ptes_in_range`); counts one madvise invalidation if any.
 */
const zapChanged = Effect.fnUntraced(function*(env: AttrEnv, changed: MA.AttrMap) {
  const { st, svm, gpu } = env
  let any = false
  for (const p of changed) {
    for (const r of yield* svm.ranges(p.start, p.end)) {
      if (!(yield* gpu.isBound(r.start, r.end))) continue
      any = true
      Metrics.add(st.metrics, Metrics.tlbFlushesTotal)
      yield* gpu.invalidate(r.start, r.end)
    }
  }
  if (any) Metrics.add(st.metrics, Metrics.madviseInvalidationsTotal)
})

/** The body of {@link madvise}, under the driver SVM lock. */
const madviseLocked = Effect.fnUntraced(function*(env: AttrEnv, start: number, end: number, kinds: ReadonlyArray<readonly [MA.AttrKind, MA.MemAttrs]>) {
  const { st, svm, gpu } = env
  // xe_svm_flush: the collector runs first, so the view of the ranges is current.
  yield* GarbageCollector.run(st, svm, gpu)
  for (const [kind, value] of kinds) {
    const applied = MA.apply(st.attrs.map, start, end, kind, value)
    // xe_vm_alloc_madvise_vma → vm_bind_ioctl_ops_parse (REMAP of a mirror VMA
    // with a madvise flag): ranges straddling a cut go (xe_svm_unmap_address_range).
    for (const [s, e] of applied.cut) yield* unmapStraddling(env, s, e)
    st.attrs.map = applied.map
    if (applied.changed.length > 0) yield* svm.withNotifierLock(zapChanged(env, applied.changed))
  }
})

/**
 * `Driver.madvise(start, end, attrs)`: `DRM_IOCTL_XE_MADVISE` for each kind
 * given. Takes the driver SVM lock. Errors: `InvalidArgument` for an
 * unaligned, empty or out-of-window range (`madvise_args_are_sane`), an
 * unknown pagemap, atomic value or migration policy, a PAT index past the
 * table, or no attribute at all; nothing changes then.
 *
 * @category functions
 * @since 0.3.0
 */
export const madvise = (env: AttrEnv) => (start: number, end: number, attrs: MadviseAttrs): Effect.Effect<void, InvalidArgument> => {
  const issue = windowIssue(env.st, "madvise", start, end)
  if (issue !== undefined) return Effect.fail(issue)
  const kinds = kindsOf(env.st, attrs)
  if (kinds instanceof InvalidArgument) return Effect.fail(kinds)
  return env.st.withSvmLock(madviseLocked(env, start, end, kinds))
}

/**
 * `Driver.queryAttrs(start, end)`: `VM_QUERY_MEM_RANGE_ATTRS` — the pieces
 * overlapping the window, whole, in address order. Errors: `InvalidArgument`
 * for an unaligned, empty or out-of-window range.
 *
 * @category functions
 * @since 0.3.0
 */
export const queryAttrs = (st: DriverState) => (start: number, end: number): Effect.Effect<MA.AttrMap, InvalidArgument> => {
  const issue = windowIssue(st, "query attributes", start, end)
  if (issue !== undefined) return Effect.fail(issue)
  return Effect.sync(() => MA.query(st.attrs.map, start, end))
}

/**
 * The piece of the GPU VA window containing `addr` (the GPU VMA a fault at
 * `addr` is in, whose bounds are the `gpuva_start` / `gpuva_end` of
 * `find_or_insert`, so no range crosses a piece); the whole window if `addr` is
 * outside it.
 *
 * @category functions
 * @since 0.3.0
 */
export const pieceAt = (st: DriverState, addr: number): MA.AttrRange =>
  MA.pieceAt(st.attrs.map, addr) ?? { start: st.options.gpuvaStart, end: st.options.gpuvaEnd, attrs: MA.DEFAULT_ATTRS }

/**
 * `xe_vma_need_vram_for_atomic`: does a fault (`atomic` or not) on a piece
 * with `attrs` need VRAM? Only atomics on a discrete device (one with a
 * pagemap) do: `device` unless `deviceAtomicsOnSmem`, `global` and `undefined`
 * always; `cpu` is `AccessDenied` (`EACCES`: the GPU may not do atomics there).
 *
 * @category functions
 * @since 0.3.0
 */
export const needVramForAtomic = (st: DriverState, attrs: MA.MemAttrs, atomic: boolean, addr: number): boolean | AccessDenied => {
  if (!atomic || st.attrs.pagemaps.length === 0) return false
  switch (attrs.atomic) {
    case "device":
      return !st.options.deviceAtomicsOnSmem
    case "cpu":
      return new AccessDenied({ reason: "GPU atomic on a range whose madvise atomic attribute is cpu", addr })
    default:
      return true
  }
}

/**
 * `xe_vma_resolve_pagemap`: the pagemap a piece's preferred location names
 * among `pagemaps` — none for `system`, the device's own (the first) for
 * `device`, the named one otherwise (none if it is gone).
 *
 * @category functions
 * @since 0.3.0
 */
export const resolvePagemap = (pagemaps: ReadonlyArray<DevicePagemapApi>, attrs: MA.MemAttrs): DevicePagemapApi | undefined =>
  attrs.preferredLoc === "system"
    ? undefined
    : attrs.preferredLoc === "device"
    ? pagemaps[0]
    : pagemaps.find((p) => p.id === attrs.preferredLoc)

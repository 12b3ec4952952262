/**
 * Range management: `drm_gpusvm_range_find_or_insert` (kernel-semantics §3),
 * `drm_gpusvm_range_remove`, `drm_gpusvm_range_set_unmapped`,
 * `drm_gpusvm_has_mapping`, `drm_gpusvm_find_vma_start` and `drm_gpusvm_fini`
 * (§5).
 *
 * Locking: `findOrInsert` and `remove` are called under the driver SVM lock
 * (the caller's); they take the mmap read lock and the notifier lock where the
 * kernel does. `setUnmapped` is called with the notifier lock held for writing.
 *
 * @since 0.1.0
 */
import { Clock, Effect, Option, Result } from "effect"
import { alignDown, alignUp, hex, isAddress, isEnd } from "../../domain/Address.ts"
import * as ChunkSize from "../../domain/ChunkSize.ts"
import { BadAddress, InvalidArgument, PermissionDenied, VmaNotFound } from "../../domain/Errors.ts"
import { mmEnd } from "../../domain/GpuSvmConfig.ts"
import * as Ctx from "../../domain/GpuSvmCtx.ts"
import type { GpuSvmCtx } from "../../domain/GpuSvmCtx.ts"
import * as IT from "../../domain/IntervalTree.ts"
import type { MmuRange } from "../../domain/MmuRange.ts"
import type { Notifier } from "../../domain/Notifier.ts"
import type { NotifierHandle } from "../../domain/NotifierHandle.ts"
import { NOT_NOW, type Now } from "../../domain/Now.ts"
import type { VmaView } from "../Mm.ts"
import { type Range, SEQ_NEVER } from "../../domain/Range.ts"
import * as Flags from "../../domain/RangeFlags.ts"
import type { RangeRef } from "../GpuSvm.ts"
import type { Core } from "./Core.ts"
import { MAX_RETRY_ROUNDS } from "./Core.ts"
import * as Lock from "../../internal/RwLock.ts"
import * as Notifiers from "./Notifiers.ts"
import { unmapDma } from "./Pages.ts"
import * as State from "./State.ts"
import * as TxSync from "../../internal/TxSync.ts"

/**
 * `drm_gpusvm_check_pages`: is every CPU page of `[start, end)` present? A
 * non-faulting HMM walk; `EBUSY` is retried with a fresh sequence until the HMM
 * timeout, as get_pages does (kernel-semantics §11.13); any other error, or
 * `EBUSY` past the timeout, counts as "no". Caller holds the mmap read lock.
 */
const checkPages = Effect.fnUntraced(function*(core: Core, h: NotifierHandle, start: number, end: number) {
  const deadline = (yield* Clock.currentTimeMillis) + core.config.hmmTimeoutMs
  let seq = yield* core.mmu.readBegin(h)
  for (let tries = 0;; tries++) {
    const res = yield* Effect.result(core.hmm.rangeFault({
      notifier: h,
      notifierSeq: seq,
      start,
      end,
      fault: false,
      write: false,
      devicePrivateOwner: core.config.devicePrivateOwner
    }))
    if (Result.isSuccess(res)) return res.success.every((p) => p.valid)
    if (res.failure._tag !== "Busy") return false
    if ((yield* Clock.currentTimeMillis) > deadline || tries >= MAX_RETRY_ROUNDS) return false
    yield* Effect.yieldNow
    seq = yield* core.mmu.readBegin(h)
  }
})

/** Steps 4–8 of §3, under the mmap read lock, for notifier `n` (new when `alloc`). */
const lookupOrCreate = Effect.fnUntraced(function*(
  core: Core,
  n: Notifier,
  alloc: boolean,
  faultAddr: number,
  gpuvaStart: number,
  gpuvaEnd: number,
  ctx: GpuSvmCtx
) {
  const vmaOpt = yield* core.mm.vmaLookup(faultAddr)
  if (Option.isNone(vmaOpt)) return yield* new VmaNotFound({ reason: "no VMA contains the fault address", addr: faultAddr })
  const vma = vmaOpt.value
  if (!ctx.readOnly && !vma.prot.write) {
    return yield* new PermissionDenied({ reason: "write fault on a VMA without write permission", addr: faultAddr })
  }
  const live = State.notifierAt(core.state.value, n.start) ?? n
  const existing = State.rangeAt(live, faultAddr)
  if (existing !== undefined) return existing
  // the input is this step's snapshot (`live`), so the selection runs now: no extra step (issue #16)
  const window = yield* ChunkSize.selectNow(
    chunkInput(core, n, live, vma, faultAddr, gpuvaStart, gpuvaEnd, ctx),
    (start, end) => checkPages(core, n.handle, start, end)
  )
  if (window === undefined) {
    return yield* new InvalidArgument({ reason: "no chunk size fits the VMA, notifier and GPU VA window", addr: faultAddr })
  }
  return yield* Lock.withReadSync(core.lock, () => createRange(core, n, alloc, window, vma, ctx))
})

/** Step 7's input: the VMA, notifier and GPU VA bounds, and the ranges of `live` (this step's notifier). */
const chunkInput = (
  core: Core,
  n: Notifier,
  live: Notifier,
  vma: VmaView,
  faultAddr: number,
  gpuvaStart: number,
  gpuvaEnd: number,
  ctx: GpuSvmCtx
): Omit<ChunkSize.ChunkSizeInput, "allPagesPresent"> => ({
  faultAddr,
  vmaStart: vma.start,
  vmaEnd: vma.end,
  notifierStart: n.start,
  notifierEnd: n.end,
  gpuvaStart,
  gpuvaEnd,
  chunkSizes: core.config.chunkSizes,
  checkPagesThreshold: ctx.checkPagesThreshold,
  overlapsRange: (start, end) => IT.first(live.ranges, start, end - 1) !== undefined
})

/** Step 8, synchronous, notifier lock held (or free: see `RwLock.withReadSync`): insert the new range (and a new notifier). */
const createRange = (core: Core, n: Notifier, alloc: boolean, window: ChunkSize.ChunkWindow, vma: VmaView, ctx: GpuSvmCtx): Range => {
  // §11.7: "anonymous" is vma_is_anonymous — MAP_SHARED|MAP_ANONYMOUS is shmem, never migrate_devmem.
  const migrateDevmem = ctx.devmemPossible && vma.kind === "anonymous" && !vma.shared
  const created = TxSync.modifyNow(core.state, (s0): [Range, State.SvmState] => {
    const [id, s1] = State.takeId(s0)
    const s2 = alloc ? State.insertNotifier(s1, n) : s1
    const range: Range = {
      id,
      start: window.start,
      end: window.end,
      notifierStart: n.start,
      notifierSeq: SEQ_NEVER,
      flags: { ...Flags.NONE, migrateDevmem }
    }
    return [range, State.insertRange(s2, range)]
  })
  core.counters.rangesCreated++
  if (alloc) core.counters.notifiersCreated++
  return created
}

/** Steps 3–8 of §3 with the address space held: find or register the notifier, then look up or create under the mmap read lock. */
const findOrCreate = Effect.fnUntraced(function*(
  core: Core,
  faultAddr: number,
  gpuvaStart: number,
  gpuvaEnd: number,
  ctx: GpuSvmCtx
) {
  const existing = State.notifierAt(core.state.value, faultAddr)
  const alloc = existing === undefined
  const size = core.config.notifierSize
  const n = existing ?? (yield* Notifiers.register(core, alignDown(faultAddr, size), alignUp(faultAddr + 1, size)))
  return yield* core.mm.withReadLock(lookupOrCreate(core, n, alloc, faultAddr, gpuvaStart, gpuvaEnd, ctx)).pipe(
    Effect.onError(() => (alloc ? core.mmu.remove(n.handle) : Effect.void))
  )
})

/** Step 1–2 of §3: the fault address inside the GPU SVM, a well-formed GPU VA window. */
const argumentError = (core: Core, faultAddr: number, gpuvaStart: number, gpuvaEnd: number): InvalidArgument | undefined => {
  if (!isAddress(faultAddr) || faultAddr < core.config.mmStart || faultAddr >= mmEnd(core.config)) {
    return new InvalidArgument({
      reason: `fault address outside the GPU SVM [${hex(core.config.mmStart)}, ${hex(mmEnd(core.config))})`,
      addr: faultAddr
    })
  }
  if (!isAddress(gpuvaStart) || !isEnd(gpuvaEnd) || gpuvaEnd <= gpuvaStart) {
    return new InvalidArgument({ reason: `malformed GPU VA window [${gpuvaStart}, ${gpuvaEnd})`, addr: faultAddr })
  }
  return undefined
}

/**
 * The synchronous fast path of {@link findOrInsert} (issue #16, `src/domain/Now.ts`): the existing range,
 * or a new one, decided and committed in the calling step — where the notifier exists already (a new one
 * is an MMU notifier registration), the mmap read lock and the notifier lock are free, the VMA allows the
 * fault and the chunk selection needs no present-pages walk; else `NOT_NOW` with nothing changed (the
 * Effect version then does it, with its errors). Caller holds the driver SVM lock, as for `findOrInsert`.
 *
 * @category functions
 * @since 0.5.0
 */
export const findOrInsertNow = (core: Core) => (faultAddr: number, gpuvaStart: number, gpuvaEnd: number, ctxIn?: Partial<GpuSvmCtx>): Now<Range> => {
  const readNow = core.mm.readNow
  if (readNow === undefined || argumentError(core, faultAddr, gpuvaStart, gpuvaEnd) !== undefined) return NOT_NOW
  const n = State.notifierAt(core.state.value, faultAddr)
  if (n === undefined) return NOT_NOW
  const ctx = Ctx.make(ctxIn)
  return readNow((vmaLookup): Now<Range> => {
    const vma = vmaLookup(faultAddr)
    if (vma === undefined || (!ctx.readOnly && !vma.prot.write)) return NOT_NOW
    const existing = State.rangeAt(n, faultAddr)
    if (existing !== undefined) return existing
    let walk = false
    const window = ChunkSize.select({
      ...chunkInput(core, n, n, vma, faultAddr, gpuvaStart, gpuvaEnd, ctx),
      allPagesPresent: () => {
        walk = true
        return false
      }
    })
    if (walk || window === undefined || !core.lock.canReadNow()) return NOT_NOW
    return createRange(core, n, false, window, vma, ctx)
  })
}

/**
 * `drm_gpusvm_range_find_or_insert`, kernel-semantics §3 in order: `InvalidArgument`
 * outside `[mmStart, mmStart + mmRange)` (exclusive end, unlike the seed) or for a
 * malformed GPU VA window; `BadAddress` if the address space is gone; the
 * notifier found or created and registered; `VmaNotFound` / `PermissionDenied`
 * from the VMA; an existing range returned as is; else a new range of the chunk
 * size `ChunkSize` selects (`InvalidArgument` if none fits). A notifier created
 * by a failed call is unregistered and dropped.
 *
 * @category functions
 */
export const findOrInsert = (core: Core) =>
  Effect.fnUntraced(function*(faultAddr: number, gpuvaStart: number, gpuvaEnd: number, ctxIn?: Partial<GpuSvmCtx>) {
    const ctx = Ctx.make(ctxIn)
    const bad = argumentError(core, faultAddr, gpuvaStart, gpuvaEnd)
    if (bad !== undefined) return yield* bad
    yield* core.mm.acquire
    return yield* findOrCreate(core, faultAddr, gpuvaStart, gpuvaEnd, ctx).pipe(Effect.ensuring(core.mm.release))
  })

/**
 * `drm_gpusvm_range_remove`: under the notifier lock, unmap the pages and drop
 * the range; if its notifier is now empty, drop the notifier and unregister its
 * MMU notifier (unless already removed). A removed or unknown range is a no-op.
 *
 * @category functions
 */
export const remove = (core: Core) =>
  Effect.fnUntraced(function*(ref: RangeRef) {
    const removed = yield* Lock.withRead(
      core.lock,
      Effect.gen(function*() {
        const r = State.live(core.state.value, ref)
        if (r === undefined) return undefined
        yield* unmapDma(core, r)
        yield* TxSync.update(core.state, (s) => State.removeRange(s, r))
        core.counters.rangesRemoved++
        return r
      })
    )
    if (removed === undefined) return
    const emptied = yield* TxSync.modify(core.state, (s): [Notifier | undefined, State.SvmState] => {
      const n = State.notifierAt(s, removed.notifierStart)
      return n !== undefined && IT.isEmpty(n.ranges) ? [n, State.removeNotifier(s, n)] : [undefined, s]
    })
    if (emptied === undefined) return
    core.counters.notifiersRemoved++
    if (!emptied.removed) yield* core.mmu.remove(emptied.handle)
  })

/**
 * `drm_gpusvm_range_set_unmapped`: mark the range unmapped, and partially
 * unmapped if it is not entirely inside `mmuRange`. Caller holds the notifier
 * lock for writing (the invalidate callback).
 *
 * @category functions
 */
export const setUnmapped = (core: Core) => (ref: RangeRef, mmuRange: MmuRange): Effect.Effect<void> =>
  TxSync.update(core.state, (s) =>
    State.updateRange(s, ref, (r) => ({
      ...r,
      flags: {
        ...r.flags,
        unmapped: true,
        partialUnmap: r.flags.partialUnmap || r.start < mmuRange.start || r.end > mmuRange.end
      }
    })))

/**
 * `drm_gpusvm_has_mapping`: does any range overlap `[start, end)`?
 *
 * @category functions
 */
export const hasMapping = (core: Core) => (start: number, end: number): Effect.Effect<boolean> =>
  Effect.sync(() => State.rangesIn(core.state.value, start, end).length > 0)

/**
 * `drm_gpusvm_find_vma_start`: start of the first VMA intersecting `[start, end)`
 * under the mmap read lock; none if there is none or the address space is gone.
 *
 * @category functions
 */
export const findVmaStart = (core: Core) => (start: number, end: number): Effect.Effect<Option.Option<number>> =>
  core.mm.acquire.pipe(
    Effect.andThen(
      core.mm.withReadLock(core.mm.findVmaIntersection(start, end)).pipe(
        Effect.map(Option.map((v) => v.start)),
        Effect.ensuring(core.mm.release)
      )
    ),
    Effect.catchTag("BadAddress", (_: BadAddress) => Effect.succeed(Option.none<number>()))
  )

/**
 * `drm_gpusvm_fini`: unregister every notifier first (so no invalidation races
 * the teardown), then remove every range; afterwards no notifier, range or DMA
 * mapping remains.
 *
 * @category functions
 */
export const fini = (core: Core) =>
  Effect.gen(function*() {
    const removeRange = remove(core)
    for (const n of State.allNotifiers(core.state.value)) {
      if (!n.removed) yield* core.mmu.remove(n.handle)
      yield* TxSync.update(core.state, (s) => State.updateNotifier(s, n.start, (x) => ({ ...x, removed: true })))
      for (const e of IT.toArray(n.ranges)) yield* removeRange(e.value)
    }
    const left = IT.size((core.state.value).notifiers)
    core.counters.notifiersRemoved += left
    yield* TxSync.update(core.state, (s) => ({ ...s, notifiers: IT.empty() }))
  })

/**
 * A range's pages: `drm_gpusvm_range_get_pages` (kernel-semantics §4),
 * `drm_gpusvm_range_unmap_pages`, `drm_gpusvm_range_evict`,
 * `drm_gpusvm_range_pages_valid` (§5) and the advisory `drm_gpusvm_scan_mm`.
 *
 * Upstream fixes over the seed, each tested by name:
 * - "Limit the number of retries in drm_gpusvm_get_pages": every retry (HMM
 *   `EBUSY` and the notifier-moved restart) is bounded by `hmmTimeoutMs` of the
 *   Effect clock, then `Busy`.
 * - "fix hmm_pfn_to_map_order() usage" (CVE-2025-40336): a run's order is
 *   clamped to what is left of its huge page and of the range.
 * - read-only ranges map with direction `to-device`.
 * - `allowMixed`: system pages plus one device pagemap are accepted, in any order.
 * - the pfn array allocation failing in `range_evict` releases the mm reference.
 *
 * Under the `kernel: "6.17"` profile (kernel-semantics §11.16) every one of these
 * fixes is off and the seed's behaviour is reproduced: the restart loop has no
 * timeout (only `KERNEL_617_RETRY_BUDGET`, then a counted livelock), the order
 * is `hmm_pfn_to_map_order` unclamped, every mapping is bidirectional,
 * `ctx.allowMixed` is ignored, and `range_evict` returns `OutOfMemory` still
 * holding its mm reference.
 *
 * @since 0.1.0
 */
import { Clock, Effect, Result } from "effect"
import type { DeviceAddress, DmaDirection } from "../../domain/DeviceAddress.ts"
import { BadAddress, Busy, MixedPages, OutOfMemory, TimedOut } from "../../domain/Errors.ts"
import * as Ctx from "../../domain/GpuSvmCtx.ts"
import type { GpuSvmCtx } from "../../domain/GpuSvmCtx.ts"
import type { HmmPfn } from "../../domain/HmmPfn.ts"
import type { NotifierHandle } from "../../domain/NotifierHandle.ts"
import { NOT_NOW, type Now } from "../../domain/Now.ts"
import { SYSTEM_PROTO } from "../../domain/DeviceAddress.ts"
import type { Range } from "../../domain/Range.ts"
import type { PageRef } from "../../domain/PageRef.ts"
import type { RangeRef, ScanResult } from "../GpuSvm.ts"
import type { HmmRange } from "../Hmm.ts"
import type { Core } from "./Core.ts"
import { KERNEL_617_RETRY_BUDGET, MAX_RETRY_ROUNDS } from "./Core.ts"
import * as Lock from "../../internal/RwLock.ts"
import * as State from "./State.ts"
import * as TxSync from "../../internal/TxSync.ts"

/** A range value without its device addresses and pagemap (`exactOptionalPropertyTypes`-safe removal). */
const withoutDma = (r: Range): Range => ({
  // every field but the two dropped, spelled out: a rest pattern costs several times more (issue #16)
  id: r.id,
  start: r.start,
  end: r.end,
  notifierStart: r.notifierStart,
  notifierSeq: r.notifierSeq,
  flags: { ...r.flags, hasDmaMapping: false, hasDevmemPages: false }
}) satisfies Required<Omit<Range, "dmaAddr" | "pagemap">>

/** Unmaps a list of device addresses: system ones through `Dma`, device ones through their pagemap. */
const unmapAddrs = (core: Core, addrs: ReadonlyArray<DeviceAddress>, pagemap: string | undefined): Effect.Effect<void> =>
  Effect.forEach(addrs, (a) => {
    if (a.proto === SYSTEM_PROTO) return core.dma.unmapPage(a)
    const pm = pagemap === undefined ? undefined : core.pagemaps.get(pagemap)
    return pm === undefined ? Effect.void : pm.deviceUnmap(a)
  }, { discard: true })

/**
 * `__drm_gpusvm_range_unmap_pages` + `drm_gpusvm_range_free_pages`: unmap every
 * device address of the live range and clear `hasDmaMapping`/`hasDevmemPages`.
 * Caller holds the notifier lock (either side).
 *
 * @category functions
 */
export const unmapDma = (core: Core, r: Range): Effect.Effect<void> =>
  r.dmaAddr === undefined
    ? TxSync.update(core.state, (s) => State.updateRange(s, r, withoutDma))
    : Effect.andThen(
      unmapAddrs(core, r.dmaAddr, r.pagemap),
      TxSync.update(core.state, (s) => State.updateRange(s, r, withoutDma))
    )

/**
 * `drm_gpusvm_hmm_pfn_to_order` (the CVE-2025-40336 fix): the order of the run
 * starting at page `i`, clamped to what is left of the huge page the entry
 * belongs to and to the `npages` of the range.
 *
 * @category functions
 */
export const runOrder = (pfn: HmmPfn, i: number, npages: number): number => {
  let size = 2 ** pfn.order
  const frame = pfn.page === undefined ? 0 : pfn.page._tag === "System" ? pfn.page.pfn : pfn.page.devicePfn
  size -= frame % size
  if (i + size > npages) size -= i + size - npages
  let order = 0
  while (2 ** (order + 1) <= size) order++
  return order
}

/**
 * The seed's (6.17) `hmm_pfn_to_map_order(pfn)`: the huge-PTE order as HMM
 * reports it, not clamped to the huge page's remainder nor to the range — so a
 * 64 KiB range inside a THP maps 2 MiB (CVE-2025-40336, kernel-semantics §11.16).
 *
 * @category functions
 */
export const runOrder617 = (pfn: HmmPfn): number => pfn.order

/** The outcome of the mapping step: done, or the notifier moved (restart at step 1). */
type MapOutcome = "done" | "retry"

/** The mapping step's inputs (§4 step 5): the range, its notifier and the walk's PFNs and sequence. */
interface MapJob {
  readonly core: Core
  readonly ref: Range
  readonly handle: NotifierHandle
  readonly pfns: ReadonlyArray<HmmPfn>
  readonly seq: number
  readonly ctx: GpuSvmCtx
  readonly dir: DmaDirection
}

/** One mapping loop's state: the profile's rules, the addresses mapped, the device pagemap and allocation seen. */
interface RunState {
  readonly legacy: boolean
  readonly allowMixed: boolean
  readonly mapped: Array<DeviceAddress>
  pagemap: string | undefined
  allocation: number | undefined
}

/** A fresh loop state. §11.16: the 6.17 profile has no allow_mixed and no order clamp. */
const startRun = (job: MapJob): RunState => {
  const legacy = job.core.config.kernel === "6.17"
  return { legacy, allowMixed: job.ctx.allowMixed && !legacy, mapped: [], pagemap: undefined, allocation: undefined }
}

/** The page run at index `i` of a range starting at `start`, checked: what to map, at which order and address. */
interface NextRun {
  readonly page: PageRef
  readonly order: number
  readonly addr: number
}

/**
 * The checks of §4 step 5 on the page at index `i` before it is mapped (not valid, pages of two
 * pagemaps or allocations, system pages mixed with device pages or in a devmem-only range, no such
 * pagemap): the failure, else the run to map, with `run` updated. Shared by the Effect and the `Now` loop.
 */
const nextRun = (job: MapJob, run: RunState, start: number, i: number): BadAddress | MixedPages | NextRun => {
  const pfn = job.pfns[i]!
  const addr = start + i * 4096
  const page = pfn.page
  if (!pfn.valid || pfn.error || page === undefined) return new BadAddress({ reason: "HMM returned a page that is not valid", addr })
  if (page._tag === "Device") {
    if (!run.allowMixed && run.allocation !== page.allocation && i > 0) {
      return new MixedPages({ reason: "device pages of another allocation, or after system pages", addr })
    }
    run.allocation = page.allocation
    if (run.pagemap !== page.pagemap) {
      if (run.pagemap !== undefined) return new MixedPages({ reason: `pages of two pagemaps (${run.pagemap}, ${page.pagemap})`, addr })
      run.pagemap = page.pagemap
    }
    if (job.core.pagemaps.get(page.pagemap) === undefined) return new BadAddress({ reason: `no pagemap "${page.pagemap}" is registered`, addr })
  } else {
    if (run.pagemap !== undefined && !run.allowMixed) return new MixedPages({ reason: "system page after device pages", addr })
    if (job.ctx.devmemOnly) return new BadAddress({ reason: "system page in a devmem-only range", addr })
  }
  return { page, order: run.legacy ? runOrder617(pfn) : runOrder(pfn, i, job.pfns.length), addr }
}

/**
 * Step 6 of §4, synchronous: commit the mapping into the live range unless another get_pages committed
 * first (then false: the caller unmaps its own addresses).
 */
const commitMapping = (core: Core, cur: Range, seq: number, mapped: ReadonlyArray<DeviceAddress>, pagemap: string | undefined): boolean =>
  TxSync.modifyNow(core.state, (s): [boolean, State.SvmState] => {
    const now = State.live(s, cur)
    if (now === undefined || now.flags.hasDmaMapping || now.flags.hasDevmemPages) return [false, s]
    const next: Range = pagemap === undefined
      ? {
        id: now.id,
        start: now.start,
        end: now.end,
        notifierStart: now.notifierStart,
        notifierSeq: seq,
        dmaAddr: mapped,
        flags: { ...now.flags, hasDmaMapping: true, hasDevmemPages: false }
      }
      : { ...now, notifierSeq: seq, dmaAddr: mapped, pagemap, flags: { ...now.flags, hasDmaMapping: true, hasDevmemPages: true } }
    return [true, State.updateRange(s, now, () => next)]
  })

/**
 * Step 5–6 of §4 under the notifier read lock: check unmapped / `readRetry`,
 * map each page run (system through `Dma`, device through its pagemap), commit.
 */
const mapStep = Effect.fnUntraced(function*(job: MapJob) {
  const { core, ref, dir } = job
  const cur = State.live(core.state.value, ref)
  if (cur === undefined) return yield* new BadAddress({ reason: "range was removed", addr: ref.start })
  if (cur.flags.unmapped) return yield* new BadAddress({ reason: "range is unmapped", addr: cur.start })
  if (yield* core.mmu.readRetry(job.handle, job.seq)) return "retry" as MapOutcome
  const run = startRun(job)
  let failure: BadAddress | MixedPages | undefined
  for (let i = 0; i < job.pfns.length;) {
    const next = nextRun(job, run, cur.start, i)
    if (!("page" in next)) {
      failure = next
      break
    }
    const { page, order, addr } = next
    // The hint (where the page is mapped, where the range ends) lets the model's
    // IOMMU see a mapping past the range or a writable mapping of a read-only page.
    const r = yield* Effect.result(
      page._tag === "Device" ? core.pagemaps.get(page.pagemap)!.deviceMap(page, order, dir) : core.dma.mapPage(page, order, dir, { addr, end: cur.end })
    )
    if (Result.isFailure(r)) {
      failure = r.failure
      break
    }
    run.mapped.push(r.success)
    i += 2 ** order
  }
  if (failure !== undefined) {
    yield* unmapAddrs(core, run.mapped, run.pagemap)
    return yield* failure
  }
  // Another get_pages of the same range committed first (callers should serialise
  // them under the driver lock; if they do not, keep the first mapping, drop ours).
  if (!commitMapping(core, cur, job.seq, run.mapped, run.pagemap)) yield* unmapAddrs(core, run.mapped, run.pagemap)
  return "done" as MapOutcome
})

/** Unmaps `addrs` in the calling step where every unmap can be done now (`NOT_NOW` if one cannot: then none is). */
const unmapAddrsNow = (core: Core, addrs: ReadonlyArray<DeviceAddress>, pagemap: string | undefined): Now<void> => {
  const dmaNow = core.dma.unmapPageNow
  const pm = pagemap === undefined ? undefined : core.pagemaps.get(pagemap)
  for (const a of addrs) {
    if (a.proto === SYSTEM_PROTO ? dmaNow === undefined : pm !== undefined && pm.deviceUnmapNow === undefined) return NOT_NOW
  }
  for (const a of addrs) {
    if (a.proto === SYSTEM_PROTO) dmaNow!(a)
    else if (pm !== undefined) pm.deviceUnmapNow!(a)
  }
}

/**
 * {@link mapStep} in the calling step, notifier lock free: `NOT_NOW` (every address it mapped unmapped
 * again) wherever the Effect version would fail, restart or pass a point.
 */
const mapNow = (job: MapJob, readRetryNow: (h: NotifierHandle, seq: number) => Now<boolean>): Now<void> => {
  const { core, dir } = job
  const cur = State.live(core.state.value, job.ref)
  if (cur === undefined || cur.flags.unmapped) return NOT_NOW
  if (readRetryNow(job.handle, job.seq) !== false) return NOT_NOW
  const run = startRun(job)
  const mapPageNow = core.dma.mapPageNow
  for (let i = 0; i < job.pfns.length;) {
    const next = nextRun(job, run, cur.start, i)
    let a: Now<DeviceAddress> = NOT_NOW
    if ("page" in next) {
      const { page, order, addr } = next
      if (page._tag === "Device") {
        const now = core.pagemaps.get(page.pagemap)!.deviceMapNow
        if (now !== undefined) a = now(page, order, dir)
      } else if (mapPageNow !== undefined) {
        a = mapPageNow(page, order, dir, { addr, end: cur.end })
      }
      if (a !== NOT_NOW) {
        run.mapped.push(a)
        i += 2 ** order
        continue
      }
    }
    // a failure or a mapping that cannot be made now: undo, and let the Effect version do it all
    if (unmapAddrsNow(core, run.mapped, run.pagemap) === NOT_NOW) throw new Error("gpusvm: a fast-path mapping cannot be undone synchronously")
    return NOT_NOW
  }
  if (!commitMapping(core, cur, job.seq, run.mapped, run.pagemap) && unmapAddrsNow(core, run.mapped, run.pagemap) === NOT_NOW) {
    throw new Error("gpusvm: a fast-path mapping cannot be undone synchronously")
  }
}

/** The `hmm_range_fault` request of §4 step 3: the whole range, faulting, writing unless read-only. */
const faultWalk = (core: Core, handle: NotifierHandle, r: Range, seq: number, ctx: GpuSvmCtx): HmmRange => ({
  notifier: handle,
  notifierSeq: seq,
  start: r.start,
  end: r.end,
  fault: true,
  write: !ctx.readOnly,
  devicePrivateOwner: core.config.devicePrivateOwner
})

const busy = (addr: number) => new Busy({ reason: "HMM retries exceeded the timeout", addr })

/**
 * Step 3 of §4: `hmm_range_fault` the whole range under the mmap read lock,
 * re-reading the sequence and retrying on `EBUSY` until the deadline. Returns
 * the PFNs and the sequence the successful walk ran under.
 */
const faultRange = Effect.fnUntraced(function*(
  core: Core,
  handle: NotifierHandle,
  r: Range,
  seq0: number,
  ctx: GpuSvmCtx,
  deadline: number
) {
  let seq = seq0
  for (let tries = 0;; tries++) {
    const res = yield* Effect.result(core.mm.withReadLock(core.hmm.rangeFault(faultWalk(core, handle, r, seq, ctx))))
    if (Result.isSuccess(res)) return { pfns: res.success, seq }
    if (res.failure._tag !== "Busy") return yield* res.failure
    if ((yield* Clock.currentTimeMillis) > deadline || tries >= MAX_RETRY_ROUNDS) return yield* busy(r.start)
    yield* core.spin
    seq = yield* core.mmu.readBegin(handle)
  }
})

/**
 * The short-cut of §4 step 2 for a range that has device addresses, notifier lock held (or free): still
 * valid → the new sequence recorded, true; else its stale addresses dropped, false.
 */
const revalidate = (core: Core, r: Range, seq: number): boolean =>
  TxSync.modifyNow(core.state, (s): [boolean, State.SvmState] => {
    const now = State.live(s, r)
    if (now === undefined) return [false, s]
    if (now.flags.hasDmaMapping || now.flags.hasDevmemPages) {
      return [true, State.updateRange(s, now, (x) => ({ ...x, notifierSeq: seq }))]
    }
    return [false, State.updateRange(s, now, withoutDma)]
  })

/**
 * The synchronous fast path of {@link getPages} (issue #16, `src/domain/Now.ts`): its first round —
 * read_begin, the valid short-cut, `hmm_range_fault` (`Hmm.rangeFaultNow` under `Mm.readNow`), the
 * mapping and the commit — in the calling step where the machine answers every call now, no invalidation
 * is in flight, the notifier lock is free and nothing fails or restarts; else `NOT_NOW`, with at most
 * pages faulted in and a stale mapping dropped, both of which the Effect version does the same way.
 *
 * @category functions
 * @since 0.5.0
 */
export const getPagesNow = (core: Core) => (ref: RangeRef, ctxIn?: Partial<GpuSvmCtx>): Now<void> => {
  const { readNow } = core.mm
  const { rangeFaultNow } = core.hmm
  const { readBeginNow, readRetryNow } = core.mmu
  if (readNow === undefined || rangeFaultNow === undefined || readBeginNow === undefined || readRetryNow === undefined) return NOT_NOW
  const r = State.live(core.state.value, ref)
  if (r === undefined || !core.lock.canReadNow()) return NOT_NOW
  const n = State.notifierAt(core.state.value, r.notifierStart)!
  const seq = readBeginNow(n.handle)
  if (seq === NOT_NOW) return NOT_NOW
  if (r.dmaAddr !== undefined && revalidate(core, r, seq)) return
  const ctx = Ctx.make(ctxIn)
  const legacy = core.config.kernel === "6.17"
  const dir: DmaDirection = ctx.readOnly && !legacy ? "to-device" : "bidirectional"
  const pfns = readNow(() => rangeFaultNow(faultWalk(core, n.handle, r, seq, ctx)))
  if (pfns === NOT_NOW) return NOT_NOW
  return mapNow({ core, ref: r, handle: n.handle, pfns, seq, ctx, dir }, readRetryNow)
}

/**
 * `drm_gpusvm_range_get_pages`, kernel-semantics §4: read_begin; valid pages
 * short-cut; `hmm_range_fault` (retrying `EBUSY` until the timeout); under the
 * notifier lock check unmapped and `read_retry`, map the runs, commit. `Again`
 * restarts; every restart is bounded by the timeout.
 *
 * @category functions
 */
export const getPages = (core: Core) =>
  Effect.fnUntraced(function*(ref: RangeRef, ctxIn?: Partial<GpuSvmCtx>) {
    const ctx = Ctx.make(ctxIn)
    const legacy = core.config.kernel === "6.17"
    // §11.16: the seed maps everything DMA_BIDIRECTIONAL; 7.0 maps read-only ranges DMA_TO_DEVICE.
    const dir: DmaDirection = ctx.readOnly && !legacy ? "to-device" : "bidirectional"
    const deadline = (yield* Clock.currentTimeMillis) + core.config.hmmTimeoutMs
    for (let round = 0;; round++) {
      const r = State.live(core.state.value, ref)
      if (r === undefined) {
        return yield* new BadAddress({ reason: "range was removed", ...(typeof ref === "number" ? {} : { addr: ref.start }) })
      }
      const n = State.notifierAt(core.state.value, r.notifierStart)!
      let seq = yield* core.mmu.readBegin(n.handle)
      if (r.dmaAddr !== undefined) {
        const valid = yield* Lock.withReadSync(core.lock, () => revalidate(core, r, seq))
        if (valid) return
      }
      yield* core.mm.acquire
      const walked = yield* faultRange(core, n.handle, r, seq, ctx, deadline).pipe(Effect.ensuring(core.mm.release))
      const pfns = walked.pfns
      seq = walked.seq
      const outcome = yield* Lock.withRead(core.lock, mapStep({ core, ref: r, handle: n.handle, pfns, seq, ctx, dir }))
      if (outcome === "done") return
      if (legacy) {
        // §11.16: the seed's `goto retry` has no bound; the budget turns the spin into a counted livelock.
        if (round >= KERNEL_617_RETRY_BUDGET) {
          core.counters.livelocks++
          return yield* new Busy({
            reason: `livelock: get_pages restarted ${round + 1} times (kernel 6.17 retries without bound)`,
            addr: r.start
          })
        }
      } else if ((yield* Clock.currentTimeMillis) > deadline || round >= MAX_RETRY_ROUNDS) return yield* busy(r.start)
      yield* core.spin
    }
  })

/**
 * `drm_gpusvm_range_unmap_pages`: unmap the range's device addresses. With
 * `ctx.inNotifier` the caller (the invalidate callback) holds the notifier lock
 * for writing; otherwise it is taken here. A removed range is a no-op.
 *
 * @category functions
 */
export const unmapPages = (core: Core) => (ref: RangeRef, ctxIn?: Partial<GpuSvmCtx>): Effect.Effect<void> => {
  const body = Effect.suspend(() => {
    const s = core.state.value
    const r = State.live(s, ref)
    return r === undefined ? Effect.void : unmapDma(core, r)
  })
  return ctxIn?.inNotifier === true ? body : Lock.withRead(core.lock, body)
}

/**
 * `drm_gpusvm_range_pages_valid`: `hasDevmemPages || hasDmaMapping` of the live range (false if removed).
 *
 * @category functions
 */
export const pagesValid = (core: Core) => (ref: RangeRef): Effect.Effect<boolean> =>
  Effect.sync(() => {
    const s = core.state.value
    const r = State.live(s, ref)
    return r !== undefined && (r.flags.hasDmaMapping || r.flags.hasDevmemPages)
  })

/**
 * `drm_gpusvm_range_evict`: `hmm_range_fault` the range with FAULT and no
 * device-private owner, which migrates every device page back to system memory;
 * `EBUSY` retried until the timeout, then `TimedOut`. The pfn array is
 * allocated after `mmget_not_zero` (`KernelAlloc`, "range_evict"); its failure
 * is `OutOfMemory`. Under "7.0" the address-space reference is released on
 * every path; under "6.17" (kernel-semantics §11.16) the allocation failure
 * returns without `mmput`, leaking the reference as the seed does.
 *
 * @category functions
 */
export const evict = (core: Core) =>
  Effect.fnUntraced(function*(ref: RangeRef) {
    const r = State.live(core.state.value, ref)
    if (r === undefined) {
      return yield* new BadAddress({ reason: "range was removed", ...(typeof ref === "number" ? {} : { addr: ref.start }) })
    }
    const n = State.notifierAt(core.state.value, r.notifierStart)!
    const deadline = (yield* Clock.currentTimeMillis) + core.config.hmmTimeoutMs
    yield* core.mm.acquire
    const allocated = core.alloc === undefined ? true : yield* core.alloc.kvmallocArray("range_evict", (r.end - r.start) / 4096)
    if (!allocated) {
      // §11.16: the seed returns -ENOMEM here without mmput (the mm reference leaks).
      if (core.config.kernel !== "6.17") yield* core.mm.release
      return yield* new OutOfMemory({ reason: "range_evict: the pfn array could not be allocated", addr: r.start })
    }
    yield* Effect.gen(function*() {
      for (let tries = 0;; tries++) {
        const seq = yield* core.mmu.readBegin(n.handle)
        if ((yield* Clock.currentTimeMillis) > deadline || tries >= MAX_RETRY_ROUNDS) {
          return yield* new TimedOut({ reason: "evicting the range timed out", addr: r.start })
        }
        const res = yield* Effect.result(core.mm.withReadLock(core.hmm.rangeFault({
          notifier: n.handle,
          notifierSeq: seq,
          start: r.start,
          end: r.end,
          fault: true,
          write: false
        })))
        if (Result.isSuccess(res)) return
        if (res.failure._tag !== "Busy") {
          return yield* new BadAddress({ reason: `eviction fault failed: ${res.failure.reason}`, addr: res.failure.addr ?? r.start })
        }
        yield* core.spin
      }
    }).pipe(Effect.ensuring(core.mm.release))
  })

/**
 * `drm_gpusvm_scan_mm` (advisory): a non-faulting walk of the range telling where
 * its pages live — `unpopulated` (any page missing, or the walk failed), `system`,
 * `equal` (all in device memory of `owner`), `other` (all device pages of one
 * other owner), `mixed`. Never faults, never fails.
 *
 * @category functions
 */
export const scanMm = (core: Core) => (ref: RangeRef, owner?: string): Effect.Effect<ScanResult> =>
  Effect.gen(function*() {
    const s = core.state.value
    const r = State.live(s, ref)
    if (r === undefined) return "unpopulated" as const
    const n = State.notifierAt(s, r.notifierStart)!
    const ours = owner ?? core.config.devicePrivateOwner
    const seq = yield* core.mmu.readBegin(n.handle)
    const res = yield* Effect.result(core.mm.withReadLock(core.hmm.rangeFault({
      notifier: n.handle,
      notifierSeq: seq,
      start: r.start,
      end: r.end,
      fault: false,
      write: false,
      devicePrivateOwner: ours
    })))
    if (Result.isFailure(res)) return "unpopulated" as const
    let state: ScanResult | undefined
    let pagemap: string | undefined
    for (const p of res.success) {
      if (!p.valid || p.page === undefined) return "unpopulated" as const
      let next: ScanResult
      if (p.page._tag === "Device") {
        if (pagemap !== undefined && pagemap !== p.page.pagemap) return "mixed" as const
        pagemap = p.page.pagemap
        next = p.page.owner === ours ? "equal" : "other"
      } else {
        next = "system"
      }
      if (state === undefined) state = next
      else if (state !== next) return "mixed" as const
    }
    return state ?? "unpopulated"
  })

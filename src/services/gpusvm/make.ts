/**
 * Builds one GPU SVM instance (`drm_gpusvm_init`): decodes the config, takes the
 * machine services from the context (and the optional `KernelAlloc`), and assembles the `GpuSvmApi` from the
 * concern modules. Used by `GpuSvm.layer`.
 *
 * @since 0.1.0
 */
import { Effect, Option, TxRef } from "effect"
import type { InvalidConfig } from "../../domain/Errors.ts"
import * as Config from "../../domain/GpuSvmConfig.ts"
import * as IT from "../../domain/IntervalTree.ts"
import { Dma } from "../Dma.ts"
import type { GpuSvmApi, GpuSvmOps, RangeRef } from "../GpuSvm.ts"
import { Hmm } from "../Hmm.ts"
import { KernelAlloc } from "../KernelAlloc.ts"
import { Mm } from "../Mm.ts"
import { MmuNotifier } from "../MmuNotifier.ts"
import { Pagemaps } from "../Pagemaps.ts"
import type { Core } from "./Core.ts"
import { NOT_NOW, type Now, withNow } from "../../domain/Now.ts"
import * as Lock from "../../internal/RwLock.ts"
import { Interleaving, lockHooks } from "../Interleaving.ts"
import * as Pages from "./Pages.ts"
import * as Ranges from "./Ranges.ts"
import * as State from "./State.ts"

/**
 * `drm_gpusvm_init`: a new GPU SVM instance over the context's `Mm`,
 * `MmuNotifier`, `Hmm`, `Dma` (and the registered `Pagemaps`).
 * `config` is decoded here unless it already is (`GpuSvmConfig.isDecoded`).
 * Errors: `InvalidConfig` naming the bad field (kernel-semantics §2).
 *
 * @category functions
 */
export const make = (
  config: Config.GpuSvmConfigInput | Config.GpuSvmConfig,
  ops: GpuSvmOps
): Effect.Effect<GpuSvmApi, InvalidConfig, Mm | MmuNotifier | Hmm | Dma> =>
  Effect.gen(function*() {
    const decoded = yield* Config.decode(config)
    const state = yield* TxRef.make(State.empty)
    const il = yield* Interleaving
    const lock = Lock.makeUnsafe(lockHooks(il, "notifier lock"))
    let api: GpuSvmApi | undefined
    const core: Core = {
      config: decoded,
      ops,
      mm: yield* Mm,
      mmu: yield* MmuNotifier,
      hmm: yield* Hmm,
      dma: yield* Dma,
      pagemaps: yield* Pagemaps,
      alloc: Option.getOrUndefined(yield* Effect.serviceOption(KernelAlloc)),
      state,
      lock,
      spin: il.controlled ? il.point("gpusvm retry", { spin: true }) : Effect.yieldNow,
      api: () => api!,
      counters: { notifiersCreated: 0, notifiersRemoved: 0, rangesCreated: 0, rangesRemoved: 0, livelocks: 0 }
    }
    const findNow = Ranges.findOrInsertNow(core)
    const find = Ranges.findOrInsert(core)
    const getNow = Pages.getPagesNow(core)
    const get = Pages.getPages(core)
    api = {
      config: decoded,
      // issue #16: each tries its synchronous fast path when it runs (two Effect steps instead of a few
      // dozen when nothing can interleave), the Effect version on NOT_NOW (same points, waits, errors)
      rangeFindOrInsert: (faultAddr, gpuvaStart, gpuvaEnd, ctx) =>
        Effect.suspend(() => {
          const r = findNow(faultAddr, gpuvaStart, gpuvaEnd, ctx)
          return r === NOT_NOW ? find(faultAddr, gpuvaStart, gpuvaEnd, ctx) : Effect.succeed(r)
        }),
      rangeGetPages: (range, ctx) =>
        Effect.suspend(() => (getNow(range, ctx) === NOT_NOW ? get(range, ctx) : Effect.void)),
      rangeUnmapPages: Pages.unmapPages(core),
      rangeEvict: Pages.evict(core),
      rangeRemove: Ranges.remove(core),
      rangePagesValid: Pages.pagesValid(core),
      rangeSetUnmapped: Ranges.setUnmapped(core),
      withNotifierLock: (e) => Lock.withRead(lock, e),
      withNotifierWriteLock: (e) => Lock.withWrite(lock, e),
      hasMapping: Ranges.hasMapping(core),
      findVmaStart: Ranges.findVmaStart(core),
      range: (ref: RangeRef) => Effect.sync(() => Option.fromUndefinedOr(State.live(state.value, ref))),
      ranges: (start?: number, end?: number) =>
        Effect.sync(() => State.rangesIn(state.value, start ?? 0, end ?? Number.MAX_SAFE_INTEGER + 1)),
      notifiers: Effect.sync(() => IT.toArray(state.value.notifiers).map((e) => e.value)),
      scanMm: Pages.scanMm(core),
      fini: Ranges.fini(core),
      stats: Effect.sync(() => ({ ...core.counters }))
    }
    withNow(api, {
      rangeFindOrInsertNow: findNow,
      rangeGetPagesNow: getNow,
      withNotifierLockNow: <A>(f: () => A): Now<A> => (lock.canReadNow() ? f() : NOT_NOW),
      rangeNow: (ref: RangeRef) => State.live(state.value, ref)
    })
    return api
  })

/**
 * The migration engine of the simulated pagemaps (kernel-semantics §9,
 * §11.9): the `migrate_vma`-like collect / copy / finalize between system
 * memory and the device memory of a `Vram`, in both directions, eviction
 * (`drm_pagemap_evict_to_ram`), `migrate_to_ram` of a CPU-touched
 * device-private entry, and the installation and removal of device-private
 * page-table entries. `SimPagemap.ts` builds the `DevicePagemap` service
 * objects on top of it; the behaviour each operation shows through them
 * (locks, invalidations, failure atomicity, errors) is described there.
 *
 * @since 0.1.0
 */
import { NOT_NOW, type Now } from "../../domain/Now.ts"
import { Clock, Duration, Effect, Fiber, Semaphore } from "effect"
import { HUGE_PAGE_ORDER, PAGE_SIZE } from "../../domain/Address.ts"
import { BadAddress, Busy, OutOfMemory } from "../../domain/Errors.ts"
import { MachineState } from "./MachineState.ts"
import { type DevicePte, vpnOf } from "./PageTable.ts"
import type { DevAllocation, Vram } from "./Vram.ts"

/**
 * The `BadAddress` of a `populate_mm` argument or VMA problem (`-EFAULT` / `-EINVAL`).
 *
 * @category errors
 * @since 0.1.0
 */
export const populateBad = (reason: string, addr?: number): BadAddress =>
  addr === undefined ? new BadAddress({ reason: `populate_mm: ${reason}` }) : new BadAddress({ reason: `populate_mm: ${reason}`, addr })

/**
 * The `OutOfMemory` of a `populate_mm` that cannot get device memory (`-ENOMEM`).
 *
 * @category errors
 * @since 0.1.0
 */
export const populateOom = (reason: string, addr: number): OutOfMemory => new OutOfMemory({ reason: `populate_mm: ${reason}`, addr })

/** Span `[min vpn, max vpn + 1)` of device entries, in bytes. */
const spanOf = (ptes: ReadonlyArray<DevicePte>): readonly [number, number] => {
  let lo = Infinity
  let hi = -Infinity
  for (const p of ptes) {
    if (p.vpn < lo) lo = p.vpn
    if (p.vpn > hi) hi = p.vpn
  }
  return [lo * PAGE_SIZE, (hi + 1) * PAGE_SIZE]
}

/**
 * The migration engine of one machine (see {@link makeMigrationEngine}).
 *
 * @category models
 * @since 0.1.0
 */
export interface MigrationEngine {
  /**
   * `drm_pagemap_migrate_to_devmem` of `[start, end)` into `vram`, with the
   * mmap read lock held and the window already validated (page-aligned,
   * `start < end`); the allocation expires (its timeslice ends) at
   * `expiresAt`. Fails `BadAddress` (not one private anonymous VMA, exited),
   * `OutOfMemory` or `Busy` (copy failure, fewer pages collected than asked).
   */
  readonly migrateToDevmem: (vram: Vram, start: number, end: number, expiresAt: number) => Effect.Effect<void, BadAddress | OutOfMemory | Busy>
  /**
   * `drm_pagemap_migrate_to_ram` for the CPU entry `pte` at `addr` (mmap read
   * lock held): waits out the timeslice, then migrates the allocation's pages
   * of the VMA back under the machine's migration mutex. Fails `BadAddress`
   * (SIGBUS) when the copy fails.
   */
  readonly migrateToRam: (vram: Vram, addr: number, pte: DevicePte) => Effect.Effect<void, BadAddress>
  /**
   * {@link migrateToRam} in the calling step (issue #16, `src/domain/Now.ts`): done when the entry is
   * already replaced, or its timeslice is over, the migration mutex is free, no copy failure is pending and
   * the MIGRATE invalidation can run now (`IntervalNotifiers.invalidateNow`); `NOT_NOW` with nothing done
   * otherwise.
   */
  readonly migrateToRamNow: (vram: Vram, addr: number, pte: DevicePte) => Now<void>
  /**
   * `drm_pagemap_evict_to_ram` of one allocation (caller holds the mmap write
   * lock or the read lock inside a populate). False: the copy failed and the
   * allocation stays.
   */
  readonly evictAllocation: (vram: Vram, a: DevAllocation) => Effect.Effect<boolean>
}

/**
 * Builds the migration engine of machine `st`: its migration mutex (migrations
 * back to RAM under the mmap read lock are serialised, like the kernel's page
 * locks) and the operations of {@link MigrationEngine}, reading and writing
 * `st`'s page table, frames, VMAs, notifiers and injections. Call it once per
 * machine (`makePagemaps` does).
 *
 * @category constructors
 * @since 0.1.0
 */
export const makeMigrationEngine = (st: MachineState): MigrationEngine => {
  const existing = engines.get(st)
  if (existing !== undefined) return existing
  const notifiers = st.notifiers
  /** Serialises migrations back to RAM that run under the mmap read lock. */
  const migrateLock = Semaphore.makeUnsafe(1)

  const takeCopyFail = (): boolean => {
    if (st.inject.copyFail <= 0) return false
    st.inject.copyFail--
    return true
  }

  /** Is `pte` still installed and backed by a page of `vram`? */
  const current = (vram: Vram, pte: DevicePte): boolean =>
    st.pt.get(pte.vpn) === pte && vram.pages.get(pte.devicePfn)?.pte === pte

  /**
   * `migrate_vma_pages` + `copy_to_ram` + `migrate_vma_finalize` for device
   * entries of `vram` (synchronous; inside the invalidation): copy, then swap
   * the entries for fresh order-0 system frames and free the device pages.
   * False (nothing changed) on an injected copy failure.
   */
  const commitToRam = (vram: Vram, ptes: ReadonlyArray<DevicePte>): boolean => {
    const live = ptes.filter((p) => current(vram, p))
    if (live.length === 0) return true
    const fail = takeCopyFail()
    // issue #16: when both memories share one page store, each device page's buffer (freed right after by
    // releasePage) moves to its new frame instead of being copied; the injected failure copies as before.
    const move = !fail && vram.store === st.frames.store
    const stopAt = fail ? Math.floor(live.length / 2) : move ? 0 : live.length
    const bufs: Array<Uint8Array | undefined> = new Array(live.length)
    for (let i = 0; i < stopAt; i++) {
      const src = vram.bytes.get(live[i]!.devicePfn)
      if (src === undefined) continue
      const b = st.frames.store.take(false)
      b.set(src)
      bufs[i] = b
    }
    if (fail) {
      for (const b of bufs) if (b !== undefined) st.frames.store.give(b)
      return false
    }
    for (const p of live) if (p.order > 0) st.pt.splitRun(p.vpn)
    let copied = 0
    for (let i = 0; i < live.length; i++) {
      const pte = live[i]!
      const f = st.frames.alloc(0)
      f.mapcount++
      let b = bufs[i]
      if (move) {
        b = vram.bytes.get(pte.devicePfn)
        if (b !== undefined) vram.bytes.delete(pte.devicePfn)
      }
      if (b !== undefined) {
        st.frames.adopt(f.head, b)
        copied++
      }
      st.pt.set(pte.vpn, { kind: "system", pfn: f.head, writable: pte.writable, order: 0 })
      st.devicePtes--
      vram.releasePage(pte)
    }
    vram.traffic.bytesToRam += copied * PAGE_SIZE
    vram.traffic.pagesToRam += live.length
    return true
  }

  /** Live device entries of allocation `a`. */
  const entriesOf = (vram: Vram, a: DevAllocation): Array<DevicePte> => {
    const out: Array<DevicePte> = []
    for (const pfn of a.pfns) {
      const p = vram.pages.get(pfn)
      if (p !== undefined && p.alloc === a) out.push(p.pte)
    }
    return out
  }

  /** Device entries `ptes` of `vram` back to RAM under one MIGRATE invalidation (owner = the pagemap's). */
  const toRam = (vram: Vram, ptes: ReadonlyArray<DevicePte>): Effect.Effect<boolean> => {
    if (ptes.length === 0) return Effect.succeed(true)
    const [s, e] = spanOf(ptes)
    return notifiers.invalidate(s, e, "migrate", Effect.sync(() => commitToRam(vram, ptes)), vram.owner)
  }

  /**
   * `drm_pagemap_evict_to_ram` of one allocation (caller holds the mmap write
   * lock, or populate's read lock). False: copy failed. An allocation of
   * another process (kernel-semantics §11.17: VRAM is shared) is evicted
   * through that process's address space and notifiers, as
   * `drm_pagemap_evict_to_ram` works on the allocation's own mm.
   */
  const evictAllocation = (vram: Vram, a: DevAllocation): Effect.Effect<boolean> =>
    Effect.suspend(() => {
      if (a.mm !== undefined && a.mm !== st && a.mm instanceof MachineState) return makeMigrationEngine(a.mm).evictAllocation(vram, a)
      const ptes = entriesOf(vram, a)
      if (ptes.length === 0) {
        vram.release(a)
        return Effect.succeed(true)
      }
      return Effect.map(toRam(vram, ptes), (ok) => {
        if (ok) vram.traffic.evictions++
        return ok
      })
    })

  /**
   * What `migrate_to_ram` of the CPU entry `pte` at `addr` moves: the live
   * device entries of its allocation inside the VMA at `addr`; `undefined`
   * when `pte` is no longer installed or has no device page (nothing to do).
   */
  const ramBatch = (vram: Vram, addr: number, vpn: number, pte: DevicePte): Array<DevicePte> | undefined => {
    if (st.pt.get(vpn) !== pte) return undefined
    const page = vram.pages.get(pte.devicePfn)
    if (page === undefined) return undefined
    const vma = st.vmas.find(addr)
    return entriesOf(vram, page.alloc).filter((p) =>
      vma !== undefined && p.vpn * PAGE_SIZE >= vma.start && p.vpn * PAGE_SIZE < vma.end && st.pt.get(p.vpn) === p
    )
  }

  /**
   * Fibers inside or waiting for `migrateLock`: the synchronous path of
   * `migrate_to_ram` runs only when there are none (then taking the lock could
   * not wait, and nothing can run between its acquire and release). Counted
   * around the lock's section; should an interruption ever skip a decrement,
   * only the synchronous path is lost, never the serialisation.
   */
  let lockUsers = 0
  const lockLeft = Effect.sync(() => {
    lockUsers--
  })

  /**
   * `drm_pagemap_migrate_to_ram` for the CPU entry `pte` at `addr` (mmap read
   * lock held): waits out the timeslice, then migrates the allocation's pages
   * of the VMA back. A stale `pte` (already migrated) is a no-op. When the
   * migration mutex is free and no notifier overlaps the pages, the whole
   * locked section (collect, MIGRATE invalidation, commit) runs in one step
   * (issue #16); else under the mutex, with the full invalidation.
   */
  const migrateToRam = Effect.fnUntraced(function*(vram: Vram, addr: number, pte: DevicePte) {
    const vpn = vpnOf(addr)
    for (;;) {
      if (st.pt.get(vpn) !== pte) return
      const page = vram.pages.get(pte.devicePfn)
      if (page === undefined || page.pte !== pte) {
        return yield* new BadAddress({ reason: "migrate_to_ram: device-private entry without a device page", addr })
      }
      const wait = page.alloc.expiresAt - (yield* Clock.currentTimeMillis)
      if (wait <= 0) break
      yield* Effect.sleep(Duration.millis(wait))
    }
    let ok: boolean | undefined
    if (lockUsers === 0) {
      const ptes = ramBatch(vram, addr, vpn, pte)
      if (ptes === undefined || ptes.length === 0) ok = true
      else {
        const [s, e] = spanOf(ptes)
        ok = notifiers.invalidateNow(s, e, "migrate", () => commitToRam(vram, ptes), vram.owner)?.value
      }
    }
    if (ok === undefined) {
      lockUsers++
      ok = yield* Effect.ensuring(
        migrateLock.withPermits(1)(Effect.suspend(() => {
          const ptes = ramBatch(vram, addr, vpn, pte)
          return ptes === undefined ? Effect.succeed(true) : toRam(vram, ptes)
        })),
        lockLeft
      )
    }
    if (!ok) {
      return yield* new BadAddress({ reason: "migrate_to_ram: copy from device memory failed (SIGBUS)", addr })
    }
  })

  /**
   * Is part of `[start, end)` being changed by an invalidation in flight other
   * than populate's own MIGRATE of exactly that window (a racing DONTNEED's
   * CLEAR, a migration, a COW break)? `migrate_vma_collect` cannot collect
   * such pages (locked, or holding extra references), kernel-semantics §11.9.
   */
  const windowBusy = (start: number, end: number): boolean => {
    for (const inv of notifiers.active) {
      if (inv.event === "migrate" && inv.start === start && inv.end === end) continue
      if (inv.start < end && start < inv.end) return true
    }
    return false
  }

  /**
   * `migrate_vma_setup` (collect) + `migrate_vma_pages` + `copy_to_devmem` +
   * `migrate_vma_finalize` of `[start, end)` into allocation `a`
   * (synchronous; inside the MIGRATE invalidation, mmap read lock held).
   * `"busy"`: fewer pages collected than the allocation was made for (a page
   * in flux, or taken by another populate meanwhile: `cpages != npages`);
   * `"copy-failed"`: an injected copy failure. Either way the allocation is
   * released and nothing changed.
   */
  const commitToVram = (
    vram: Vram,
    a: DevAllocation,
    writable: boolean,
    start: number,
    end: number
  ): "ok" | "busy" | "copy-failed" => {
    const vpns: Array<number> = []
    for (let v = vpnOf(start); v < vpnOf(end); v++) {
      const pte = st.pt.get(v)
      if (pte !== undefined && pte.kind === "device" && pte.pagemap === vram.id) continue
      vpns.push(v)
    }
    // §11.17: migrate_vma_collect_pmd skips device-exclusive entries (not device-private), so fewer
    // pages are collected than asked and the migration is EBUSY, as drm_pagemap_migrate_to_devmem says.
    const exclusive = st.exclusivePtes > 0 && vpns.some((v) => st.pt.get(v)?.kind === "exclusive")
    if (vpns.length !== a.pfns.length || exclusive || windowBusy(start, end)) {
      vram.release(a)
      return "busy"
    }
    st.pt.splitAt(start)
    st.pt.splitAt(end)
    const fail = takeCopyFail()
    const stopAt = fail ? Math.floor(vpns.length / 2) : vpns.length
    // issue #16: with one page store for both memories, a page whose frame this migration frees (order 0,
    // mapped once, not cached) moves its buffer to the device page instead of being copied (below).
    const move = !fail && vram.store === st.frames.store
    const bufs: Array<Uint8Array | undefined> = new Array(vpns.length)
    for (let i = 0; i < stopAt; i++) {
      const pte = st.pt.get(vpns[i]!)
      if (pte === undefined || pte.kind !== "system" || st.frames.isBlank(pte.pfn)) continue
      if (move && st.frames.hasSoleBytes(pte.pfn)) continue
      const b = vram.store.take(false)
      st.frames.read(pte.pfn, 0, b, 0, PAGE_SIZE)
      bufs[i] = b
    }
    if (fail) {
      for (const b of bufs) if (b !== undefined) vram.store.give(b)
      vram.release(a)
      return "copy-failed"
    }
    // Entry orders: a block's order (at most 9, a PMD) where its pages map an aligned, contiguous virtual run.
    const orders: Array<number> = new Array(vpns.length).fill(0)
    let j = 0
    for (const b of a.blocks) {
      const n = b.size / PAGE_SIZE
      const v0 = vpns[j]!
      const order = Math.min(b.order, HUGE_PAGE_ORDER)
      if (vpns[j + n - 1]! - v0 === n - 1 && v0 % n === 0) for (let k = 0; k < n; k++) orders[j + k] = order
      j += n
    }
    let copied = 0
    for (let i = 0; i < vpns.length; i++) {
      const vpn = vpns[i]!
      const old = st.pt.get(vpn)
      let b = bufs[i]
      if (old !== undefined && old.kind === "system" && old.pfn !== 0) {
        if (move && b === undefined) b = st.frames.takeSoleBytes(old.pfn)
        const f = st.frames.frameOf(old.pfn)
        if (f !== undefined) st.frames.unmap(f)
      }
      const pfn = a.pfns[i]!
      const pte: DevicePte = {
        kind: "device",
        pagemap: vram.id,
        devicePfn: pfn,
        allocation: a.id,
        owner: vram.owner,
        writable,
        order: orders[i]!,
        vpn
      }
      st.pt.set(vpn, pte)
      st.devicePtes++
      vram.install(a, pfn, pte)
      if (b !== undefined) {
        vram.bytes.set(pfn, b)
        copied++
      }
    }
    vram.traffic.bytesToVram += copied * PAGE_SIZE
    vram.traffic.pagesToVram += vpns.length
    return "ok"
  }

  /**
   * `drm_pagemap_migrate_to_devmem` of `[start, end)` into `vram`, the part of
   * `populateMm` under the mmap read lock (§11.9; the caller validated the
   * window and holds the lock): VMA checks, pages already in `vram` left in
   * place, LRU eviction under pressure, allocation, foreign device pages back
   * to RAM, then the MIGRATE invalidation and the commit.
   */
  const migrateToDevmem = Effect.fnUntraced(function*(vram: Vram, start: number, end: number, expiresAt: number) {
    if (!st.alive) return yield* populateBad("the address space has exited", start)
    const vma = st.vmas.find(start)
    if (vma === undefined || end > vma.end) return yield* populateBad("[start, end) is not inside one VMA", start)
    if (vma.kind !== "anonymous" || vma.shared) {
      return yield* populateBad(`a ${vma.shared ? "shared " : ""}${vma.kind} VMA cannot migrate to device memory`, start)
    }
    // Classify the window: pages already here stay; device pages of other pagemaps go back to RAM first.
    let need = 0
    const ours = new Set<DevAllocation>()
    const foreign = new Map<Vram, Array<DevicePte>>()
    for (let v = vpnOf(start); v < vpnOf(end); v++) {
      const pte = st.pt.get(v)
      if (pte !== undefined && pte.kind === "device") {
        if (pte.pagemap === vram.id) {
          const p = vram.pages.get(pte.devicePfn)
          if (p !== undefined) ours.add(p.alloc)
          continue
        }
        const other = st.devmem.of(pte)
        if (other !== undefined) {
          const l = foreign.get(other) ?? []
          l.push(pte)
          foreign.set(other, l)
        }
      }
      need++
    }
    if (need === 0) return
    const bytes = need * PAGE_SIZE
    if (bytes > vram.totalBytes) return yield* populateOom(`${bytes} bytes do not fit in ${vram.totalBytes} bytes of device memory`, start)
    if (st.inject.vramAllocFail > 0) {
      st.inject.vramAllocFail--
      return yield* populateOom("device memory allocation failed (injected)", start)
    }
    if (vram.freeBytes < bytes) {
      // Memory pressure: evict least recently used allocations (not those with pages in the window, nor
      // those of a populate still in flight: no page installed yet, under the read lock they can exist).
      const candidates = vram.lru().filter((a) => !ours.has(a) && a.livePages > 0)
      let reclaimable = vram.freeBytes
      for (const a of candidates) for (const b of a.blocks) reclaimable += b.size
      if (reclaimable < bytes) return yield* populateOom(`only ${reclaimable} bytes could be freed, ${bytes} needed`, start)
      for (const a of candidates) {
        if (vram.freeBytes >= bytes) break
        yield* evictAllocation(vram, a)
      }
      if (vram.freeBytes < bytes) return yield* populateOom("eviction could not free enough device memory", start)
    }
    const a = vram.allocate(need, expiresAt, st)
    if (a === undefined) return yield* populateOom("device memory allocation failed", start)
    if (foreign.size === 0) {
      // issue #16: no notifier on the window, no foreign page: the MIGRATE invalidation and the commit in this step
      const done = notifiers.invalidateNow(start, end, "migrate", () => commitToVram(vram, a, vma.prot.write, start, end), vram.owner)
      if (done !== undefined) {
        if (!a.freed && a.livePages === 0) vram.release(a)
        return yield* commitOutcome(done.value, start)
      }
    }
    // Whatever ends this call before the commit (copy failure, interruption), the unused allocation goes back.
    return yield* Effect.ensuring(
      migrateInto(vram, a, vma.prot.write, start, end, foreign),
      Effect.sync(() => {
        if (!a.freed && a.livePages === 0) vram.release(a)
      })
    )
  })

  /** The result of `populate_mm` for the outcome of {@link commitToVram}. */
  const commitOutcome = (done: "ok" | "busy" | "copy-failed", start: number): Effect.Effect<void, Busy> =>
    done === "ok"
      ? Effect.void
      : Effect.fail(
        done === "copy-failed"
          ? new Busy({ reason: "populate_mm: copy to device memory failed; nothing migrated", addr: start })
          : new Busy({
            reason: "populate_mm: migrate_vma collected fewer pages than asked (a racing change of the window); nothing migrated",
            addr: start
          })
      )

  /** Foreign pages back to RAM, then the MIGRATE invalidation and the commit into `a`. */
  const migrateInto = Effect.fnUntraced(function*(
    vram: Vram,
    a: DevAllocation,
    writable: boolean,
    start: number,
    end: number,
    foreign: ReadonlyMap<Vram, ReadonlyArray<DevicePte>>
  ) {
    for (const [other, ptes] of foreign) {
      if (!(yield* toRam(other, ptes))) {
        return yield* new Busy({ reason: `populate_mm: migrating pages of pagemap "${other.id}" back failed`, addr: start })
      }
    }
    const done = yield* notifiers.invalidate(
      start,
      end,
      "migrate",
      Effect.sync(() => commitToVram(vram, a, writable, start, end)),
      vram.owner
    )
    return yield* commitOutcome(done, start)
  })

  const migrateToRamNow = (vram: Vram, addr: number, pte: DevicePte): Now<void> => {
    const vpn = vpnOf(addr)
    if (st.pt.get(vpn) !== pte) return
    const page = vram.pages.get(pte.devicePfn)
    if (page === undefined || page.pte !== pte || lockUsers !== 0 || st.inject.copyFail > 0) return NOT_NOW
    if (page.alloc.expiresAt > Fiber.getCurrent()!.getRef(Clock.Clock).currentTimeMillisUnsafe()) return NOT_NOW
    const ptes = ramBatch(vram, addr, vpn, pte)
    if (ptes === undefined || ptes.length === 0) return
    const [s, e] = spanOf(ptes)
    // no copy failure is pending, so the commit cannot fail
    return notifiers.invalidateNow(s, e, "migrate", () => commitToRam(vram, ptes), vram.owner) === undefined ? NOT_NOW : undefined
  }

  const engine: MigrationEngine = { migrateToDevmem, migrateToRam, migrateToRamNow, evictAllocation }
  engines.set(st, engine)
  return engine
}

/** The engine of each process (one per address space). */
const engines = new WeakMap<MachineState, MigrationEngine>()

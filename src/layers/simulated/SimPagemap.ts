/**
 * The simulated `DevicePagemap`s (kernel-semantics §9): device memory regions
 * of the machine (`Vram.ts` holds their state) and the migrations between
 * system memory and device memory.
 *
 * - `populateMm(start, end, { timesliceMs })` — `drm_pagemap_populate_mm` →
 *   the driver's `populate_mm` (allocate a `drm_pagemap_devmem`) →
 *   `drm_pagemap_migrate_to_devmem` (`migrate_vma_setup` / `_pages` /
 *   `_finalize`). Under the mmap lock **for reading**, as
 *   `drm_pagemap_populate_mm` takes it (kernel-semantics §11.9; so populate
 *   runs concurrently with faults, `madvise(MADV_DONTNEED)` and other
 *   populates): validate; allocate device memory first (evicting LRU
 *   allocations under pressure); migrate device pages of other pagemaps in
 *   the window back to RAM (their own MIGRATE event); then one MIGRATE
 *   invalidation of `[start, end)` with this pagemap's owner, raised *before*
 *   the change; then, in one synchronous step, collect the window
 *   (`migrate_vma_collect`) and, if every page was collected, copy every
 *   present page holding data into device memory (untouched and zero pages
 *   are not copied: they read as zeros), install the device-private entries
 *   and drop the system frames. Pages already in this pagemap are left where
 *   they are. A page another invalidation is changing at that moment (a
 *   racing DONTNEED's CLEAR, a migration, a COW break: pages the kernel finds
 *   locked or with extra references) is not collected, nor is a page another
 *   populate took meanwhile; fewer pages collected than asked
 *   (`migrate.cpages != npages`) fails `Busy` (`-EBUSY`) with nothing
 *   migrated and the allocation released.
 * - `migrate_to_ram` (`drm_pagemap_migrate_to_ram` /
 *   `__drm_pagemap_migrate_to_ram`): the `cpuTouchedDevicePage` hook, run by
 *   `Cpu.read`/`write` and by a faulting `hmm_range_fault` that does not own
 *   the page, with the mmap read lock held. It first waits (Effect clock,
 *   `Effect.sleep`) until the allocation's timeslice has expired, then, under
 *   the machine's migration mutex (migrations under the read lock are
 *   serialised, like the kernel's page locks), raises a MIGRATE invalidation
 *   (owner = the pagemap's owner, like `migrate_vma` with `pgmap_owner`) over
 *   the faulting allocation's pages in the VMA and copies them back to fresh
 *   order-0 system frames.
 * - Eviction (`drm_pagemap_evict_to_ram`): a whole allocation back to RAM, with
 *   its own MIGRATE invalidation; under pressure (least recently used first)
 *   inside `populateMm`, or every allocation with `evictAll` (mmap write lock).
 *   Eviction ignores timeslices.
 * - `deviceMap` / `deviceUnmap` (`drm_pagemap_ops.device_map` /
 *   `device_unmap`): device-physical address `devicePfn · 4096` with the
 *   pagemap's `proto`; unmapping an unknown address records
 *   `device-unmap-unknown`.
 * - `readDevice` / `writeDevice`: the device's direct path to its memory, one
 *   synchronous step each (no yield point, so a GPU read-modify-write stays
 *   atomic); an address that is not a page in use (freed, or outside the
 *   pagemap) fails with `BadAddress` and records `stale-device-access`.
 *
 * Failure atomicity: a migration copies every page into fresh buffers first
 * and commits only when all copies succeeded; an injected copy failure
 * (`copyFail`, which stops the copy half-way) discards the copies, so every
 * page is either fully migrated or untouched. Copy failure to device memory:
 * `populateMm` fails with `Busy`; back to RAM: the CPU access (or
 * `hmm_range_fault`) fails with `BadAddress` (SIGBUS) and the pages stay in
 * device memory; an eviction that fails leaves its allocation in place.
 *
 * Errors of `populateMm`: malformed / unaligned window, window not inside one
 * VMA, a VMA that is not private anonymous (file, shared, hugetlb, special),
 * exited address space → `BadAddress`; no device memory (zero-size pagemap),
 * window larger than the device memory, `vramAllocFail` injection, or not
 * enough memory even after evicting every other allocation → `OutOfMemory`
 * (nothing changed: nothing was evicted); copy failure or fewer pages
 * collected than asked → `Busy`.
 *
 * Hazards: `populateMm` takes the mmap read lock and `evictAll` the write
 * lock: calling them from a notifier callback deadlocks, and calling
 * `populateMm` while holding `Mm.withReadLock` nests the read lock (a
 * deadlock if a writer queues in between, as with the kernel's rwsem). A CPU
 * touch of a page whose timeslice has not expired sleeps holding the mmap read
 * lock (writers wait behind it).
 *
 * @since 0.1.0
 */
import { Clock, Duration, Effect, Semaphore } from "effect"
import { HUGE_PAGE_ORDER, PAGE_SIZE, isAddress } from "../../domain/Address.ts"
import type { DeviceAddress, DmaDirection } from "../../domain/DeviceAddress.ts"
import { BadAddress, Busy, OutOfMemory } from "../../domain/Errors.ts"
import type { DevicePage } from "../../domain/PageRef.ts"
import type { DevicePagemapApi, PopulateOptions } from "../../services/DevicePagemap.ts"
import type { DeviceMapper } from "../../services/Pagemaps.ts"
import type { MachineState, SimulatedOptions } from "./MachineState.ts"
import { type DevicePte, vpnOf } from "./PageTable.ts"
import { DPA_SLOT, MAX_VRAM_BYTES, type DevAllocation, Vram, type VramConfig } from "./Vram.ts"

const DIRS: ReadonlyArray<DmaDirection> = ["bidirectional", "to-device", "from-device"]

/** Default device-private owner of simulated pagemaps. */
export const DEFAULT_OWNER = "gpusvm"

/** Default interconnect protocol of simulated pagemaps. */
export const DEFAULT_PROTO = "vram"

/**
 * Resolves the pagemap options of a machine (see `SimulatedOptions.pagemaps`):
 * ids, owners, protocols, sizes (rounded down to 4 KiB; invalid sizes become 0
 * with a `bad-pagemap-option` violation) and disjoint device-physical windows.
 * A duplicate id throws (a defect when the layer is built).
 */
export const resolvePagemaps = (options: SimulatedOptions, onViolation: MachineState["recordViolation"]): Array<VramConfig> => {
  const owner = options.devicePrivateOwner ?? DEFAULT_OWNER
  const list = options.pagemaps ??
    (options.vramBytes === undefined ? [] : [{ id: "vram0", vramBytes: options.vramBytes }])
  const seen = new Set<string>()
  return list.map((p, i) => {
    const id = p.id ?? `vram${i}`
    if (seen.has(id)) throw new Error(`Simulated.layer: duplicate pagemap id "${id}"`)
    seen.add(id)
    let bytes = p.vramBytes
    if (!Number.isSafeInteger(bytes) || bytes < 0 || bytes > MAX_VRAM_BYTES) {
      onViolation({
        invariant: "bad-pagemap-option",
        detail: `pagemap "${id}": vramBytes ${String(bytes)} is not an integer in [0, 2^40]; it has no device memory`
      })
      bytes = 0
    }
    return {
      id,
      owner: p.owner ?? owner,
      proto: p.proto ?? DEFAULT_PROTO,
      totalBytes: bytes - (bytes % PAGE_SIZE),
      dpaBase: (i + 1) * DPA_SLOT
    }
  })
}

/** The pagemaps of one machine. */
export interface SimPagemaps {
  /** Every configured pagemap, in order. */
  readonly all: ReadonlyArray<DevicePagemapApi>
  /** The first configured pagemap, or an empty one (id `"none"`, 0 bytes: `populateMm` fails with `OutOfMemory`). */
  readonly primary: DevicePagemapApi
  /** The registry the GPU SVM core resolves device pages through (`Pagemaps`). */
  readonly mappers: ReadonlyMap<string, DeviceMapper>
}

const built = new WeakMap<MachineState, SimPagemaps>()

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
 * Builds (once per machine) the pagemaps configured in `st.options`, registers
 * their device memory in `st.devmem` and installs the `migrate_to_ram` hook.
 */
export const makePagemaps = (st: MachineState): SimPagemaps => {
  const cached = built.get(st)
  if (cached !== undefined) return cached
  const point = st.schedule.at("pagemap")
  const notifiers = st.notifiers
  const lock = st.lock
  const onViolation = (v: { readonly invariant: string; readonly detail: string }) => st.recordViolation(v)
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
    const stopAt = fail ? Math.floor(live.length / 2) : live.length
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
      const b = bufs[i]
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

  /** `drm_pagemap_evict_to_ram` of one allocation (caller holds the mmap write lock). False: copy failed. */
  const evictAllocation = (vram: Vram, a: DevAllocation): Effect.Effect<boolean> =>
    Effect.suspend(() => {
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
   * `drm_pagemap_migrate_to_ram` for the CPU entry `pte` at `addr` (mmap read
   * lock held): waits out the timeslice, then migrates the allocation's pages
   * of the VMA back. A stale `pte` (already migrated) is a no-op.
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
    const ok = yield* migrateLock.withPermits(1)(Effect.suspend(() => {
      if (st.pt.get(vpn) !== pte) return Effect.succeed(true)
      const page = vram.pages.get(pte.devicePfn)
      if (page === undefined) return Effect.succeed(true)
      const vma = st.vmas.find(addr)
      const ptes = entriesOf(vram, page.alloc).filter((p) =>
        vma !== undefined && p.vpn * PAGE_SIZE >= vma.start && p.vpn * PAGE_SIZE < vma.end && st.pt.get(p.vpn) === p
      )
      return toRam(vram, ptes)
    }))
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
    if (vpns.length !== a.pfns.length || windowBusy(start, end)) {
      vram.release(a)
      return "busy"
    }
    st.pt.splitAt(start)
    st.pt.splitAt(end)
    const fail = takeCopyFail()
    const stopAt = fail ? Math.floor(vpns.length / 2) : vpns.length
    const bufs: Array<Uint8Array | undefined> = new Array(vpns.length)
    for (let i = 0; i < stopAt; i++) {
      const pte = st.pt.get(vpns[i]!)
      if (pte === undefined || pte.kind !== "system" || st.frames.isBlank(pte.pfn)) continue
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
      if (old !== undefined && old.kind === "system" && old.pfn !== 0) {
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
      const b = bufs[i]
      if (b !== undefined) {
        vram.bytes.set(pfn, b)
        copied++
      }
    }
    vram.traffic.bytesToVram += copied * PAGE_SIZE
    vram.traffic.pagesToVram += vpns.length
    return "ok"
  }

  const makeOne = (vram: Vram): DevicePagemapApi => {
    const bad = (reason: string, addr?: number) =>
      addr === undefined ? new BadAddress({ reason: `populate_mm: ${reason}` }) : new BadAddress({ reason: `populate_mm: ${reason}`, addr })
    const oom = (reason: string, addr: number) => new OutOfMemory({ reason: `populate_mm: ${reason}`, addr })

    /** The part of `populateMm` under the mmap read lock (§11.9). */
    const populateLocked = Effect.fnUntraced(function*(start: number, end: number, expiresAt: number) {
      if (!st.alive) return yield* bad("the address space has exited", start)
      const vma = st.vmas.find(start)
      if (vma === undefined || end > vma.end) return yield* bad("[start, end) is not inside one VMA", start)
      if (vma.kind !== "anonymous" || vma.shared) {
        return yield* bad(`a ${vma.shared ? "shared " : ""}${vma.kind} VMA cannot migrate to device memory`, start)
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
      if (bytes > vram.totalBytes) return yield* oom(`${bytes} bytes do not fit in ${vram.totalBytes} bytes of device memory`, start)
      if (st.inject.vramAllocFail > 0) {
        st.inject.vramAllocFail--
        return yield* oom("device memory allocation failed (injected)", start)
      }
      if (vram.freeBytes < bytes) {
        // Memory pressure: evict least recently used allocations (not those with pages in the window, nor
        // those of a populate still in flight: no page installed yet, under the read lock they can exist).
        const candidates = vram.lru().filter((a) => !ours.has(a) && a.livePages > 0)
        let reclaimable = vram.freeBytes
        for (const a of candidates) for (const b of a.blocks) reclaimable += b.size
        if (reclaimable < bytes) return yield* oom(`only ${reclaimable} bytes could be freed, ${bytes} needed`, start)
        for (const a of candidates) {
          if (vram.freeBytes >= bytes) break
          yield* evictAllocation(vram, a)
        }
        if (vram.freeBytes < bytes) return yield* oom("eviction could not free enough device memory", start)
      }
      const a = vram.allocate(need, expiresAt)
      if (a === undefined) return yield* oom("device memory allocation failed", start)
      // Whatever ends this call before the commit (copy failure, interruption), the unused allocation goes back.
      return yield* Effect.ensuring(
        migrateInto(a, vma.prot.write, start, end, foreign),
        Effect.sync(() => {
          if (!a.freed && a.livePages === 0) vram.release(a)
        })
      )
    })

    /** Foreign pages back to RAM, then the MIGRATE invalidation and the commit into `a`. */
    const migrateInto = Effect.fnUntraced(function*(
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
      if (done === "copy-failed") {
        return yield* new Busy({ reason: "populate_mm: copy to device memory failed; nothing migrated", addr: start })
      }
      if (done === "busy") {
        return yield* new Busy({
          reason: "populate_mm: migrate_vma collected fewer pages than asked (a racing change of the window); nothing migrated",
          addr: start
        })
      }
    })

    const populateMm = Effect.fnUntraced(function*(start: number, end: number, o?: PopulateOptions) {
      yield* point
      if (!isAddress(start) || start % PAGE_SIZE !== 0) return yield* bad("start is not a page-aligned address")
      if (!Number.isSafeInteger(end) || end <= start || end % PAGE_SIZE !== 0) {
        return yield* bad("end must be a page-aligned address above start", start)
      }
      const ts = o?.timesliceMs ?? 0
      if (typeof ts !== "number" || !Number.isFinite(ts) || ts < 0) {
        return yield* bad("timesliceMs must be a non-negative number of milliseconds", start)
      }
      if (vram.buddy === undefined) return yield* oom(`pagemap "${vram.id}" has no device memory`, start)
      const now = yield* Clock.currentTimeMillis
      // drm_pagemap_populate_mm holds the mmap lock for reading (kernel-semantics §11.9).
      return yield* lock.withRead(populateLocked(start, end, now + ts))
    })

    const evictAll = Effect.flatMap(point, () =>
      lock.withWrite(Effect.suspend(() =>
        Effect.forEach(vram.lru(), (a) => (a.freed ? Effect.void : evictAllocation(vram, a)), { discard: true })
      )))

    const deviceMap = (page: DevicePage, order: number, dir: DmaDirection): Effect.Effect<DeviceAddress, BadAddress> =>
      Effect.flatMap(point, () =>
        Effect.suspend(() => {
          const fail = (reason: string) => Effect.fail(new BadAddress({ reason: `device_map: ${reason}` }))
          if (typeof page !== "object" || page === null || page._tag !== "Device") return fail("page is not a device page")
          if (page.pagemap !== vram.id) return fail(`page of pagemap "${String(page.pagemap)}", not "${vram.id}"`)
          if (!Number.isSafeInteger(order) || order < 0 || order > 18) return fail("order must be an integer in [0, 18]")
          if (!DIRS.includes(dir)) return fail("dir is not a DMA direction")
          const pfn = page.devicePfn
          if (!Number.isSafeInteger(pfn) || pfn % 2 ** order !== 0) return fail(`device pfn ${pfn} is not aligned to order ${order}`)
          const head = vram.pages.get(pfn)
          if (head === undefined) return fail(`device page ${pfn} is not in use (freed)`)
          for (let i = 1; i < 2 ** order; i++) {
            if (vram.pages.get(pfn + i)?.alloc !== head.alloc) return fail(`${2 ** order} pages from ${pfn} are not in one allocation`)
          }
          head.alloc.lastUse = vram.stamp()
          return Effect.succeed({ addr: vram.addMapping(pfn, order), proto: vram.proto, order, dir })
        }))

    const deviceUnmap = (addr: DeviceAddress): Effect.Effect<void> =>
      Effect.flatMap(point, () =>
        Effect.sync(() => {
          const ok = typeof addr === "object" && addr !== null && addr.proto === vram.proto &&
            vram.removeMapping(addr.addr, addr.order)
          if (!ok) {
            st.recordViolation({
              invariant: "device-unmap-unknown",
              detail: `device_unmap of ${JSON.stringify(addr)} on pagemap "${vram.id}": no live mapping at that address and order`
            })
          }
        }))

    const readDevice = (devAddr: number, length: number): Effect.Effect<Uint8Array, BadAddress> =>
      Effect.suspend(() => {
        const err = vram.checkAccess("device read", devAddr, length)
        if (err !== undefined) return Effect.fail(new BadAddress({ reason: err, addr: devAddr }))
        const out = new Uint8Array(length)
        let done = 0
        while (done < length) {
          const at = devAddr + done
          const pfn = Math.floor(at / PAGE_SIZE)
          const off = at - pfn * PAGE_SIZE
          const n = Math.min(PAGE_SIZE - off, length - done)
          vram.readPage(pfn, off, out, done, n)
          vram.touch(pfn)
          done += n
        }
        return Effect.succeed(out)
      })

    const writeDevice = (devAddr: number, bytes: Uint8Array): Effect.Effect<void, BadAddress> =>
      Effect.suspend(() => {
        if (!(bytes instanceof Uint8Array)) return Effect.fail(new BadAddress({ reason: "device write: bytes must be a Uint8Array", addr: devAddr }))
        const err = vram.checkAccess("device write", devAddr, bytes.length)
        if (err !== undefined) return Effect.fail(new BadAddress({ reason: err, addr: devAddr }))
        let done = 0
        while (done < bytes.length) {
          const at = devAddr + done
          const pfn = Math.floor(at / PAGE_SIZE)
          const off = at - pfn * PAGE_SIZE
          const n = Math.min(PAGE_SIZE - off, bytes.length - done)
          vram.writePage(pfn, off, bytes, done, n)
          vram.touch(pfn)
          done += n
        }
        return Effect.void
      })

    return {
      id: vram.id,
      owner: vram.owner,
      proto: vram.proto,
      dpaBase: vram.dpaBase,
      totalBytes: vram.totalBytes,
      deviceMap,
      deviceUnmap,
      populateMm,
      evictAll,
      usage: Effect.sync(() => ({ totalBytes: vram.totalBytes, usedBytes: vram.usedBytes, allocations: vram.allocations.size })),
      traffic: Effect.sync(() => ({ ...vram.traffic })),
      liveMappings: Effect.sync(() => vram.liveMappings),
      readDevice,
      writeDevice
    }
  }

  const configs = resolvePagemaps(st.options, onViolation)
  const all = configs.map((c) => {
    const vram = new Vram(c, onViolation, st.devmem.allocationId)
    st.devmem.byId.set(c.id, vram)
    return makeOne(vram)
  })
  const primary = all[0] ??
    makeOne(
      new Vram(
        { id: "none", owner: st.options.devicePrivateOwner ?? DEFAULT_OWNER, proto: DEFAULT_PROTO, totalBytes: 0, dpaBase: 0 },
        onViolation,
        st.devmem.allocationId
      )
    )
  if (all.length > 0) {
    st.hooks.cpuTouchedDevicePage = (addr, pte) => {
      const vram = st.devmem.of(pte)
      return vram === undefined
        ? Effect.fail(new BadAddress({ reason: `device-private page of unknown pagemap "${pte.pagemap}"`, addr }))
        : migrateToRam(vram, addr, pte)
    }
  }
  const mappers = new Map<string, DeviceMapper>(all.map((p) => [p.id, p]))
  const result: SimPagemaps = { all, primary, mappers }
  built.set(st, result)
  return result
}

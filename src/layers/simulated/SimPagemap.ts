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
 * This file is the service object: the `DevicePagemap` API of each pagemap
 * (argument checks, locks, `deviceMap`, device access) and the `Pagemaps`
 * mapper registry built from them; the migrations themselves (collect / copy /
 * finalize, eviction, device-private entries) are the engine of `Migrate.ts`.
 *
 * @since 0.1.0
 */
import { Clock, Effect } from "effect"
import { PAGE_SIZE, isAddress } from "../../domain/Address.ts"
import type { DeviceAddress, DmaDirection } from "../../domain/DeviceAddress.ts"
import { BadAddress, OutOfMemory } from "../../domain/Errors.ts"
import { NOT_NOW, type Now, withNow } from "../../domain/Now.ts"
import type { DevicePage } from "../../domain/PageRef.ts"
import type { DeviceBo, DevicePagemapApi, PopulateOptions } from "../../services/DevicePagemap.ts"
import type { DeviceMapper } from "../../services/Pagemaps.ts"
import { boMapped } from "./CpuFault.ts"
import type { MachineState, SimulatedOptions } from "./MachineState.ts"
import { makeMigrationEngine, populateBad, populateOom } from "./Migrate.ts"
import { type DevAllocation, DPA_SLOT, MAX_VRAM_BYTES, Vram, type VramConfig } from "./Vram.ts"

const DIRS: ReadonlyArray<DmaDirection> = ["bidirectional", "to-device", "from-device"]

/**
 * Default device-private owner of simulated pagemaps.
 *
 * @category constants
 * @since 0.1.0
 */
export const DEFAULT_OWNER = "gpusvm"

/**
 * Default interconnect protocol of simulated pagemaps.
 *
 * @category constants
 * @since 0.1.0
 */
export const DEFAULT_PROTO = "vram"

/**
 * Resolves the pagemap options of a machine (see `SimulatedOptions.pagemaps`):
 * ids, owners, protocols, sizes (rounded down to 4 KiB; invalid sizes become 0
 * with a `bad-pagemap-option` violation) and disjoint device-physical windows.
 * A duplicate id throws (a defect when the layer is built).
 *
 * @category constructors
 * @since 0.1.0
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

/**
 * The pagemaps of one machine.
 *
 * @category models
 * @since 0.1.0
 */
export interface SimPagemaps {
  /** Every configured pagemap, in order. */
  readonly all: ReadonlyArray<DevicePagemapApi>
  /** The first configured pagemap, or an empty one (id `"none"`, 0 bytes: `populateMm` fails with `OutOfMemory`). */
  readonly primary: DevicePagemapApi
  /** The registry the GPU SVM core resolves device pages through (`Pagemaps`). */
  readonly mappers: ReadonlyMap<string, DeviceMapper>
}

const built = new WeakMap<MachineState, SimPagemaps>()

/**
 * Builds (once per machine) the pagemaps configured in `st.options`, registers
 * their device memory in `st.devmem` and installs the `migrate_to_ram` hook
 * (the engine's `migrateToRam`).
 *
 * @category constructors
 * @since 0.1.0
 */
export const makePagemaps = (st: MachineState): SimPagemaps => {
  const cached = built.get(st)
  if (cached !== undefined) return cached
  const point = st.schedule.at("pagemap")
  const lock = st.lock
  const onViolation = (v: { readonly invariant: string; readonly detail: string }) => st.recordViolation(v)
  const engine = makeMigrationEngine(st)

  const makeOne = (vram: Vram): DevicePagemapApi => {
    const populateMm = Effect.fnUntraced(function*(start: number, end: number, o?: PopulateOptions) {
      yield* point
      if (!isAddress(start) || start % PAGE_SIZE !== 0) return yield* populateBad("start is not a page-aligned address")
      if (!Number.isSafeInteger(end) || end <= start || end % PAGE_SIZE !== 0) {
        return yield* populateBad("end must be a page-aligned address above start", start)
      }
      const ts = o?.timesliceMs ?? 0
      if (typeof ts !== "number" || !Number.isFinite(ts) || ts < 0) {
        return yield* populateBad("timesliceMs must be a non-negative number of milliseconds", start)
      }
      if (vram.buddy === undefined) return yield* populateOom(`pagemap "${vram.id}" has no device memory`, start)
      const now = yield* Clock.currentTimeMillis
      // drm_pagemap_populate_mm holds the mmap lock for reading (kernel-semantics §11.9).
      return yield* lock.withRead(engine.migrateToDevmem(vram, start, end, now + ts))
    })

    const evictAll = Effect.flatMap(point, () =>
      lock.withWrite(Effect.suspend(() =>
        Effect.forEach(vram.lru(), (a) => (a.freed ? Effect.void : engine.evictAllocation(vram, a)), { discard: true })
      )))

    /** `device_map`'s refusal of its arguments (no side effects), or `undefined`. */
    const mapRefusal = (page: DevicePage, order: number, dir: DmaDirection): string | undefined => {
      if (typeof page !== "object" || page === null || page._tag !== "Device") return "page is not a device page"
      if (page.pagemap !== vram.id) return `page of pagemap "${String(page.pagemap)}", not "${vram.id}"`
      if (!Number.isSafeInteger(order) || order < 0 || order > 18) return "order must be an integer in [0, 18]"
      if (!DIRS.includes(dir)) return "dir is not a DMA direction"
      const pfn = page.devicePfn
      if (!Number.isSafeInteger(pfn) || pfn % 2 ** order !== 0) return `device pfn ${pfn} is not aligned to order ${order}`
      const head = vram.pages.get(pfn)
      if (head === undefined) return `device page ${pfn} is not in use (freed)`
      for (let i = 1; i < 2 ** order; i++) {
        if (vram.pages.get(pfn + i)?.alloc !== head.alloc) return `${2 ** order} pages from ${pfn} are not in one allocation`
      }
      return undefined
    }
    const mapSync = (page: DevicePage, order: number, dir: DmaDirection): DeviceAddress => {
      vram.pages.get(page.devicePfn)!.alloc.lastUse = vram.stamp()
      return { addr: vram.addMapping(page.devicePfn, order), proto: vram.proto, order, dir }
    }
    const deviceMap = (page: DevicePage, order: number, dir: DmaDirection): Effect.Effect<DeviceAddress, BadAddress> =>
      Effect.flatMap(point, () =>
        Effect.suspend(() => {
          const why = mapRefusal(page, order, dir)
          return why !== undefined ? Effect.fail(new BadAddress({ reason: `device_map: ${why}` })) : Effect.succeed(mapSync(page, order, dir))
        }))
    // issue #16: the fast paths, only where the point is void
    const deviceMapNow = (page: DevicePage, order: number, dir: DmaDirection): Now<DeviceAddress> =>
      point !== Effect.void || mapRefusal(page, order, dir) !== undefined ? NOT_NOW : mapSync(page, order, dir)

    const unmapSync = (addr: DeviceAddress): void => {
      const ok = typeof addr === "object" && addr !== null && addr.proto === vram.proto &&
        vram.removeMapping(addr.addr, addr.order)
      if (!ok) {
        st.recordViolation({
          invariant: "device-unmap-unknown",
          detail: `device_unmap of ${JSON.stringify(addr)} on pagemap "${vram.id}": no live mapping at that address and order`
        })
      }
    }
    const deviceUnmap = (addr: DeviceAddress): Effect.Effect<void> => Effect.flatMap(point, () => Effect.sync(() => unmapSync(addr)))
    const deviceUnmapNow = (addr: DeviceAddress): Now<void> => (point === Effect.void ? unmapSync(addr) : NOT_NOW)

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

    /** Buffer objects in device memory (kernel-semantics §11.17): pinned allocations, SVM evicted to make room. */
    const bos = vram.bos
    const allocateBo = (bytes: number): Effect.Effect<DeviceBo, OutOfMemory | BadAddress> =>
      Effect.flatMap(point, () =>
        lock.withWrite(Effect.gen(function*() {
          if (!Number.isSafeInteger(bytes) || bytes <= 0 || bytes % PAGE_SIZE !== 0) {
            return yield* new BadAddress({ reason: `bo_create: size ${bytes} is not a positive multiple of 4 KiB` })
          }
          if (vram.buddy === undefined || bytes > vram.totalBytes) {
            return yield* new OutOfMemory({ reason: `bo_create: ${bytes} bytes do not fit in ${vram.totalBytes} bytes of device memory` })
          }
          for (const a of vram.lru()) {
            if (vram.freeBytes >= bytes) break
            if (!a.freed) yield* engine.evictAllocation(vram, a)
          }
          const a = vram.freeBytes >= bytes ? vram.allocate(bytes / PAGE_SIZE, 0, undefined, true) : undefined
          if (a === undefined) return yield* new OutOfMemory({ reason: `bo_create: no room for ${bytes} bytes even after evicting every SVM allocation` })
          const bo: DeviceBo = {
            bytes,
            addrs: a.blocks.map((b) => ({ addr: vram.dpaBase + b.offset, proto: vram.proto, order: Math.log2(b.size / PAGE_SIZE), dir: "bidirectional" as const }))
          }
          bos.set(bo, a)
          return bo
        })))
    /** `gem_close`: a BO a CPU mapping still holds is released with its last mapping (`CpuFault.releaseClosedBos`). */
    const freeBo = (bo: DeviceBo): Effect.Effect<void> =>
      Effect.sync(() => {
        const a = bos.get(bo)
        if (a === undefined) return
        bos.delete(bo)
        if (boMapped(st, a)) vram.closedBos.add(a)
        else vram.release(a)
      })

    const api: DevicePagemapApi = {
      allocateBo,
      freeBo,
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
    return withNow(api, { deviceMapNow, deviceUnmapNow })
  }

  // a later process of the machine resolves the same options again: their problems were recorded once already
  const configs = resolvePagemaps(st.options, st.devmem.byId.size > 0 ? () => {} : onViolation)
  // kernel-semantics §11.17: pagemaps are per device, so a second process of the machine gets the same device memory
  const all = configs.map((c) => {
    let vram = st.devmem.byId.get(c.id)
    if (vram === undefined) {
      vram = new Vram(c, onViolation, st.devmem.allocationId, st.frames.store)
      st.devmem.byId.set(c.id, vram)
    }
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
        : engine.migrateToRam(vram, addr, pte)
    }
    st.hooks.cpuTouchedDevicePageNow = (addr, pte) => {
      const vram = st.devmem.of(pte)
      return vram === undefined ? NOT_NOW : engine.migrateToRamNow(vram, addr, pte)
    }
  }
  const mappers = new Map<string, DeviceMapper>(all.map((p) => [p.id, p]))
  const result: SimPagemaps = { all, primary, mappers }
  built.set(st, result)
  return result
}

/**
 * Simulated device memory (VRAM) of one pagemap: the synchronous core behind
 * `SimPagemap.ts` — a buddy allocator (`drm_buddy`, `src/domain/Buddy.ts`),
 * device frames holding real bytes, device allocations
 * (`struct drm_pagemap_devmem`) that own their blocks, the device pages in use
 * (`zone_device_data`, one per device-private CPU entry), the device
 * mappings made by `device_map`, LRU bookkeeping and traffic counters.
 *
 * Model:
 * - A pagemap's device-physical window is `[dpaBase, dpaBase + totalBytes)`;
 *   device pfn = device-physical address / 4096. Windows of the pagemaps of
 *   one machine never overlap (pagemap `i` starts at `(i + 1) · 2^40`), so a
 *   device pfn names one page of one pagemap. Buddy blocks are aligned to
 *   their size, so a block of `2^k` pages starts at a device pfn aligned to
 *   `2^k`.
 * - Bytes are lazy, like system memory: a device page holds a 4 KiB buffer
 *   only once written (by a migration copy of a page that held data, or by the
 *   device); an untouched device page reads as zeros and costs nothing.
 * - An allocation owns all its blocks until its last page leaves (migrated
 *   back, unmapped, zapped by `madvise`, process exit): then every block goes
 *   back to the buddy allocator (`drm_pagemap_devmem_release` /
 *   `devmem_release`). A released device page is poisoned: device reads,
 *   writes and `device_map` of it fail.
 * - LRU: each allocation records its last use (creation, `device_map`, device
 *   reads and writes); eviction under pressure takes the least recently used.
 *
 * Plain synchronous code, no errors thrown: every operation runs inside one
 * synchronous step of a service call (the callers hold the mmap lock as the
 * operation requires); violations go through the `onViolation` callback.
 *
 * @since 0.1.0
 */
import { PAGE_SIZE } from "../../domain/Address.ts"
import * as Buddy from "../../domain/Buddy.ts"
import type { Violation } from "../../services/Machine.ts"
import type { DeviceBo } from "../../services/DevicePagemap.ts"
import { PageCounts, PageStore } from "./Frames.ts"
import { PageSlots } from "./PageSlots.ts"
import type { DevicePte } from "./PageTable.ts"

/**
 * Bytes of each pagemap's device-physical window slot: pagemap `i` starts at `(i + 1) · DPA_SLOT`.
 *
 * @category constants
 */
export const DPA_SLOT = 2 ** 40

/**
 * Largest VRAM size of one pagemap (its window slot).
 *
 * @category constants
 */
export const MAX_VRAM_BYTES = DPA_SLOT

/** `x` (a non-negative integer) as a 32-bit integer value where it fits, so V8 keeps it unboxed. */
const smallInt = (x: number): number => (x < 2 ** 31 ? x | 0 : x)

/**
 * A device allocation (`struct drm_pagemap_devmem`): owns its buddy blocks until its last page leaves.
 *
 * @category models
 */
export interface DevAllocation {
  /** Machine-wide unique id (`DevicePage.allocation`). */
  readonly id: number
  /** The buddy blocks, in allocation order (non-increasing sizes). */
  readonly blocks: ReadonlyArray<Buddy.Block>
  /** Device pfns of the allocation, block by block, in order. */
  readonly pfns: ReadonlyArray<number>
  /** Pages still in use (installed as device-private CPU entries). */
  livePages: number
  /** Effect-clock time (ms) before which a CPU touch waits (the migration timeslice). */
  readonly expiresAt: number
  /** LRU stamp (larger = more recent). */
  lastUse: number
  /** Blocks returned to the allocator. */
  freed: boolean
  /**
   * The process whose pages the allocation holds (a `MachineState`; kernel-semantics
   * §11.17: VRAM is shared by the machine's processes, so another process's
   * populate may evict it, through its owner's address space).
   */
  readonly mm: object | undefined
  /**
   * A buffer object's memory (Xe `xe_bo_create` in VRAM, kernel-semantics §11.17 / IGT
   * `evict-malloc-mix-bo`): pinned — never an eviction candidate, never in `lru()` —
   * until `releaseBo`; its pages are in use for device accesses without CPU entries.
   */
  readonly pinned: boolean
}

/**
 * One device page in use: its allocation and the CPU entry that maps it.
 *
 * @category models
 */
export interface DevPage {
  readonly alloc: DevAllocation
  readonly pte: DevicePte
}

/**
 * Migration traffic counters of one pagemap.
 *
 * @category models
 */
export interface VramTraffic {
  bytesToVram: number
  bytesToRam: number
  pagesToVram: number
  pagesToRam: number
  evictions: number
}

/**
 * The configuration of one pagemap (resolved options).
 *
 * @category models
 */
export interface VramConfig {
  readonly id: string
  readonly owner: string
  readonly proto: string
  /** Usable size (a multiple of 4 KiB; 0 = no device memory). */
  readonly totalBytes: number
  /** First device-physical address. */
  readonly dpaBase: number
}

/**
 * The device memory of one pagemap.
 *
 * @category models
 */
export class Vram {
  readonly id: string
  readonly owner: string
  readonly proto: string
  readonly totalBytes: number
  readonly dpaBase: number
  /** The allocator (`undefined` for a zero-size pagemap). */
  readonly buddy: Buddy.BuddyAllocator | undefined
  /**
   * Where device page buffers come from: the machine's page store by default
   * (issue #16), so a page's buffer freed by a migration one way serves the
   * next page migrating the other way instead of both memories holding it.
   */
  readonly store: PageStore
  /** Materialised contents by device pfn (512-slot blocks, no per-page `Map` churn: issue #16). */
  readonly bytes = new PageSlots<Uint8Array>(true)
  /** Device pages in use, by device pfn. */
  readonly pages = new PageSlots<DevPage>(true)
  /** Device pages of buffer objects (pinned allocations): in use, with no CPU entry (kernel-semantics §11.17). */
  readonly boPages = new Set<number>()
  /**
   * Buffer objects by their `DeviceBo` (kernel-semantics §11.17): the pinned allocation behind each,
   * from `allocateBo` until its memory is released.
   */
  readonly bos = new Map<DeviceBo, DevAllocation>()
  /**
   * Buffer objects closed (`freeBo`, `gem_close`) while a CPU mapping still holds them (IGT
   * `new-bo-map`): released when their last mapping goes (`CpuFault.releaseOrphans`).
   */
  readonly closedBos = new Set<DevAllocation>()
  /** Live allocations by id. */
  readonly allocations = new Map<number, DevAllocation>()
  /** Live `device_map` mappings: device address → order → count. */
  readonly mappings = new Map<number, Map<number, number>>()
  /** Live mappings covering each device pfn. */
  readonly mapRefs = new PageCounts()
  readonly traffic: VramTraffic = { bytesToVram: 0, bytesToRam: 0, pagesToVram: 0, pagesToRam: 0, evictions: 0 }
  private tick = 0
  private readonly onViolation: (v: Violation) => void
  private readonly nextAllocationId: () => number

  constructor(config: VramConfig, onViolation: (v: Violation) => void, nextAllocationId: () => number, store: PageStore = new PageStore()) {
    this.store = store
    this.id = config.id
    this.owner = config.owner
    this.proto = config.proto
    this.totalBytes = config.totalBytes
    this.dpaBase = config.dpaBase
    this.buddy = config.totalBytes > 0 ? Buddy.make(config.totalBytes) : undefined
    this.onViolation = onViolation
    this.nextAllocationId = nextAllocationId
  }

  /** First device pfn of the window. */
  get firstPfn(): number {
    return this.dpaBase / PAGE_SIZE
  }

  /** Is `dpa` inside this pagemap's device-physical window? */
  ownsAddress(dpa: number): boolean {
    return dpa >= this.dpaBase && dpa < this.dpaBase + this.totalBytes
  }

  /** Bytes allocated from the buddy allocator. */
  get usedBytes(): number {
    return this.buddy?.usedBytes ?? 0
  }

  /** Free bytes. */
  get freeBytes(): number {
    return this.buddy?.freeBytes ?? 0
  }

  /** A fresh LRU stamp. */
  stamp(): number {
    return ++this.tick
  }

  /** Marks the allocation of device page `pfn` used now (LRU). */
  touch(pfn: number): void {
    const p = this.pages.get(pfn)
    if (p !== undefined) p.alloc.lastUse = this.stamp()
  }

  /**
   * `drm_buddy_alloc_blocks` for `npages` pages as a new allocation (pages not
   * yet in use); `undefined` when fewer bytes are free. All-or-nothing.
   */
  allocate(npages: number, expiresAt: number, mm?: object, pinned = false): DevAllocation | undefined {
    if (this.buddy === undefined || npages <= 0) return undefined
    const blocks = this.buddy.allocPages(npages * PAGE_SIZE)
    if (blocks === undefined) return undefined
    const pfns: Array<number> = []
    const first = this.firstPfn
    for (const b of blocks) {
      // a device pfn below 2^31 as a 32-bit integer (a V8 Smi): the quotients above are heap numbers, and one
      // stored in DevicePte.devicePfn boxes that field in every entry (16 bytes each, issue #16)
      const head = smallInt(first + b.offset / PAGE_SIZE)
      for (let i = 0, n = b.size / PAGE_SIZE; i < n; i++) pfns.push(head + i)
    }
    const a: DevAllocation = {
      id: this.nextAllocationId(),
      blocks,
      pfns,
      livePages: 0,
      expiresAt,
      lastUse: this.stamp(),
      freed: false,
      mm,
      pinned
    }
    this.allocations.set(a.id, a)
    if (pinned) for (const pfn of pfns) this.boPages.add(pfn)
    return a
  }

  /** Gives an allocation's blocks back (`drm_buddy_free_list`); drops any page of it still recorded. */
  release(a: DevAllocation): void {
    if (a.freed) return
    a.freed = true
    this.allocations.delete(a.id)
    if (a.pinned) {
      for (const pfn of a.pfns) {
        this.boPages.delete(pfn)
        const b = this.bytes.get(pfn)
        if (b !== undefined) {
          this.bytes.delete(pfn)
          this.store.give(b)
        }
      }
    }
    for (const pfn of a.pfns) {
      if (this.pages.get(pfn)?.alloc === a) this.dropPage(pfn)
    }
    this.buddy?.freeList(a.blocks)
  }

  /** Device page `pfn` now backs the CPU entry `pte`. */
  install(a: DevAllocation, pfn: number, pte: DevicePte): void {
    this.pages.set(pfn, { alloc: a, pte })
    a.livePages++
  }

  /** Forgets page `pfn` (contents recycled); records `devmem-freed-while-mapped` if a device mapping still covers it. */
  private dropPage(pfn: number): void {
    this.pages.delete(pfn)
    const b = this.bytes.get(pfn)
    if (b !== undefined) {
      this.bytes.delete(pfn)
      this.store.give(b)
    }
    if (this.mapRefs.get(pfn) > 0) {
      this.onViolation({
        invariant: "devmem-freed-while-mapped",
        detail: `device page ${pfn} of pagemap "${this.id}" freed while a device_map mapping still covered it`
      })
    }
  }

  /**
   * The page of the CPU entry `pte` left (migrated back, zapped): frees the
   * device page, and the allocation's blocks when it was its last page
   * (`drm_pagemap_page_free` → `devmem_release`).
   */
  releasePage(pte: DevicePte): void {
    const p = this.pages.get(pte.devicePfn)
    if (p === undefined || p.pte !== pte) return
    this.dropPage(pte.devicePfn)
    p.alloc.livePages--
    if (p.alloc.livePages <= 0) this.release(p.alloc)
  }

  /** Is device pfn `pfn` a page in use? */
  isLive(pfn: number): boolean {
    return this.pages.has(pfn)
  }

  /** Copies `len` bytes of device page `pfn` from `offset` into `dst` at `dstOff` (zeros if never written). */
  readPage(pfn: number, offset: number, dst: Uint8Array, dstOff: number, len: number): void {
    const b = this.bytes.get(pfn)
    if (b === undefined) dst.fill(0, dstOff, dstOff + len)
    else dst.set(b.subarray(offset, offset + len), dstOff)
  }

  /** Writes `len` bytes of `src` from `srcOff` into device page `pfn` at `offset`. */
  writePage(pfn: number, offset: number, src: Uint8Array, srcOff: number, len: number): void {
    let b = this.bytes.get(pfn)
    if (b === undefined) {
      // a whole-page write overwrites every byte: no zeroing first (issue #16)
      b = this.store.take(len !== PAGE_SIZE)
      this.bytes.set(pfn, b)
    }
    b.set(src.subarray(srcOff, srcOff + len), offset)
  }

  /**
   * Device access check of `[dpa, dpa + length)`: every page must be in use.
   * Records a `stale-device-access` violation and returns a reason otherwise.
   */
  checkAccess(what: string, dpa: number, length: number): string | undefined {
    if (!Number.isSafeInteger(dpa) || dpa < 0 || !Number.isSafeInteger(length) || length < 0) {
      return this.stale(`${what}: [${dpa}, +${length}) is not a device address range`)
    }
    const first = Math.floor(dpa / PAGE_SIZE)
    const last = Math.floor((dpa + Math.max(length, 1) - 1) / PAGE_SIZE)
    for (let pfn = first; pfn <= last; pfn++) {
      if (!this.pages.has(pfn) && !this.boPages.has(pfn)) {
        return this.stale(
          this.ownsAddress(pfn * PAGE_SIZE)
            ? `${what}: device page ${pfn} of pagemap "${this.id}" is not in use (freed)`
            : `${what}: device address ${pfn * PAGE_SIZE} is outside pagemap "${this.id}"`
        )
      }
    }
    return undefined
  }

  private stale(detail: string): string {
    this.onViolation({ invariant: "stale-device-access", detail })
    return detail
  }

  /** Records a live `device_map` mapping of `2^order` pages from `pfn`. */
  addMapping(pfn: number, order: number): number {
    const addr = pfn * PAGE_SIZE
    let byOrder = this.mappings.get(addr)
    if (byOrder === undefined) {
      byOrder = new Map()
      this.mappings.set(addr, byOrder)
    }
    byOrder.set(order, (byOrder.get(order) ?? 0) + 1)
    this.mapRefs.add(pfn, 2 ** order, 1)
    return addr
  }

  /** Removes one live mapping at `addr` with `order`; false if there is none. */
  removeMapping(addr: number, order: number): boolean {
    const byOrder = this.mappings.get(addr)
    const n = byOrder?.get(order) ?? 0
    if (byOrder === undefined || n <= 0) return false
    if (n === 1) byOrder.delete(order)
    else byOrder.set(order, n - 1)
    if (byOrder.size === 0) this.mappings.delete(addr)
    const pfn = addr / PAGE_SIZE
    this.mapRefs.add(pfn, 2 ** order, -1)
    return true
  }

  /** Number of live device mappings. */
  get liveMappings(): number {
    let n = 0
    for (const m of this.mappings.values()) for (const c of m.values()) n += c
    return n
  }

  /** Allocations by ascending last use (the eviction order). */
  lru(): Array<DevAllocation> {
    return [...this.allocations.values()].filter((a) => !a.pinned).sort((a, b) => a.lastUse - b.lastUse)
  }
}

/**
 * The device memories of one machine, by pagemap id, with the machine-wide
 * allocation-id counter. Held by `MachineState.devmem`.
 *
 * @category models
 */
export class Devmem {
  readonly byId = new Map<string, Vram>()
  private nextId = 1

  /** A fresh allocation id. */
  readonly allocationId = (): number => this.nextId++

  /** The device memory holding the page of device entry `pte`, if any. */
  of(pte: DevicePte): Vram | undefined {
    return this.byId.get(pte.pagemap)
  }

  /** A device entry was zapped (munmap, madvise, exit): its device page is freed. */
  entryGone(pte: DevicePte): void {
    this.of(pte)?.releasePage(pte)
  }
}

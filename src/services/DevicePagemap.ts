/**
 * `DevicePagemap`: one device memory region (`struct drm_pagemap` + its
 * `drm_pagemap_ops` and the devmem migration helpers of kernel-semantics §9).
 * A machine may have several (several devices, or several memory regions of
 * one device), each with its own device-private owner; `DevicePagemaps` lists
 * them, and `DevicePagemap` is the default (first) one.
 *
 * @since 0.1.0
 */
import type { Now } from "../domain/Now.ts"
import { Context, type Effect } from "effect"
import type { DeviceAddress, DmaDirection } from "../domain/DeviceAddress.ts"
import type { BadAddress, Busy, OutOfMemory } from "../domain/Errors.ts"
import type { DevicePage } from "../domain/PageRef.ts"

/**
 * Options of `populateMm`.
 *
 * @category models
 */
export interface PopulateOptions {
  /** Minimum residency in ms (Effect clock) before a CPU touch may migrate the pages back. */
  readonly timesliceMs?: number
}

/**
 * Device memory usage.
 *
 * @category models
 */
export interface PagemapUsage {
  readonly totalBytes: number
  readonly usedBytes: number
  /** Live device allocations (`drm_pagemap_devmem`). */
  readonly allocations: number
}

/**
 * Migration traffic of a pagemap.
 *
 * @category models
 */
export interface PagemapTraffic {
  /** Bytes actually copied into device memory (pages that held data; untouched pages are not copied). */
  readonly bytesToVram: number
  /** Bytes actually copied back to system memory. */
  readonly bytesToRam: number
  /** Pages migrated into device memory (copied or not). */
  readonly pagesToVram: number
  /** Pages migrated back to system memory (copied or not). */
  readonly pagesToRam: number
  /** Allocations evicted under memory pressure or by `evictAll`. */
  readonly evictions: number
}

/**
 * The device memory of one buffer object (Xe `xe_bo_create` with a VRAM
 * placement; kernel-semantics §11.17, IGT `bo-unmap`, `evict-malloc-mix-bo`):
 * its size and its device addresses, one per buddy block, in order (what
 * `Gpu.bind` takes).
 *
 * @category models
 * @since 0.4.0
 */
export interface DeviceBo {
  readonly bytes: number
  readonly addrs: ReadonlyArray<DeviceAddress>
}

/**
 * The operations of one device memory region.
 *
 * @category models
 */
export interface DevicePagemapApi {
  /** Pagemap id, as found in `DevicePage.pagemap`. */
  readonly id: string
  /** Device-private page owner (`pgmap->owner`). */
  readonly owner: string
  /** Interconnect protocol name of its device addresses (`DRM_INTERCONNECT_DRIVER`-like). */
  readonly proto: string
  /** First device-physical address of its memory (pagemaps of one machine have disjoint windows). */
  readonly dpaBase: number
  /** Size of its device memory in bytes (0: none). */
  readonly totalBytes: number
  /** `drm_pagemap_ops.device_map`: the device address of a page of this pagemap. `BadAddress` for a foreign or freed page. */
  readonly deviceMap: (page: DevicePage, order: number, dir: DmaDirection) => Effect.Effect<DeviceAddress, BadAddress>
  /** `drm_pagemap_ops.device_unmap`. An address that matches no live mapping is recorded as a violation, never thrown. */
  readonly deviceUnmap: (addr: DeviceAddress) => Effect.Effect<void>
  /** Fast path of `deviceMap` (issue #16, `src/domain/Now.ts`): mapped in the calling step, or `NOT_NOW` with nothing done. Optional. */
  readonly deviceMapNow?: (page: DevicePage, order: number, dir: DmaDirection) => Now<DeviceAddress>
  /** Fast path of `deviceUnmap`. Optional; present with `deviceMapNow`. */
  readonly deviceUnmapNow?: (addr: DeviceAddress) => Now<void>
  /**
   * `drm_pagemap_populate_mm` / `drm_pagemap_migrate_to_devmem`: allocate device
   * memory for `[start, end)`, copy the present system pages in, install
   * device-private CPU entries; raises a MIGRATE invalidation (owner = this
   * pagemap's owner) before the change. Takes the mmap lock itself (for
   * reading in the simulated machine, as the kernel does, kernel-semantics
   * §11.9: a racing change of the window makes it fail `Busy`).
   * Pages already in this pagemap stay; device pages of other pagemaps are
   * migrated (back to RAM first). Under pressure, least recently used
   * allocations are evicted first (each with its own MIGRATE invalidation).
   * Errors: no VRAM even after eviction, or window larger than the device
   * memory → `OutOfMemory` (nothing evicted); window not in one private
   * anonymous VMA / unaligned → `BadAddress`; raced, or the copy failed
   * (nothing migrated) → `Busy`.
   */
  readonly populateMm: (start: number, end: number, o?: PopulateOptions) => Effect.Effect<void, OutOfMemory | Busy | BadAddress>
  /**
   * Memory pressure: every allocation of this pagemap back to system memory
   * (`drm_pagemap_evict_to_ram`), each with its own MIGRATE invalidation.
   * Takes the mmap lock (for writing in the simulated machine). An allocation
   * whose copy fails stays where it is.
   */
  readonly evictAll: Effect.Effect<void>
  /** Current usage. */
  readonly usage: Effect.Effect<PagemapUsage>
  /** Migration traffic so far: bytes copied to device memory and back to RAM, evicted allocations. */
  readonly traffic: Effect.Effect<PagemapTraffic>
  /** Live `deviceMap` mappings not yet `deviceUnmap`ped. */
  readonly liveMappings: Effect.Effect<number>
  /**
   * Reads device memory directly (the GPU's path to VRAM): bytes of
   * `[devAddr, devAddr + length)`. No yield point (a device read-modify-write
   * stays atomic); a page not in use (freed) is `BadAddress` and a recorded
   * `stale-device-access`.
   */
  readonly readDevice: (devAddr: number, length: number) => Effect.Effect<Uint8Array, BadAddress>
  /** Writes device memory directly (the GPU's path to VRAM); same rules as `readDevice`. */
  readonly writeDevice: (devAddr: number, bytes: Uint8Array) => Effect.Effect<void, BadAddress>
  /**
   * A buffer object's memory: `bytes` (a positive multiple of 4 KiB) of this
   * pagemap's device memory, zero-filled and pinned until `freeBo` — SVM
   * allocations are evicted (least recently used first) to make room, as TTM
   * evicts for a new BO; a BO itself is never evicted here (a documented
   * simplification: Xe may move an unpinned BO to system memory). Errors: not
   * enough device memory even after evicting every SVM allocation →
   * `OutOfMemory`; a bad size → `BadAddress`; a machine without BOs in device
   * memory (the native one) → `OutOfMemory` saying so.
   */
  readonly allocateBo: (bytes: number) => Effect.Effect<DeviceBo, OutOfMemory | BadAddress>
  /** Gives a buffer object's memory back (idempotent; an unknown BO is ignored). */
  readonly freeBo: (bo: DeviceBo) => Effect.Effect<void>
}

/**
 * The default device memory region.
 *
 * @category services
 */
export class DevicePagemap extends Context.Service<DevicePagemap, DevicePagemapApi>()("gpusvm/DevicePagemap") {}

/**
 * Every device memory region of the machine (possibly none).
 *
 * @category services
 */
export class DevicePagemaps extends Context.Service<DevicePagemaps, {
  readonly all: ReadonlyArray<DevicePagemapApi>
}>()("gpusvm/DevicePagemaps") {}

/**
 * `Pagemaps`: the registry through which the GPU SVM core reaches the device
 * memory regions it meets in HMM PFNs (`drm_pagemap_page_to_dpagemap`). The
 * device-memory issue's `DevicePagemap` layers register themselves here; with
 * no device memory the registry is empty and a device page in a range is a
 * typed `BadAddress` (the kernel's "raced" WARN).
 *
 * @since 0.1.0
 */
import { Context, type Effect } from "effect"
import type { DeviceAddress, DmaDirection } from "../domain/DeviceAddress.ts"
import type { BadAddress } from "../domain/Errors.ts"
import type { Now } from "../domain/Now.ts"
import type { DevicePage } from "../domain/PageRef.ts"

/**
 * The `drm_pagemap_ops` the core needs: map and unmap a device page for the device.
 *
 * @category models
 */
export interface DeviceMapper {
  /** Pagemap id (`DevicePage.pagemap`). */
  readonly id: string
  /** Device-private owner of the pagemap's pages. */
  readonly owner: string
  /** `drm_pagemap_ops.device_map`. */
  readonly deviceMap: (page: DevicePage, order: number, dir: DmaDirection) => Effect.Effect<DeviceAddress, BadAddress>
  /** `drm_pagemap_ops.device_unmap`. */
  readonly deviceUnmap: (addr: DeviceAddress) => Effect.Effect<void>
  /**
   * Fast path of `deviceMap` (issue #16, `src/domain/Now.ts`): the address in the calling step, or
   * `NOT_NOW` (nothing mapped or recorded) when it would fail or pass a point. Optional.
   */
  readonly deviceMapNow?: (page: DevicePage, order: number, dir: DmaDirection) => Now<DeviceAddress>
  /** Fast path of `deviceUnmap` for an address `deviceMapNow` returned. Optional; present with `deviceMapNow`. */
  readonly deviceUnmapNow?: (addr: DeviceAddress) => Now<void>
}

/**
 * Registry of pagemaps by id; default: none.
 *
 * @category services
 */
export const Pagemaps = Context.Reference<ReadonlyMap<string, DeviceMapper>>("gpusvm/Pagemaps", {
  defaultValue: () => new Map()
})

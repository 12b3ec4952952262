/**
 * A reference to one physical page: a system page frame, or a device page of a
 * device memory region (`struct page` + `is_device_private_page` /
 * `is_zone_device_page`).
 *
 * @since 0.1.0
 */

/**
 * A system-memory page frame, by page-frame number.
 *
 * @category models
 */
export interface SystemPage {
  readonly _tag: "System"
  /** Page-frame number (frame index in system memory). */
  readonly pfn: number
}

/**
 * A device page: lives in device memory `pagemap`, at device frame `devicePfn`,
 * belongs to the device allocation `allocation` (`drm_pagemap_devmem`) and to the
 * device-private owner `owner` (`pgmap->owner`).
 *
 * @category models
 */
export interface DevicePage {
  readonly _tag: "Device"
  readonly pagemap: string
  readonly devicePfn: number
  readonly allocation: number
  readonly owner: string
}

/**
 * `PageRef = System { pfn } | Device { pagemap, devicePfn, allocation, owner }`.
 *
 * @category models
 */
export type PageRef = SystemPage | DevicePage

/**
 * Constructs a system page reference.
 *
 * @category functions
 */
export const system = (pfn: number): SystemPage => ({ _tag: "System", pfn })

/**
 * Constructs a device page reference.
 *
 * @category functions
 */
export const device = (pagemap: string, devicePfn: number, allocation: number, owner: string): DevicePage => ({
  _tag: "Device",
  pagemap,
  devicePfn,
  allocation,
  owner
})

/**
 * `is_device_private_page` / `is_zone_device_page`: is this a device page?
 *
 * @category functions
 */
export const isDevice = (p: PageRef): p is DevicePage => p._tag === "Device"

/**
 * Is this a system page?
 *
 * @category functions
 */
export const isSystem = (p: PageRef): p is SystemPage => p._tag === "System"

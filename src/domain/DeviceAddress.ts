/**
 * `struct drm_pagemap_device_addr`: one DMA / device address of a run of
 * `2^order` pages, the interconnect protocol it goes over and the DMA direction.
 *
 * @since 0.1.0
 */

/**
 * DMA direction (`enum dma_data_direction`). Read-only ranges map `to-device`.
 *
 * @category models
 */
export type DmaDirection = "bidirectional" | "to-device" | "from-device"

/**
 * The protocol name of system memory reached through the DMA API (`DRM_INTERCONNECT_SYSTEM`).
 *
 * @category constants
 */
export const SYSTEM_PROTO = "system"

/**
 * A device-visible address: `addr` (an IOVA for system pages, a device-physical
 * address for device pages), `proto` (`"system"` or a device interconnect name),
 * `order` (pages covered = 2^order) and `dir`.
 *
 * @category models
 */
export interface DeviceAddress {
  readonly addr: number
  readonly proto: string
  readonly order: number
  readonly dir: DmaDirection
}

/**
 * `drm_pagemap_device_addr_encode(addr, proto, order, dir)`.
 *
 * @category functions
 */
export const make = (addr: number, proto: string, order: number, dir: DmaDirection): DeviceAddress => ({
  addr,
  proto,
  order,
  dir
})

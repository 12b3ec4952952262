/**
 * The CPU page table of the simulated address space: one entry per mapped
 * 4 KiB virtual page, keyed by virtual page number in a `Map` (never an array
 * sized by the address space), so a 64 GiB mapping with a few pages touched
 * costs a few entries.
 *
 * An entry ({@link Pte}) is a union:
 * - `system`: a system page frame (`pfn`), whether the CPU may write through
 *   it (`writable`: false for the zero page, page-cache pages of private
 *   mappings, read-only VMAs), and the order of the mapping it belongs to
 *   (9 while a 2 MiB PMD mapping is intact, `pmd_trans_huge`; 0 after a split).
 * - `device`: a device-private entry (`is_device_private_entry`): the CPU
 *   cannot reach the page; a CPU touch migrates it back first
 *   (`migrate_to_ram`, the `MachineState.hooks.cpuTouchedDevicePage` hook,
 *   installed by `SimPagemap.ts`). Installed by `populate_mm`
 *   (`SimPagemap.ts`); its `order` is the order of the device block it belongs
 *   to while the whole aligned run of that block is intact, else 0.
 * - `exclusive`: a device-exclusive entry (`is_device_exclusive_entry`,
 *   kernel-semantics §11.17): `make_device_exclusive` replaced the present PTE
 *   of an anonymous page with it so a device may do atomics on the frame; any
 *   CPU touch (read or write) revokes it (`remove_device_exclusive_entry`:
 *   an EXCLUSIVE invalidation with no owner, then the normal PTE is restored,
 *   `CpuFault.revokeExclusive`). The frame stays mapped (Linux 6.15+ keeps the
 *   mapcount for these entries).
 *
 * Plain synchronous code; callers hold the mmap lock (reading for faults,
 * writing for unmaps/protection changes), like the kernel's PT lock nesting.
 *
 * @since 0.1.0
 */
import { HUGE_PAGE_SIZE, PAGE_SIZE } from "../../domain/Address.ts"
import { PageSlots } from "./PageSlots.ts"

/**
 * A present system-memory entry. Mutable in place (protection changes, splits, COW).
 *
 * @category models
 */
export interface SystemPte {
  readonly kind: "system"
  pfn: number
  writable: boolean
  order: number
}

/**
 * A device-private entry (`swp_entry` of type DEVICE_PRIVATE): the page lives
 * in device memory `pagemap` at `devicePfn`, allocation `allocation`, owner
 * `owner`. `vpn` is the virtual page it is installed at, kept up to date by
 * {@link PageTable.set} (so entries moved by `mremap` stay findable from their
 * device page: the reverse map `migrate_to_ram` and eviction use).
 *
 * @category models
 */
export interface DevicePte {
  readonly kind: "device"
  readonly pagemap: string
  readonly devicePfn: number
  readonly allocation: number
  readonly owner: string
  writable: boolean
  order: number
  vpn: number
}

/**
 * A device-exclusive entry (`swp_entry` of type DEVICE_EXCLUSIVE, kernel-semantics
 * §11.17): frame `pfn` stays the page's, reachable by the device that took it
 * (`owner`, the `make_device_exclusive` caller) and by no CPU access. Always
 * order 0 (`FOLL_SPLIT_PMD`). `writable` is kept only for the union's shape:
 * since Linux 6.15 there is one entry type and `restore_exclusive_pte` takes
 * the writability from the VMA (so mprotect leaves the entry as it is).
 *
 * @category models
 */
export interface ExclusivePte {
  readonly kind: "exclusive"
  readonly pfn: number
  readonly owner: string
  writable: boolean
  order: number
}

/**
 * One page-table entry.
 *
 * @category models
 */
export type Pte = SystemPte | DevicePte | ExclusivePte

/**
 * Pages per 2 MiB block.
 *
 * @category constants
 */
export const HUGE_PAGES = HUGE_PAGE_SIZE / PAGE_SIZE

/**
 * Virtual page number of an address (arithmetic).
 *
 * @category functions
 */
export const vpnOf = (addr: number): number => Math.floor(addr / PAGE_SIZE)

/**
 * The page table.
 *
 * @category models
 */
export class PageTable {
  /**
   * Entries by virtual page number: page slots, not a `Map` (issue #16: faults, unmaps and
   * migrations insert and delete entries page by page, and a `Map` under that churn rehashes).
   */
  readonly entries = new PageSlots<Pte>()

  /** The entry of virtual page `vpn`. */
  get(vpn: number): Pte | undefined {
    return this.entries.get(vpn)
  }

  /** Installs an entry (a device entry learns its `vpn`). */
  set(vpn: number, pte: Pte): void {
    if (pte.kind === "device") pte.vpn = vpn
    this.entries.set(vpn, pte)
  }

  /** Removes an entry. */
  delete(vpn: number): void {
    this.entries.delete(vpn)
  }

  /**
   * Visits every present entry with `startVpn <= vpn < endVpn` in ascending
   * order (block by block, so a 64 GiB window with few entries stays cheap).
   * `f` must not add or remove entries of the window.
   */
  forEachIn(startVpn: number, endVpn: number, f: (vpn: number, pte: Pte) => void): void {
    this.entries.forEachIn(startVpn, endVpn, f)
  }

  /**
   * `split_huge_pmd` of the 2 MiB block containing `vpn`: every entry of the
   * block drops to order 0 (same frames, same protection).
   */
  splitBlock(vpn: number): void {
    const head = vpn - (vpn % HUGE_PAGES)
    const first = this.entries.get(head)
    if (first === undefined || first.order === 0) return
    for (let v = head; v < head + HUGE_PAGES; v++) {
      const pte = this.entries.get(v)
      if (pte !== undefined) pte.order = 0
    }
  }

  /**
   * Drops to order 0 every entry of the aligned run of `2^order` pages holding
   * `vpn`, where the entry at `vpn` has order > 0 (a device block, or a 2 MiB
   * mapping).
   */
  splitRun(vpn: number): void {
    const e = this.entries.get(vpn)
    if (e === undefined || e.order === 0) return
    const n = 2 ** e.order
    const head = vpn - (vpn % n)
    for (let v = head; v < head + n; v++) {
      const pte = this.entries.get(v)
      if (pte !== undefined) pte.order = 0
    }
  }

  /**
   * Splits the mapping straddling `addr`: the 2 MiB block if `addr` is not
   * 2 MiB aligned, and a device-block run (`2^order` pages) that `addr` cuts.
   */
  splitAt(addr: number): void {
    if (addr % HUGE_PAGE_SIZE !== 0) this.splitBlock(vpnOf(addr))
    const vpn = vpnOf(addr)
    const e = this.entries.get(vpn)
    if (e !== undefined && e.order > 0 && vpn % 2 ** e.order !== 0) this.splitRun(vpn)
  }

  /** Number of present entries. */
  get size(): number {
    return this.entries.size
  }
}

/**
 * Xe memory attributes per GPU-VA range (`struct xe_vma_mem_attr`) and the
 * pure interval structure that holds them: the CPU-address-mirror VMA split
 * into pieces by `DRM_IOCTL_XE_MADVISE`, as `xe_vm_alloc_madvise_vma` splits
 * VMAs (Xe `xe_vm_madvise.c`, `xe_vm.c`). Pieces are sorted, contiguous and cover the
 * GPU VA window exactly; a madvise always cuts at its start and end (even when
 * nothing changes, as drm_gpuvm's madvise ops do) and never merges; resetting a
 * collected range to the defaults (`xe_svm_range_set_default_attr`) replaces
 * the pieces under it by one. No services, no effects.
 *
 * @since 0.3.0
 */

/**
 * `atomic_access`: `DRM_XE_ATOMIC_UNDEFINED | _DEVICE | _GLOBAL | _CPU`.
 *
 * @category models
 * @since 0.3.0
 */
export type AtomicAttr = "undefined" | "device" | "global" | "cpu"

/** The atomic values in uapi order. @category constants @since 0.3.0 */
export const ATOMIC_ATTRS: ReadonlyArray<AtomicAttr> = ["undefined", "device", "global", "cpu"]

/**
 * `preferred_loc.migration_policy`: `DRM_XE_MIGRATE_ALL_PAGES | DRM_XE_MIGRATE_ONLY_SYSTEM_PAGES`.
 *
 * @category models
 * @since 0.3.0
 */
export type MigrationPolicyAttr = "all-pages" | "only-system-pages"

/** The migration policies in uapi order. @category constants @since 0.3.0 */
export const MIGRATION_POLICIES: ReadonlyArray<MigrationPolicyAttr> = ["all-pages", "only-system-pages"]

/**
 * `preferred_loc.devmem_fd`: `"device"` (`DRM_XE_PREFERRED_LOC_DEFAULT_DEVICE`, the
 * faulting device's own VRAM), `"system"` (`DRM_XE_PREFERRED_LOC_DEFAULT_SYSTEM`),
 * or the id of another pagemap (a device fd naming another device's memory).
 *
 * @category models
 * @since 0.3.0
 */
export type PreferredLoc = string

/**
 * The attributes of one piece (`struct xe_vma_mem_attr`).
 *
 * @category models
 * @since 0.3.0
 */
export interface MemAttrs {
  readonly preferredLoc: PreferredLoc
  readonly migrationPolicy: MigrationPolicyAttr
  readonly atomic: AtomicAttr
  readonly pat: number
}

/**
 * Entries of the modelled PAT table: a `pat` of madvise must be below it
 * (`pat_index.val >= xe->pat.n_entries` is EINVAL; 32 as on Xe2).
 *
 * @category constants
 * @since 0.3.0
 */
export const PAT_ENTRIES = 32

/**
 * The defaults of a fresh mirror VMA (`xe_svm_range_set_default_attr`):
 * preferred location the device, all pages, atomics undefined, PAT 0 (the
 * model's default PAT index).
 *
 * @category constants
 * @since 0.3.0
 */
export const DEFAULT_ATTRS: MemAttrs = { preferredLoc: "device", migrationPolicy: "all-pages", atomic: "undefined", pat: 0 }

/**
 * One piece: `[start, end)` and its attributes.
 *
 * @category models
 * @since 0.3.0
 */
export interface AttrRange {
  readonly start: number
  readonly end: number
  readonly attrs: MemAttrs
}

/**
 * The pieces, sorted and contiguous (each starts where the previous ends).
 *
 * @category models
 * @since 0.3.0
 */
export type AttrMap = ReadonlyArray<AttrRange>

/**
 * The kinds of one madvise call (`DRM_XE_MEM_RANGE_ATTR_PREFERRED_LOC | _ATOMIC | _PAT`):
 * each call sets one kind; preferred location and migration policy are one kind
 * and compared together (`madvise_preferred_mem_loc`).
 *
 * @category models
 * @since 0.3.0
 */
export type AttrKind = "preferred-loc" | "atomic" | "pat"

/**
 * One map over `[start, end)` with `attrs`.
 *
 * @category constructors
 * @since 0.3.0
 */
export const make = (start: number, end: number, attrs: MemAttrs = DEFAULT_ATTRS): AttrMap => [{ start, end, attrs }]

/**
 * Index of the piece containing `addr`, or -1 (binary search, O(log n)).
 *
 * @category functions
 * @since 0.3.0
 */
export const indexAt = (map: AttrMap, addr: number): number => {
  let lo = 0
  let hi = map.length - 1
  while (lo <= hi) {
    const mid = (lo + hi) >> 1
    const p = map[mid]!
    if (addr < p.start) hi = mid - 1
    else if (addr >= p.end) lo = mid + 1
    else return mid
  }
  return -1
}

/**
 * The piece containing `addr`, if any.
 *
 * @category functions
 * @since 0.3.0
 */
export const pieceAt = (map: AttrMap, addr: number): AttrRange | undefined => map[indexAt(map, addr)]

/**
 * Cuts the piece containing `addr` at `addr` (no change when `addr` is already a boundary or outside).
 *
 * @category functions
 * @since 0.3.0
 */
export const splitAt = (map: AttrMap, addr: number): AttrMap => {
  const i = indexAt(map, addr)
  if (i < 0) return map
  const p = map[i]!
  if (p.start === addr) return map
  return [...map.slice(0, i), { start: p.start, end: addr, attrs: p.attrs }, { start: addr, end: p.end, attrs: p.attrs }, ...map.slice(i + 1)]
}

/**
 * The pieces overlapping `[start, end)`, whole (not clipped), as
 * `VM_QUERY_MEM_RANGE_ATTRS` reports VMAs.
 *
 * @category functions
 * @since 0.3.0
 */
export const query = (map: AttrMap, start: number, end: number): AttrMap => map.filter((p) => p.start < end && start < p.end)

/**
 * Are the attributes of kind `kind` equal in `a` and `b`?
 *
 * @category functions
 * @since 0.3.0
 */
export const sameKind = (a: MemAttrs, b: MemAttrs, kind: AttrKind): boolean =>
  kind === "preferred-loc"
    ? a.preferredLoc === b.preferredLoc && a.migrationPolicy === b.migrationPolicy
    : kind === "atomic"
    ? a.atomic === b.atomic
    : a.pat === b.pat

const withKind = (a: MemAttrs, v: MemAttrs, kind: AttrKind): MemAttrs =>
  kind === "preferred-loc"
    ? { ...a, preferredLoc: v.preferredLoc, migrationPolicy: v.migrationPolicy }
    : kind === "atomic"
    ? { ...a, atomic: v.atomic }
    : { ...a, pat: v.pat }

/**
 * The result of {@link apply}: the new map, the pieces whose value changed
 * (with their new attributes: the ones to invalidate, `!skip_invalidation`), and
 * the pieces that were cut (`[start, end)` of the part of each old piece
 * inside the window, the window of `xe_svm_unmap_address_range`).
 *
 * @category models
 * @since 0.3.0
 */
export interface Applied {
  readonly map: AttrMap
  readonly changed: AttrMap
  readonly cut: ReadonlyArray<readonly [number, number]>
}

/**
 * One madvise of kind `kind` over `[start, end)`: cut at `start` and `end`
 * (`xe_vm_alloc_madvise_vma`), then give every piece inside the kind's value of
 * `value`; a piece whose value is already that is unchanged (its
 * `skip_invalidation`). The window should lie inside the map.
 *
 * @category functions
 * @since 0.3.0
 */
export const apply = (map: AttrMap, start: number, end: number, kind: AttrKind, value: MemAttrs): Applied => {
  const cut: Array<readonly [number, number]> = []
  for (const p of map) {
    if (p.start < end && start < p.end && (p.start < start || p.end > end)) cut.push([Math.max(p.start, start), Math.min(p.end, end)])
  }
  const split = splitAt(splitAt(map, start), end)
  const changed: Array<AttrRange> = []
  const out = split.map((p) => {
    if (p.end <= start || p.start >= end || sameKind(p.attrs, value, kind)) return p
    const q = { start: p.start, end: p.end, attrs: withKind(p.attrs, value, kind) }
    changed.push(q)
    return q
  })
  return { map: out, changed, cut }
}

/**
 * Are `attrs` the defaults (`xe_vma_has_default_mem_attrs`)?
 *
 * @category functions
 * @since 0.3.0
 */
export const isDefault = (attrs: MemAttrs, defaults: MemAttrs = DEFAULT_ATTRS): boolean =>
  sameKind(attrs, defaults, "preferred-loc") && sameKind(attrs, defaults, "atomic") && sameKind(attrs, defaults, "pat")

/**
 * `xe_svm_range_set_default_attr` after the collector removed the range
 * `[start, end)`: if the piece containing `start` already has the defaults,
 * nothing (even if later pieces in the window do not: Xe looks only at the
 * VMA at `start`); if that piece is exactly the window, it takes the defaults;
 * else one default piece replaces everything in the window
 * (`xe_vm_alloc_cpu_addr_mirror_vma`), the pieces it overlaps cut at its
 * ends. Returns the same map when nothing changed.
 *
 * @category functions
 * @since 0.3.0
 */
export const resetDefault = (map: AttrMap, start: number, end: number, defaults: MemAttrs = DEFAULT_ATTRS): AttrMap => {
  const at = pieceAt(map, start)
  if (at === undefined || isDefault(at.attrs, defaults)) return map
  const split = splitAt(splitAt(map, start), end)
  const before = split.filter((p) => p.end <= start)
  const after = split.filter((p) => p.start >= end)
  return [...before, { start, end, attrs: defaults }, ...after]
}

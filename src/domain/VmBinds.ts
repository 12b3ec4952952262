/**
 * The GPU VA bindings of one GPU VM besides its CPU-address mirror (Xe's
 * `xe_vm` GPU VMAs, kernel-semantics §11.17, IGT xe_exec_system_allocator
 * `bo-unmap`, `busy`, `new-bo-map`, `evict-malloc-mix-bo`): buffer-object
 * bindings (`DRM_XE_VM_BIND_OP_MAP` of a BO at an address) and the windows
 * where the CPU-address mirror (`DRM_XE_VM_BIND_FLAG_CPU_ADDR_MIRROR`) is
 * unbound. A GPU VM starts mirroring the whole GPU VA window with no BO bound.
 *
 * Plain data, no services: the driver (`programs/BufferObjects.ts`) keeps one
 * per VM and changes it under the driver SVM lock.
 *
 * @since 0.4.0
 */

/**
 * One buffer object bound at `[start, end)`.
 *
 * @category models
 * @since 0.4.0
 */
export interface BoBinding {
  readonly bo: number
  readonly start: number
  readonly end: number
}

/** Inserts `[start, end)` into the sorted, disjoint, non-adjacent interval list `xs` (merging). */
const addInterval = (xs: Array<readonly [number, number]>, start: number, end: number): void => {
  let s = start
  let e = end
  const keep: Array<readonly [number, number]> = []
  for (const [a, b] of xs) {
    if (b < s || a > e) keep.push([a, b])
    else {
      s = Math.min(s, a)
      e = Math.max(e, b)
    }
  }
  keep.push([s, e])
  keep.sort((x, y) => x[0] - y[0])
  xs.length = 0
  xs.push(...keep)
}

/** Removes `[start, end)` from the interval list `xs` (splitting). */
const removeInterval = (xs: Array<readonly [number, number]>, start: number, end: number): void => {
  const keep: Array<readonly [number, number]> = []
  for (const [a, b] of xs) {
    if (b <= start || a >= end) keep.push([a, b])
    else {
      if (a < start) keep.push([a, start])
      if (b > end) keep.push([end, b])
    }
  }
  xs.length = 0
  xs.push(...keep)
}

/**
 * The bindings of one GPU VM (see the file comment).
 *
 * @category models
 * @since 0.4.0
 */
export class VmBinds {
  /** BO bindings, sorted by start, disjoint. */
  readonly bos: Array<BoBinding> = []
  /** Windows where the CPU-address mirror is unbound, sorted, disjoint, merged. */
  readonly holes: Array<readonly [number, number]> = []

  /** Nothing but the mirror (the fault path's fast check). */
  get plain(): boolean {
    return this.bos.length === 0 && this.holes.length === 0
  }

  /** The BO binding holding `addr`, if any. */
  boAt(addr: number): BoBinding | undefined {
    return this.bos.find((b) => b.start <= addr && addr < b.end)
  }

  /** The BO bindings overlapping `[start, end)`. */
  bosIn(start: number, end: number): Array<BoBinding> {
    return this.bos.filter((b) => b.start < end && start < b.end)
  }

  /** Records BO `bo` bound at `[start, end)` (the caller checked it overlaps no other BO binding). */
  bindBo(bo: number, start: number, end: number): void {
    this.bos.push({ bo, start, end })
    this.bos.sort((a, b) => a.start - b.start)
  }

  /** Forgets the binding of BO `bo`; returns it. */
  unbindBo(bo: number): BoBinding | undefined {
    const i = this.bos.findIndex((b) => b.bo === bo)
    if (i < 0) return undefined
    return this.bos.splice(i, 1)[0]
  }

  /** Does the CPU-address mirror cover `addr` (and no BO is bound there)? */
  mirrored(addr: number): boolean {
    return this.boAt(addr) === undefined && !this.holes.some(([a, b]) => a <= addr && addr < b)
  }

  /** The mirror is unbound over `[start, end)`. */
  unmirror(start: number, end: number): void {
    addInterval(this.holes, start, end)
  }

  /** The mirror is bound again over `[start, end)`. */
  mirror(start: number, end: number): void {
    removeInterval(this.holes, start, end)
  }
}

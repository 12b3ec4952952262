/**
 * The simulated `Cpu` service: the process's own system calls (`mmap`,
 * `munmap`, `mprotect`, `madvise(MADV_DONTNEED)`, `mremap`, `exit`) and memory
 * accesses, applied to the shared machine state.
 *
 * Every call is a schedule yield point. Arguments are validated completely
 * before anything changes; every rejection is a typed error whose `reason`
 * names the argument, and leaves the machine unchanged. Mapping changes take
 * the mmap lock for writing (`madvise(MADV_DONTNEED)` for reading, as in
 * the kernel, §11.9) and run inside an MMU invalidation (UNMAP for
 * munmap / mremap's old range / MAP_FIXED replacement, PROTECTION_VMA for
 * mprotect, CLEAR for madvise, RELEASE then UNMAP for exit): the callbacks of every
 * overlapping notifier return before the pages change (kernel-semantics §7).
 * Loads and stores take the mmap lock for reading; a store that breaks COW on
 * present pages raises CLEAR over those pages first (`wp_page_copy`).
 *
 * Placement: without `fixed`, an `addr` hint is rounded down to a page (2 MiB
 * for hugetlb) and taken if the window there is free, aligned to `align` and
 * below 2^47; otherwise it is ignored (§11.15) and the lowest free window at or above 4 GiB
 * aligned to `align` (2 MiB at least for hugetlb). `mremap` grows in place
 * when the old range ends its VMA and the space after it is free, else moves
 * to the lowest free window. `munmap` / `madvise` of holes are fine (no event
 * when nothing is mapped); `mprotect` needs the whole window mapped
 * (`VmaNotFound`). `mremap` reports Linux's EFAULT / ENOMEM cases as
 * `InvalidArgument` (the contract's only error). `oldLength` 0 (duplicating
 * a shared mapping) is not supported. After `exit` every call fails with a
 * typed error (`InvalidArgument`, `BadAddress` for accesses); `exit` again is
 * a no-op.
 *
 * Hazards (as in the kernel): a notifier callback must not call back into
 * `Cpu` or `Mm.withReadLock` (the mmap lock is held, for writing by mapping
 * changes); a fiber holding `Mm.withReadLock` that calls `Cpu.read`/`write`
 * nests the read lock and deadlocks if a writer queues in between.
 *
 * @since 0.1.0
 */
import { type Context, Effect } from "effect"
import type { MachineServices } from "../../services/Machine.ts"
import { forkProcess } from "./Fork.ts"
import { ADDRESS_LIMIT, HUGE_PAGE_SIZE, PAGE_SIZE, alignDown, alignUp } from "../../domain/Address.ts"
import { BadAddress, InvalidArgument, OutOfMemory, type PermissionDenied, VmaNotFound } from "../../domain/Errors.ts"
import { NOT_NOW, type Now } from "../../domain/Now.ts"
import type { Prot } from "../../domain/Prot.ts"
import { equals as protEquals } from "../../domain/Prot.ts"
import type { MmapOptions, MremapOptions } from "../../services/Cpu.ts"
import { Cpu } from "../../services/Cpu.ts"
import type { DeviceBo } from "../../services/DevicePagemap.ts"
import { cowExtent, faultPage, hasExclusive, MAX_REVOKE_ROUNDS, migrateToRam, migrateToRamNow, releaseClosedBos, releaseOrphans, revokeExclusive, unmapRange, zapRange } from "./CpuFault.ts"
import { moveSwap, splitStraddling } from "./KernelMoves.ts"
import type { MachineState } from "./MachineState.ts"
import { type Pte, vpnOf } from "./PageTable.ts"
import { type DeviceBacking, MMAP_LIMIT, type VmaRec, kindAlign } from "./Vmas.ts"
import { accessPrologue, checkedAccess, checkAccessArgs, checkLockWindow, checkMmap, checkMprotect, checkMremap, checkWindow, checkWriteArgs, ifAlive, invalid as bad } from "../common/CpuArgs.ts"

/** Hugetlb VMAs in `[start, end)` need 2 MiB aligned edges. */
const checkHugeEdges = (st: MachineState, call: string, start: number, end: number): InvalidArgument | undefined => {
  for (const v of st.vmas.intersecting(start, end)) {
    if (v.kind !== "hugetlb") continue
    if ((start > v.start && start % HUGE_PAGE_SIZE !== 0) || (end < v.end && end % HUGE_PAGE_SIZE !== 0)) {
      return bad(`${call}: addr/length must be 2 MiB aligned inside a hugetlb VMA`, v.start)
    }
  }
  return undefined
}

/** A CPU load or store migrates every device-private entry it touches back. */
const anyDevicePage = (): boolean => true

/** Span of one PUD entry (1 GiB): `change_pud_range` calls `change_pmd_range` per PUD. */
const PUD_SIZE = 2 ** 30

/**
 * Builds the `Cpu` service of machine `st`.
 *
 * @category functions
 */
export const makeCpu = (st: MachineState, servicesOf: (process: MachineState) => Context.Context<MachineServices>): Cpu["Service"] => {
  const point = st.schedule.at("cpu")
  const notifiers = st.notifiers
  const lock = st.lock

  /** `vm_munmap` core with its UNMAP invalidation over the mapped extent. */
  const unmapWithEvent = (start: number, end: number): Effect.Effect<void> =>
    Effect.suspend(() => {
      const hit = st.vmas.intersecting(start, end)
      if (hit.length === 0) return Effect.void
      const s = Math.max(start, hit[0]!.start)
      const e = Math.min(end, hit[hit.length - 1]!.end)
      // kernel-semantics §11.17: a THP the edges cut is split first (CLEAR over its 2 MiB)
      return Effect.andThen(splitStraddling(st, start, end), notifiers.invalidate(s, e, "unmap", Effect.sync(() => unmapRange(st, start, end))))
    })

  /**
   * The device memory of BO `bo` for a mapping of `length` bytes (`ttm_bo_mmap_obj`): the pagemap
   * holding it and its allocation; a BO this machine does not hold, a released one or a mapping
   * past its end → `InvalidArgument`.
   */
  const deviceBackingOf = (bo: DeviceBo, length: number): DeviceBacking | InvalidArgument => {
    for (const vram of st.devmem.byId.values()) {
      const alloc = vram.bos.get(bo)
      if (alloc === undefined) continue
      if (length > bo.bytes) return bad(`mmap: ${length} bytes map past the end of a ${bo.bytes}-byte buffer object`)
      return { vram, alloc }
    }
    return bad("mmap: the buffer object is not in this machine's device memory (freed, or not a simulated BO)")
  }

  const mmap = Effect.fnUntraced(function*(o: MmapOptions) {
    yield* point
    const args = checkMmap(o)
    if (args instanceof InvalidArgument) return yield* args
    const { prot, length, minAlign, align } = args
    // xe_bo_map_fixed (kernel-semantics §11.17): a BO mapping is VM_PFNMAP | VM_IO and shared
    const device = o.bo === undefined ? undefined : deviceBackingOf(o.bo, length)
    if (device instanceof InvalidArgument) return yield* device
    const kind = device === undefined ? args.kind : "special"
    return yield* lock.withWrite(ifAlive(st, "mmap", Effect.gen(function*() {
      let start: number
      if (o.fixed === true && o.addr !== undefined) {
        start = o.addr
        yield* unmapWithEvent(start, start + length)
      } else {
        // kernel-semantics §11.15: the hint is rounded down to a page (x86-64 arch_get_unmapped_area:
        // `addr &= PAGE_MASK`; 2 MiB for hugetlb) and taken only if the window there is free and fits;
        // otherwise it is ignored (not an error) and the usual placement applies.
        const h = o.addr === undefined ? undefined : alignDown(o.addr, minAlign)
        const hint = h !== undefined && h + length <= MMAP_LIMIT && h % align === 0 && st.vmas.isFree(h, h + length)
          ? h
          : undefined
        const found = hint ?? st.vmas.findGap(length, Math.max(align, minAlign), undefined)
        if (found === undefined) return yield* new OutOfMemory({ reason: `mmap: no free window of ${length} bytes` })
        start = found
      }
      yield* Effect.sync(() => {
        const shared = o.shared === true || device !== undefined
        let object = 0
        if (kind === "file") object = st.cache.file(o.fileSeed ?? 0).id
        else if (shared && kind !== "special") object = st.cache.shmem(kind === "hugetlb").id
        const rec: VmaRec = {
          start,
          end: start + length,
          prot: { read: prot.read, write: prot.write, exec: prot.exec },
          kind,
          shared,
          name: o.name,
          object,
          pgoff: 0,
          fileSeed: kind === "file" ? (o.fileSeed ?? 0) : undefined,
          // VM_SPECIAL mappings drop VM_LOCKED (__mmap_complete: vm_flags_clear(VM_LOCKED_MASK))
          ...(o.locked === true && device === undefined ? { locked: true } : {}),
          ...(device === undefined ? {} : { device })
        }
        st.vmas.insert(rec)
      })
      return start
    }))).pipe(
      // MAP_LOCKED (kernel-semantics §11.17): do_mmap sets VM_LOCKED, then mm_populate — under the
      // read lock, errors ignored (a racing munmap just leaves less to populate)
      Effect.tap((start) => o.locked === true && device === undefined ? Effect.ignore(lock.withRead(ifAlive(st, "mmap", populate(start, start + length)))) : Effect.void)
    )
  })

  const munmap = Effect.fnUntraced(function*(addr: number, length: number) {
    yield* point
    const err = checkWindow("munmap", addr, length)
    if (err !== undefined) return yield* err
    const end = addr + length
    yield* lock.withWrite(ifAlive(st, "munmap", Effect.gen(function*() {
      const huge = checkHugeEdges(st, "munmap", addr, end)
      if (huge !== undefined) return yield* huge
      yield* unmapWithEvent(addr, end)
    })))
  })

  const mprotect = Effect.fnUntraced(function*(addr: number, length: number, prot: Prot) {
    yield* point
    const err = checkMprotect(addr, length, prot)
    if (err !== undefined) return yield* err
    const end = addr + length
    yield* lock.withWrite(ifAlive(st, "mprotect", Effect.gen(function*() {
      if (!st.vmas.covers(addr, end)) {
        return yield* new VmaNotFound({ reason: "mprotect: [addr, addr + length) is not entirely mapped", addr })
      }
      const huge = checkHugeEdges(st, "mprotect", addr, end)
      if (huge !== undefined) return yield* huge
      // kernel-semantics §11.11: a VMA whose flags do not change is skipped (mprotect_fixup: newflags ==
      // oldflags), so an mprotect that changes nothing raises no event at all. A changed VMA gets its new
      // flags, then PROTECTION_VMA over its populated part, per PUD (change_pud_range → change_pmd_range:
      // from the first populated PMD to the end of the PUD's span inside the VMA; "populated" = some entry
      // present, the model keeps no empty page tables), write-protecting the entries inside each.
      const p = { read: prot.read, write: prot.write, exec: prot.exec }
      const events = protectionRanges(addr, end, p)
      const parts = st.vmas.intersecting(addr, end).filter((v) => !protEquals(v.prot, p))
        .map((v) => [Math.max(addr, v.start), Math.min(end, v.end)] as const)
      if (parts.length === 0) return
      // kernel-semantics §11.17: __split_vma splits a THP the new VMA edges cut, CLEAR over its 2 MiB first
      for (const [s, e] of parts) yield* splitStraddling(st, s, e)
      yield* Effect.sync(() => {
        for (const [s, e] of parts) {
          st.pt.splitAt(s) // __split_vma splits a huge mapping straddling the new VMA edges
          st.pt.splitAt(e)
          st.vmas.carve(s, e)
          for (const v of st.vmas.intersecting(s, e)) v.prot = p
        }
        st.vmas.mergeAround(addr, end)
      })
      yield* Effect.forEach(events, ([s, e]) =>
        notifiers.invalidate(s, e, "protection-vma", Effect.sync(() => {
          if (prot.write) return
          st.pt.splitAt(s)
          st.pt.splitAt(e)
          st.pt.forEachIn(vpnOf(s), vpnOf(e), (_vpn, pte) => {
            pte.writable = false
          })
        })), { discard: true })
    })))
  })

  /**
   * The PROTECTION_VMA invalidations `change_protection` raises for an
   * mprotect of `[addr, end)` to `p` (§11.11): per VMA part whose flags
   * change, per 1 GiB PUD span of it, `[max(part start, first populated PMD),
   * part end)` when any entry of the span is present.
   */
  const protectionRanges = (addr: number, end: number, p: Prot): Array<readonly [number, number]> => {
    const out: Array<readonly [number, number]> = []
    for (const v of st.vmas.intersecting(addr, end)) {
      if (protEquals(v.prot, p)) continue
      const s = Math.max(addr, v.start)
      const e = Math.min(end, v.end)
      for (let pud = alignDown(s, PUD_SIZE); pud < e; pud += PUD_SIZE) {
        const ps = Math.max(s, pud)
        const pe = Math.min(e, pud + PUD_SIZE)
        let first = -1
        st.pt.forEachIn(vpnOf(ps), vpnOf(pe), (vpn) => {
          if (first < 0) first = vpn
        })
        if (first >= 0) out.push([Math.max(ps, alignDown(first * PAGE_SIZE, HUGE_PAGE_SIZE)), pe])
      }
    }
    return out
  }

  const madviseDontNeed = Effect.fnUntraced(function*(addr: number, length: number) {
    yield* point
    const err = checkWindow("madvise", addr, length)
    if (err !== undefined) return yield* err
    const end = addr + length
    // madvise(MADV_DONTNEED) holds the mmap lock for reading (kernel-semantics §11.9): it runs
    // concurrently with faults and populate; the zap itself is one synchronous step.
    yield* lock.withRead(ifAlive(st, "madvise", Effect.gen(function*() {
      const huge = checkHugeEdges(st, "madvise", addr, end)
      if (huge !== undefined) return yield* huge
      const all = st.vmas.intersecting(addr, end)
      // kernel-semantics §11.17: MADV_DONTNEED refuses a VM_LOCKED or VM_PFNMAP (special, a BO mapping)
      // VMA (madvise_dontneed_free_valid_vma: EINVAL); the VMAs before it, walked in order, were dropped already
      const lockedAt = all.findIndex((v) => v.locked === true || v.kind === "special")
      const hit = lockedAt < 0 ? all : all.slice(0, lockedAt)
      if (hit.length > 0) {
        const s = Math.max(addr, hit[0]!.start)
        const e = Math.min(end, hit[hit.length - 1]!.end)
        yield* splitStraddling(st, s, e) // zap_pmd_range splits a THP the window cuts (§11.17)
        yield* notifiers.invalidate(s, e, "clear", Effect.sync(() => zapRange(st, s, e)))
      }
      if (lockedAt >= 0) {
        const v = all[lockedAt]!
        return yield* bad(`madvise: MADV_DONTNEED of a ${v.kind === "special" ? "VM_PFNMAP (special)" : "VM_LOCKED (mlocked)"} VMA (EINVAL)`, Math.max(addr, v.start))
      }
    })))
  })

  /** Moves `[addr, addr + len)` of `vma` to `target` (page tables move; old VMA part removed unless `dontUnmap`). */
  const moveRange = (vma: VmaRec, addr: number, len: number, target: number, dontUnmap: boolean) =>
    Effect.andThen(splitStraddling(st, addr, addr + len), notifiers.invalidate(addr, addr + len, "unmap", Effect.sync(() => {
      st.pt.splitAt(addr)
      st.pt.splitAt(addr + len)
      const shift = target - addr
      const keepHuge = shift % HUGE_PAGE_SIZE === 0
      const moved: Array<[number, Pte]> = []
      st.pt.forEachIn(vpnOf(addr), vpnOf(addr + len), (vpn, pte) => {
        moved.push([vpn, pte])
      })
      for (const [vpn] of moved) st.pt.delete(vpn)
      const dv = shift / PAGE_SIZE
      for (const [vpn, pte] of moved) {
        if (!keepHuge) pte.order = 0
        st.pt.set(vpn + dv, pte)
      }
      moveSwap(st, addr, len, dv) // swap entries move with their page tables (§11.17)
      const rec: VmaRec = { ...vma, start: target, end: target + len, pgoff: vma.pgoff + (addr - vma.start) }
      if (!dontUnmap) {
        const removed = st.vmas.remove(addr, addr + len)
        st.vmas.insert(rec)
        releaseOrphans(st, removed)
      } else {
        st.vmas.insert(rec)
      }
    })))

  const mremap = Effect.fnUntraced(function*(addr: number, oldLength: number, newLength: number, o?: MremapOptions) {
    yield* point
    const argErr = checkMremap(addr, oldLength, newLength, o)
    if (argErr !== undefined) return yield* argErr
    const newAddr = o?.newAddr
    const dontUnmap = o?.dontUnmap === true
    return yield* lock.withWrite(ifAlive(st, "mremap", Effect.gen(function*() {
      const vma = st.vmas.find(addr)
      if (vma === undefined || addr + oldLength > vma.end) {
        return yield* bad("mremap: [addr, addr + oldLength) is not inside one VMA", addr)
      }
      if (vma.kind === "hugetlb") {
        const all = [addr, oldLength, newLength, newAddr ?? 0]
        if (all.some((x) => x % HUGE_PAGE_SIZE !== 0)) {
          return yield* bad("mremap: addr, lengths and newAddr of a hugetlb VMA must be 2 MiB multiples", addr)
        }
      }
      // kernel-semantics §11.15: since 5.13 MREMAP_DONTUNMAP works on any mapping but VM_DONTEXPAND / VM_PFNMAP
      // ones (here: `special`); the old range stays mapped (shared and file mappings refault from their object).
      if (dontUnmap && vma.kind === "special") {
        return yield* bad("mremap: dontUnmap is not allowed on a VM_PFNMAP (special) VMA", addr)
      }
      // vma_to_resize: a VM_DONTEXPAND / VM_PFNMAP VMA (a BO mapping among them) cannot grow: EFAULT
      if (newLength > oldLength && vma.kind === "special") {
        return yield* bad("mremap: a VM_PFNMAP (special) VMA cannot grow (Linux EFAULT, vma_to_resize)", addr)
      }
      if (newAddr === undefined && !dontUnmap) {
        if (newLength === oldLength) return addr
        if (newLength < oldLength) {
          yield* unmapWithEvent(addr + newLength, addr + oldLength)
          return addr
        }
        const grownEnd = addr + newLength
        if (addr + oldLength === vma.end && grownEnd <= MMAP_LIMIT && st.vmas.isFree(vma.end, grownEnd)) {
          yield* Effect.sync(() => {
            const oldEnd = vma.end
            vma.end = grownEnd
            st.vmas.mergeAround(oldEnd, grownEnd)
          })
          return addr
        }
      }
      let target: number
      if (newAddr !== undefined) {
        target = newAddr
      } else {
        const found = st.vmas.findGap(newLength, kindAlign(vma.kind), undefined)
        if (found === undefined) return yield* bad(`mremap: no free window of ${newLength} bytes`, addr)
        target = found
      }
      if (newAddr !== undefined) yield* unmapWithEvent(target, target + newLength)
      let len = oldLength
      if (newLength < oldLength) {
        yield* unmapWithEvent(addr + newLength, addr + oldLength)
        len = newLength
      }
      const live = st.vmas.find(addr)!
      yield* moveRange(live, addr, len, target, dontUnmap)
      if (newLength > len) {
        yield* Effect.sync(() => {
          const grown = st.vmas.find(target)!
          const oldEnd = target + len
          if (grown.end === oldEnd) {
            grown.end = target + newLength
            st.vmas.mergeAround(oldEnd, target + newLength)
          } else {
            st.vmas.insert({ ...grown, start: oldEnd, end: target + newLength, pgoff: grown.pgoff + (oldEnd - grown.start) })
          }
        })
      }
      return target
    })))
  })

  /**
   * A CPU load / store of `[s, e)` under the mmap read lock (all checks done): device-exclusive entries
   * are revoked first (kernel-semantics §11.17: `remove_device_exclusive_entry`, an EXCLUSIVE event per
   * page), device-private pages migrate back, then `run(touch)` runs the synchronous `touch` (wrapped as
   * the caller needs, e.g. inside a CLEAR for COW). If a device re-took a page between the revocation and
   * the touch, the touch does nothing and the whole access retries (the kernel's fault retry), bounded by
   * `MAX_REVOKE_ROUNDS` (then `BadAddress`).
   */
  const touchPages = <A>(
    call: string,
    s: number,
    e: number,
    run: (touch: Effect.Effect<boolean>) => Effect.Effect<boolean>,
    result: Effect.Effect<A>,
    touch?: () => void
  ): Effect.Effect<A, BadAddress> => {
    const attempt = (round: number): Effect.Effect<A, BadAddress> =>
      revokeExclusive(st, s, e).pipe(
        Effect.andThen(migrateDevicePages(s, e)),
        Effect.andThen(Effect.suspend(() =>
          run(Effect.sync(() => {
            if (hasExclusive(st, s, e)) return false
            touch?.()
            return true
          }))
        )),
        Effect.flatMap((ok) => {
          if (ok) return result
          if (round === MAX_REVOKE_ROUNDS) {
            return Effect.fail(new BadAddress({ reason: `${call}: device-exclusive entries re-taken ${MAX_REVOKE_ROUNDS} times in a row`, addr: s }))
          }
          return attempt(round + 1)
        })
      )
    return attempt(0)
  }

  /** `migrate_to_ram` for every device-private entry of `[start, end)` (`CpuFault.migrateToRam`), mmap read lock held. */
  const migrateDevicePages = (start: number, end: number): Effect.Effect<void, BadAddress> => migrateToRam(st, start, end, anyDevicePage, "")

  /** Copies between `buf` and memory for `[addr, addr + buf.length)`, faulting pages in (all checks done). */
  const access = (addr: number, buf: Uint8Array, write: boolean): void => {
    const end = addr + buf.length
    let at = addr
    let vma: VmaRec | undefined
    while (at < end) {
      const vpn = vpnOf(at)
      if (vma === undefined || at >= vma.end) vma = st.vmas.find(at)!
      const off = at - vpn * PAGE_SIZE
      const n = Math.min(PAGE_SIZE - off, end - at)
      const device = vma.device
      if (device !== undefined) {
        // a BO mapping (kernel-semantics §11.17): the load / store goes to the BO's device page (the BAR)
        const pfn = device.alloc.pfns[(vma.pgoff + (vpn * PAGE_SIZE - vma.start)) / PAGE_SIZE]!
        if (write) device.vram.writePage(pfn, off, buf, at - addr, n)
        else device.vram.readPage(pfn, off, buf, at - addr, n)
        at += n
        continue
      }
      const pte = faultPage(st, vma, vpn, write)
      if (pte.kind === "system") {
        if (write) st.frames.write(pte.pfn, off, buf, at - addr, n)
        else st.frames.read(pte.pfn, off, buf, at - addr, n)
      }
      at += n
    }
  }

  /**
   * `__mm_populate` over `[start, end)` (mmap read lock held): per VMA part in address order,
   * skipping VM_PFNMAP ones, device-private pages come back first (`migrate_to_ram`, as GUP's fault
   * does), then every page is faulted in — for writing where the VMA is private and writable
   * (`populate_vma_page_range`: FOLL_WRITE iff `(vm_flags & (VM_WRITE | VM_SHARED)) == VM_WRITE`), which
   * breaks COW on present pages after a CLEAR over them. A PROT_NONE part stops it: GUP without
   * FOLL_FORCE fails there (`populate_vma_page_range` forces only accessible VMAs), so nothing after
   * it is populated and the result is true (mlock's ENOMEM; Linux 6.x, checked on a 6.18 host).
   * Kernel-semantics §11.17.
   */
  const populate = (start: number, end: number): Effect.Effect<boolean, BadAddress> => {
    const parts = st.vmas.intersecting(start, end).filter((v) => v.kind !== "special")
    const none = parts.findIndex((v) => !(v.prot.read || v.prot.write || v.prot.exec))
    return Effect.as(populateParts(start, end, none < 0 ? parts : parts.slice(0, none)), none >= 0)
  }

  const populateParts = (start: number, end: number, parts: ReadonlyArray<VmaRec>): Effect.Effect<void, BadAddress> =>
    Effect.forEach(
      parts.map((v) => [Math.max(start, v.start), Math.min(end, v.end), v.prot.write && !v.shared] as const),
      ([s, e, write]) =>
        Effect.andThen(Effect.andThen(revokeExclusive(st, s, e), migrateDevicePages(s, e)), Effect.suspend(() => {
          const touch = Effect.sync(() => {
            let vma: VmaRec | undefined
            for (let vpn = vpnOf(s); vpn < vpnOf(e); vpn++) {
              if (vma === undefined || vpn * PAGE_SIZE >= vma.end) vma = st.vmas.find(vpn * PAGE_SIZE)
              if (vma === undefined) return // unmapped meanwhile: nothing left to populate here
              faultPage(st, vma, vpn, write)
            }
          })
          const cow = write ? cowExtent(st, s, e) : undefined
          return cow === undefined ? touch : notifiers.invalidate(cow[0], cow[1], "clear", touch)
        })),
      { discard: true }
    )

  /** Sets or clears VM_LOCKED over `[s, e)` (`mlock_fixup`: split at the edges, then merge what now matches); mmap write lock held. */
  const setLocked = (call: string, s: number, e: number, locked: boolean): Effect.Effect<void, VmaNotFound> =>
    Effect.suspend(() => {
      // Linux: ENOMEM when part of the window is not mapped (here VmaNotFound, as mprotect)
      if (!st.vmas.covers(s, e)) return Effect.fail(new VmaNotFound({ reason: `${call}: [addr, addr + length) is not entirely mapped`, addr: s }))
      st.vmas.carve(s, e)
      for (const v of st.vmas.intersecting(s, e)) {
        // mlock_fixup skips VM_SPECIAL VMAs (special, BO mappings): never VM_LOCKED
        if (locked && v.kind !== "special") v.locked = true
        else delete v.locked
      }
      st.vmas.mergeAround(s, e)
      return Effect.void
    })

  /**
   * `mlock` (`locked`) / `munlock`: validates and rounds the window, sets or clears VM_LOCKED under the
   * write lock; `mlock` then populates under the read lock (do_mlock drops the write lock first,
   * then `__mm_populate`; kernel-semantics §11.9, §11.17).
   */
  const lockCall = (call: string, locked: boolean) =>
    Effect.fnUntraced(function*(addr: number, length: number) {
      yield* point
      const w = checkLockWindow(call, addr, length)
      if (w instanceof InvalidArgument) return yield* w
      const [s, e] = w
      if (s === e) return
      yield* lock.withWrite(ifAlive(st, call, Effect.gen(function*() {
        const huge = checkHugeEdges(st, call, s, e)
        if (huge !== undefined) return yield* huge
        yield* setLocked(call, s, e, locked)
      })))
      if (!locked) return
      // Linux 6.x: a PROT_NONE part stays VM_LOCKED but its populate fails: ENOMEM (VmaNotFound), kernel-semantics §11.17
      if (yield* lock.withRead(ifAlive(st, call, populate(s, e)))) {
        return yield* new VmaNotFound({ reason: `${call}: a PROT_NONE part cannot be populated (ENOMEM); the window stays locked`, addr: s })
      }
    })
  const mlock = lockCall("mlock", true)
  const munlock = lockCall("munlock", false)

  /**
   * `read` in the calling step (issue #16, `src/domain/Now.ts`): where no point is passed, the mmap lock is
   * free, the access is allowed, no device-exclusive entry is in the window and every device-private page
   * in it can migrate back now; else `NOT_NOW` (device pages already migrated back stay so, as the Effect
   * version would leave them).
   */
  const readNow = (addr: number, length: number): Now<Uint8Array> => {
    if (point !== Effect.void || !st.lock.canReadNow() || length === 0 || checkAccessArgs("read", addr, length) !== undefined) return NOT_NOW
    if (accessPrologue(st.alive, st.vmas, "read", addr, length) !== undefined) return NOT_NOW
    const s = alignDown(addr, PAGE_SIZE)
    const e = alignUp(addr + length, PAGE_SIZE)
    if (hasExclusive(st, s, e) || migrateToRamNow(st, s, e, anyDevicePage) === NOT_NOW) return NOT_NOW
    const out = new Uint8Array(length)
    access(addr, out, false)
    return out
  }

  const read = (addr: number, length: number) =>
    Effect.suspend(() => {
      const now = readNow(addr, length)
      return now === NOT_NOW ? readEffect(addr, length) : Effect.succeed(now)
    })

  const readEffect = Effect.fnUntraced(function*(addr: number, length: number) {
    yield* point
    const err = checkAccessArgs("read", addr, length)
    if (err !== undefined) return yield* err
    if (length === 0) return new Uint8Array(0)
    return yield* lock.withRead(checkedAccess(st, st.vmas, "read", addr, length, (s, e) => {
      const out = new Uint8Array(length)
      return touchPages("read", s, e, (touch) => touch, Effect.succeed(out), () => access(addr, out, false))
    }))
  })

  const write = Effect.fnUntraced(function*(addr: number, bytes: Uint8Array) {
    yield* point
    const err = checkWriteArgs(addr, bytes)
    if (err !== undefined) return yield* err
    if (bytes.length === 0) return
    yield* lock.withRead(checkedAccess(st, st.vmas, "write", addr, bytes.length, (s, e) =>
      touchPages("write", s, e, (doWrite) => {
        const cow = cowExtent(st, s, e)
        return cow === undefined ? doWrite : notifiers.invalidate(cow[0], cow[1], "clear", doWrite)
      }, Effect.void, () => access(addr, bytes, true))))
  })

  /**
   * `exit(2)` → `exit_mmap` (kernel-semantics §11.1): first
   * `mmu_notifier_release` (interval notifiers get RELEASE over
   * `[0, ULONG_MAX)`, here `[0, ADDRESS_LIMIT)`; the pages are still there),
   * then `unmap_vmas` (UNMAP over the whole space) inside which every page and
   * VMA goes away. The process is gone (`alive` false, `mm_users` 0) before
   * the RELEASE, so nothing can fault pages back in between the two events.
   */
  const exit = Effect.gen(function*() {
    yield* point
    yield* lock.withWrite(Effect.suspend(() => {
      if (!st.alive) return Effect.void
      st.alive = false // mm_users is already 0 when exit_mmap runs: Mm.acquire fails from here on
      return Effect.andThen(
        notifiers.invalidate(0, ADDRESS_LIMIT, "release", Effect.void),
        notifiers.invalidate(0, ADDRESS_LIMIT, "unmap", Effect.sync(() => {
          const removed = [...st.vmas.list]
          for (const v of removed) zapRange(st, v.start, v.end)
          st.vmas.list.length = 0
          releaseClosedBos(st, removed)
          // every object no other process of the machine maps (kernel-semantics §11.17: a fork child may)
          const mapped = new Set<number>()
          for (const p of st.world.processes) for (const r of p.vmas.list) mapped.add(r.object)
          for (const id of [...st.cache.objects.keys()]) if (!mapped.has(id)) st.cache.release(id)
        }))
      )
    }))
  })

  /** `fork(2)` (kernel-semantics §11.17, `Fork.ts`): the child's services (a fresh GPU VM among them). */
  const fork = Effect.gen(function*() {
    yield* point
    if (!st.alive) return yield* bad("fork: the address space has exited")
    return servicesOf(yield* forkProcess(st))
  })

  return Cpu.of({ mmap, munmap, mprotect, madviseDontNeed, mremap, mlock, munlock, read, write, exit, fork })
}

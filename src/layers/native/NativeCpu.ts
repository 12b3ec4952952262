/**
 * The native `Cpu` service: the workload's system calls and memory accesses,
 * carried out by the helper process (`mmap`, `munmap`, `mprotect`,
 * `madvise(MADV_DONTNEED)`, `mremap`, loads and stores as `memcpy` through a
 * staging buffer, `exit`).
 *
 * Notifier events (kernel-semantics §7): with `notifier: "cpu"` (default) the
 * Cpu raises UNMAP / CLEAR / PROTECTION_VMA / RELEASE itself *before* sending
 * the command, exactly like the simulated machine, and the uffd events the
 * command produces are checked against it (confirmations). With
 * `notifier: "uffd"` munmap, madvise and mremap raise nothing themselves: the
 * uffd events (REMOVE before the zap, UNMAP / REMAP after) raise the
 * invalidations, before the command's reply is delivered. mprotect and exit
 * have no uffd event and are always raised by the Cpu, and so is fork's
 * PROTECTION_PAGE (uffd's FORK event arrives after the write-protect and is
 * only a cross-check; see `fork` below); exit raises RELEASE
 * then UNMAP over the whole space, like `exit_mmap` (§11.1). A store that breaks
 * COW on present, not exclusive pages raises CLEAR over them first (uffd
 * never reports `wp_page_copy`).
 *
 * Device-resident pages (migrated by the pagemap) are MISSING-registered: a
 * load or store faults in the helper and the pagemap's fault handler copies
 * the allocation back with UFFDIO_COPY. munmap of a whole allocation frees
 * it; other changes to device-resident pages migrate them back first.
 *
 * Placement: like the simulated machine, the lowest free window at or above
 * 4 GiB aligned to `align` (MAP_FIXED_NOREPLACE). `kind: "file"` and
 * `"special"` are `InvalidArgument` (no simulated files in a real process);
 * hugetlb needs reserved huge pages (`OutOfMemory` otherwise).
 *
 * `mlock`, `munlock` and `MAP_LOCKED` (kernel-semantics §11.17) are the real
 * system calls in the helper (the kernel sets VM_LOCKED, splits the VMAs and
 * populates); Node checks the window first (as the simulated machine), brings
 * device-resident pages of it back to RAM and raises CLEAR over the pages
 * mlock's write populate copies (see `mlock` below).
 *
 * @since 0.1.0
 */
import { type Context, Effect } from "effect"
import { ADDRESS_LIMIT, HUGE_PAGE_SIZE, PAGE_SIZE, alignDown, alignUp } from "../../domain/Address.ts"
import { BadAddress, InvalidArgument, OutOfMemory, type PermissionDenied, VmaNotFound } from "../../domain/Errors.ts"
import type { Prot } from "../../domain/Prot.ts"
import { equals as protEquals } from "../../domain/Prot.ts"
import type { Vma, VmaKind } from "../../domain/Vma.ts"
import { Cpu, type MmapOptions, type MremapOptions } from "../../services/Cpu.ts"
import type { MachineServices } from "../../services/Machine.ts"
import type { Helper, Reply } from "./Helper.ts"
import { liveRuns } from "./NativePagemap.ts"
import { type NativeState, errnoText } from "./NativeState.ts"
import { checkedAccess, checkAccessArgs, checkLockWindow, checkMmap, checkMprotect, checkMremap, checkWindow, checkWriteArgs, ifAlive, invalid as bad } from "../common/CpuArgs.ts"

/** The VMA kinds a real process can map here (no simulated files, no VM_PFNMAP). */
const NATIVE_KINDS: ReadonlyArray<VmaKind> = ["anonymous", "hugetlb"]

/**
 * Lowest address `mmap` places mappings at without a usable hint.
 *
 * @category constants
 */
export const MMAP_BASE = 2 ** 32
/**
 * Highest end of a placed mapping (well below the helper's own mappings near 2^47).
 *
 * @category constants
 */
export const MMAP_LIMIT = 2 ** 46

/** Span of one PUD entry (1 GiB): `change_pud_range` calls `change_pmd_range` per PUD. */
const PUD_SIZE = 2 ** 30

const protBits = (p: Prot): number => (p.read ? 1 : 0) | (p.write ? 2 : 0) | (p.exec ? 4 : 0)

/** The extent of `[start, end)` that VMAs actually map, or undefined. */
const mappedExtent = (st: NativeState, start: number, end: number): readonly [number, number] | undefined => {
  const hit = st.intersecting(start, end)
  if (hit.length === 0) return undefined
  return [Math.max(start, hit[0]!.start), Math.min(end, hit[hit.length - 1]!.end)]
}

/** The lowest free window of `length` at or above `MMAP_BASE`, aligned to `align`. */
const findGap = (vmas: ReadonlyArray<Vma>, length: number, align: number): number | undefined => {
  let at = MMAP_BASE
  for (const v of vmas) {
    if (v.end <= at) continue
    if (v.start >= at + length) break
    at = alignUp(v.end, align)
  }
  return at + length <= MMAP_LIMIT ? at : undefined
}

const isFree = (vmas: ReadonlyArray<Vma>, start: number, end: number): boolean => !vmas.some((v) => v.start < end && start < v.end)

/**
 * Builds the `Cpu` service of process `st`; `build` makes a fork child's
 * helper a process of the same machine (`Native.ts`).
 *
 * @category functions
 */
export const makeCpu = (st: NativeState, build: BuildProcess): Cpu["Service"] => {
  const notifiers = st.notifiers
  const lock = st.lock
  const cpuRaises = st.config.notifier === "cpu"

  /** Runs `change` inside an invalidation of `[s, e)` raised by the Cpu (when `raise`), marked as expected for the uffd cross-check. */
  const raised = <A, E>(s: number, e: number, event: "unmap" | "clear" | "protection-vma", raise: boolean, change: Effect.Effect<A, E>) =>
    raise ? notifiers.invalidate(s, e, event, st.expecting(s, e, change)) : change

  /** Device allocations in `[start, end)`: wholly inside and `drop` → freed; otherwise migrated back first. */
  const settleDevice = (start: number, end: number, drop: boolean): Effect.Effect<void, InvalidArgument> =>
    Effect.suspend(() => {
      const hit = st.allocsIn(start, end)
      if (hit.length === 0) return Effect.void
      const back = hit.filter((a) => !(drop && start <= a.start && a.end <= end))
      for (const a of hit) {
        if (!back.includes(a)) st.allocs.delete(a.id)
      }
      return Effect.forEach(back, (a) =>
        Effect.mapError(st.migrateBack(a.start, a.end), (e) => bad(`migrating device pages back first: ${e.reason}`, a.start)), { discard: true })
    })

  const mmap = Effect.fnUntraced(function*(o: MmapOptions) {
    const args = checkMmap(o, NATIVE_KINDS, "the native machine")
    if (args instanceof InvalidArgument) return yield* args
    // kernel-semantics §11.17: buffer objects are simulated only (the native pagemap has no BO allocator)
    if (o.bo !== undefined) return yield* bad("mmap: a CPU mapping of a buffer object (xe_bo_map_fixed) needs the simulated machine's device memory")
    const { kind, prot, length, minAlign } = args
    const align = Math.max(args.align, minAlign)
    // §11.17 MAP_LOCKED (16): the kernel sets VM_LOCKED and populates the new, not yet registered
    // mapping (mm_populate, errors ignored); fresh pages, so nothing to invalidate beyond a fixed mmap's UNMAP
    const flags = (o.shared === true ? 1 : 0) | (kind === "hugetlb" ? 4 : 0) | (o.locked === true ? 16 : 0)
    return yield* lock.withWrite(ifAlive(st, "mmap", Effect.gen(function*() {
      let start: number
      let reply
      if (o.fixed === true && o.addr !== undefined) {
        start = o.addr
        const ext = mappedExtent(st, start, start + length)
        if (ext !== undefined) yield* settleDevice(ext[0], ext[1], true)
        const cmd = st.requestArg("mmap", "mmap", [length, start, flags | 2, protBits(prot)])
        reply = ext === undefined ? yield* cmd : yield* raised(ext[0], ext[1], "unmap", true, cmd)
      } else {
        const vmas = st.vmas()
        // §11.15: a hint is rounded down to a page (x86-64 `addr &= PAGE_MASK`) and ignored when it does not fit
        const h = o.addr === undefined ? undefined : alignDown(o.addr, minAlign)
        const hint = h !== undefined && h % align === 0 && h + length <= MMAP_LIMIT && isFree(vmas, h, h + length)
          ? h
          : findGap(vmas, length, align)
        if (hint === undefined) return yield* new OutOfMemory({ reason: `mmap: no free window of ${length} bytes` })
        start = hint
        reply = yield* st.requestArg("mmap", "mmap", [length, start, flags | 8, protBits(prot)])
      }
      st.touchMaps()
      if (reply.ok !== 1) {
        if (reply.err === "ENOMEM") return yield* new OutOfMemory({ reason: `mmap: ${errnoText(reply)}${kind === "hugetlb" ? " (no reserved huge pages?)" : ""}` })
        return yield* bad(`mmap: ${errnoText(reply)}`, start)
      }
      start = reply.addr ?? start
      st.addWorkload(start, start + length)
      yield* st.registerEvents(start, start + length)
      return start
    })))
  })

  const munmap = Effect.fnUntraced(function*(addr: number, length: number) {
    const err = checkWindow("munmap", addr, length)
    if (err !== undefined) return yield* err
    const end = addr + length
    yield* lock.withWrite(ifAlive(st, "munmap", Effect.gen(function*() {
      const ext = mappedExtent(st, addr, end)
      if (ext === undefined) return
      yield* settleDevice(addr, end, true)
      const r = yield* raised(ext[0], ext[1], "unmap", cpuRaises, st.requestArg("munmap", "munmap", [addr, length]))
      st.touchMaps()
      if (r.ok !== 1) return yield* bad(`munmap: ${errnoText(r)}`, addr)
      st.removeWorkload(addr, end)
    })))
  })

  const mprotect = Effect.fnUntraced(function*(addr: number, length: number, prot: Prot) {
    const err = checkMprotect(addr, length, prot)
    if (err !== undefined) return yield* err
    const end = addr + length
    yield* lock.withWrite(ifAlive(st, "mprotect", Effect.gen(function*() {
      const ext = mappedExtent(st, addr, end)
      if (ext === undefined || checkAccessCover(st, addr, end) !== undefined) {
        return yield* new VmaNotFound({ reason: "mprotect: [addr, addr + length) is not entirely mapped", addr })
      }
      // §11.11: VMAs whose protection does not change are left alone (no event, device pages stay); the
      // changed parts raise PROTECTION_VMA over their populated part (per PUD, from the first populated PMD).
      const parts = changedParts(addr, end, prot)
      for (const [s, e] of parts) yield* settleDevice(s, e, false)
      const events = parts.length === 0 ? [] : yield* Effect.sync(() => protectionRanges(parts))
      let cmd: Effect.Effect<Reply, InvalidArgument> = st.requestArg("mprotect", "mprotect", [addr, length, protBits(prot)])
      for (let i = events.length - 1; i >= 0; i--) cmd = raised(events[i]![0], events[i]![1], "protection-vma", true, cmd)
      const r = yield* cmd
      st.touchMaps()
      if (r.ok !== 1) return yield* bad(`mprotect: ${errnoText(r)}`, addr)
    })))
  })

  /** The parts of `[addr, end)` whose VMA protection differs from `prot` (merged where adjacent). */
  const changedParts = (addr: number, end: number, prot: Prot): Array<readonly [number, number]> => {
    const out: Array<[number, number]> = []
    for (const v of st.intersecting(addr, end)) {
      if (protEquals(v.prot, prot)) continue
      const s = Math.max(addr, v.start)
      const e = Math.min(end, v.end)
      const last = out[out.length - 1]
      if (last !== undefined && last[1] === s) last[1] = e
      else out.push([s, e])
    }
    return out
  }

  /**
   * PROTECTION_VMA ranges of `change_protection` over `parts` (§11.11): per PUD (1 GiB) span of a part
   * with a present or swapped page (pagemap), from the 2 MiB PMD of its first such page to the span's end.
   * A pagemap read failure counts the whole span as populated (an extra event is safe, a missing one not).
   */
  const protectionRanges = (parts: ReadonlyArray<readonly [number, number]>): Array<readonly [number, number]> => {
    const out: Array<readonly [number, number]> = []
    for (const [s, e] of parts) {
      for (let pud = alignDown(s, PUD_SIZE); pud < e; pud += PUD_SIZE) {
        const ps = Math.max(s, pud)
        const pe = Math.min(e, pud + PUD_SIZE)
        let first = -1
        try {
          const w = st.proc.pagemapRaw(ps, pe)
          for (let i = 0; i < w.length; i += 2) {
            if ((w[i + 1]! & 0xc0000000) !== 0) {
              first = ps + (i / 2) * PAGE_SIZE
              break
            }
          }
        } catch {
          first = ps
        }
        if (first >= 0) out.push([Math.max(ps, alignDown(first, HUGE_PAGE_SIZE)), pe])
      }
    }
    return out
  }

  const madviseDontNeed = Effect.fnUntraced(function*(addr: number, length: number) {
    const err = checkWindow("madvise", addr, length)
    if (err !== undefined) return yield* err
    const end = addr + length
    yield* lock.withWrite(ifAlive(st, "madvise", Effect.gen(function*() {
      const ext = mappedExtent(st, addr, end)
      if (ext === undefined) return
      yield* settleDevice(addr, end, false)
      const r = yield* raised(ext[0], ext[1], "clear", cpuRaises, st.requestArg("madvise", "madvise", [ext[0], ext[1] - ext[0], 4]))
      st.touchMaps()
      if (r.ok !== 1) return yield* bad(`madvise: ${errnoText(r)}`, addr)
    })))
  })

  const mremap = Effect.fnUntraced(function*(addr: number, oldLength: number, newLength: number, o?: MremapOptions) {
    const argErr = checkMremap(addr, oldLength, newLength, o)
    if (argErr !== undefined) return yield* argErr
    const newAddr = o?.newAddr
    const dontUnmap = o?.dontUnmap === true
    return yield* lock.withWrite(ifAlive(st, "mremap", Effect.gen(function*() {
      // device-resident pages first: their MISSING registration splits the VMA
      yield* settleDevice(addr, addr + oldLength, false)
      const vma = st.vmas().find((v) => v.start <= addr && addr < v.end)
      if (vma === undefined || addr + oldLength > vma.end) return yield* bad("mremap: [addr, addr + oldLength) is not inside one VMA", addr)
      // §11.15: MREMAP_DONTUNMAP on shared mappings is the kernel's to accept (5.13+), not refused here.
      if (newAddr !== undefined) {
        const ext = mappedExtent(st, newAddr, newAddr + newLength)
        if (ext !== undefined) yield* settleDevice(ext[0], ext[1], true)
      }
      // Where it moves when it cannot stay: like the simulated machine, the lowest free window (not the kernel's top-down pick).
      const vmas = st.vmas()
      const stays = newLength <= oldLength || (addr + oldLength === vma.end && isFree(vmas, vma.end, addr + newLength))
      const auto = newAddr === undefined && (dontUnmap || !stays)
        ? findGap(vmas, newLength, vma.kind === "hugetlb" ? HUGE_PAGE_SIZE : PAGE_SIZE)
        : undefined
      const target = newAddr ?? auto
      const flags = (target !== undefined ? 1 : 0) | (dontUnmap ? 2 : 0)
      const cmd = st.requestArg("mremap", "mremap", [addr, oldLength, newLength, flags, target ?? 0])
      // The kernel decides whether it moves: invalidate the old range (and a fixed target) up front.
      const withTarget = newAddr === undefined ? cmd : raised(newAddr, newAddr + newLength, "unmap", cpuRaises, cmd)
      const r = yield* raised(addr, addr + oldLength, "unmap", cpuRaises, withTarget)
      st.touchMaps()
      if (r.ok !== 1) return yield* bad(`mremap: ${errnoText(r)}`, addr)
      const to = r.addr ?? addr
      if (!dontUnmap) st.removeWorkload(addr, addr + oldLength)
      st.addWorkload(to, to + newLength)
      yield* st.registerEvents(to, to + newLength)
      return to
    })))
  })

  const stage = st.helper.hello.staging
  const io = st.helper.hello.io

  const read = Effect.fnUntraced(function*(addr: number, length: number) {
    const err = checkAccessArgs("read", addr, length)
    if (err !== undefined) return yield* err
    const out = new Uint8Array(length)
    if (length === 0) return out
    yield* lock.withRead(checkedAccess(st, st, "read", addr, length, () => Effect.gen(function*() {
      for (let done = 0; done < length;) {
        const n = Math.min(stage, length - done)
        const at = addr + done
        yield* st.ioLock.withPermits(1)(Effect.gen(function*() {
          const r = yield* st.requestAddr("read", "rd", [at, n], at)
          if (r.ok !== 1) return yield* new BadAddress({ reason: `read: ${errnoText(r)}`, addr: at })
          yield* Effect.try({
            try: () => st.proc.readMem(io, out.subarray(done, done + n)),
            catch: (e) => new BadAddress({ reason: `read: staging: ${String(e)}`, addr: at })
          })
        }))
        done += n
      }
    })))
    return out
  })

  const write = Effect.fnUntraced(function*(addr: number, bytes: Uint8Array) {
    const err = checkWriteArgs(addr, bytes)
    if (err !== undefined) return yield* err
    if (bytes.length === 0) return
    yield* lock.withRead(checkedAccess(st, st, "write", addr, bytes.length, (s, e) => Effect.gen(function*() {
      const doWrite = Effect.gen(function*() {
        for (let done = 0; done < bytes.length;) {
          const n = Math.min(stage, bytes.length - done)
          const at = addr + done
          const chunk = bytes.subarray(done, done + n)
          yield* st.ioLock.withPermits(1)(Effect.gen(function*() {
            yield* Effect.try({
              try: () => st.proc.writeMem(io, chunk),
              catch: (x) => new BadAddress({ reason: `write: staging: ${String(x)}`, addr: at })
            })
            const r = yield* st.requestAddr("write", "wr", [at, n], at)
            if (r.ok !== 1) return yield* new BadAddress({ reason: `write: ${errnoText(r)}`, addr: at })
          }))
          done += n
        }
      })
      const cow = yield* Effect.sync(() => {
        try {
          return st.cowExtent(s, e)
        } catch {
          return undefined
        }
      })
      if (cow === undefined) return yield* doWrite
      return yield* notifiers.invalidate(cow[0], cow[1], "clear", doWrite)
    })))
  })

  /**
   * `exit(2)` → `exit_mmap` (kernel-semantics §11.1): RELEASE over the whole
   * space, then UNMAP over the whole space, inside which the helper exits
   * (`NativeState.exitMmap`). A helper that died on its own gets the same
   * two events from the machine's death watcher (`Native.ts`).
   */
  const exit = Effect.suspend(() =>
    lock.withWrite(Effect.suspend(() => {
      if (!st.alive) return Effect.void
      return st.exitMmap(Effect.gen(function*() {
        st.exiting = true
        yield* Effect.ignore(st.helper.request("exit", [0]))
        yield* Effect.promise(() => st.helper.kill("SIGKILL", 5_000))
        st.alive = false
        st.touchMaps()
        st.allocs.clear()
        st.workload = []
      }))
    })))

  /**
   * `mlock(2)` / `munlock(2)` (kernel-semantics §11.17, IGT once-malloc-mlock): the window is
   * widened to pages (`checkLockWindow`, as the simulated machine); an empty one does nothing. Under
   * the mmap write lock (held across the helper's call: `do_mlock` sets the flags under it, then
   * `__mm_populate` runs under the read lock; holding it throughout keeps a migration to the device
   * out of the window in between): a hole → `VmaNotFound` before anything changes (Linux ENOMEM;
   * Linux itself would already have locked the VMAs before the hole). For `mlock`:
   * - device-resident pages come back to RAM first, as the CPU touch of GUP's fault would
   *   (`migrate_to_ram`): they are MISSING-registered with the helper's userfaultfd, and the kernel's
   *   populate of such a page is not a user fault (SIGBUS with a user-mode-only uffd, EFAULT →
   *   ENOMEM) or would wait for a `pf` event; afterwards the window holds only event-only (WP)
   *   registrations with no write-protected page, so the populate meets no uffd-handled fault;
   * - `populate_vma_page_range` faults private writable VMAs for writing (FOLL_WRITE), which copies
   *   present pages mapped read-only and not exclusively (zero page, a fork's COW pages):
   *   `wp_page_copy` raises CLEAR over them first — the Cpu raises it around the call, over
   *   `cowExtent` (uffd never reports it), like its store does.
   * The kernel then splits the VMAs at the edges; VM_LOCKED VMAs do not merge with unlocked
   * neighbours (`/proc/<pid>/maps`, re-read after the call, shows the kernel's VMAs). The kernel's
   * ENOMEM (a PROT_NONE part: `populate_vma_page_range` has no FOLL_FORCE there, so GUP fails —
   * VM_LOCKED stays set; or RLIMIT_MEMLOCK without CAP_IPC_LOCK) → `VmaNotFound` naming it; a device
   * page that cannot come back → `BadAddress`; other errnos (EINVAL: a hugetlb edge not 2 MiB
   * aligned; EAGAIN) and after `exit` → `InvalidArgument`. No notifier event for `munlock`.
   */
  const lockCall = (call: "mlock" | "munlock") =>
    Effect.fnUntraced(function*(addr: number, length: number) {
      const w = checkLockWindow(call, addr, length)
      if (w instanceof InvalidArgument) return yield* w
      const [s, e] = w
      if (s === e) return
      yield* lock.withWrite(ifAlive(st, call, Effect.gen(function*() {
        if (checkAccessCover(st, s, e) !== undefined) {
          return yield* new VmaNotFound({ reason: `${call}: [addr, addr + length) is not entirely mapped`, addr: s })
        }
        let cmd: Effect.Effect<Reply, InvalidArgument> = st.requestArg(call, call, [s, e - s])
        if (call === "mlock") {
          yield* st.migrateBack(s, e)
          const cow = yield* Effect.sync(() => {
            try {
              return st.cowExtent(s, e)
            } catch {
              return [s, e] as const // an extra CLEAR is safe, a missing one not
            }
          })
          if (cow !== undefined) cmd = notifiers.invalidate(cow[0], cow[1], "clear", cmd)
        }
        const r = yield* cmd
        st.touchMaps()
        if (r.ok === 1) return
        if (r.err === "ENOMEM") {
          return yield* new VmaNotFound({
            reason: `${call}: ${errnoText(r)}: the kernel's populate failed (a PROT_NONE part?) or RLIMIT_MEMLOCK was exceeded`,
            addr: s
          })
        }
        return yield* bad(`${call}: ${errnoText(r)}`, s)
      })))
    })
  const mlock = lockCall("mlock")
  const munlock = lockCall("munlock")

  /**
   * `fork(2)` (kernel-semantics §11.17, HMM selftests `anon_write_child*`, IGT
   * `fork-read*`): the helper forks a child that keeps serving (`forkc`), a
   * real copy-on-write copy made by Linux, and `build` makes it a process of
   * this machine (its own NativeState, uffd, notifiers, GPU VM; the same
   * device). Under the mmap write lock (`dup_mmap`); like `copy_page_range`,
   * each private VMA of the workload gets one PROTECTION_PAGE invalidation on
   * this process's notifiers around the fork, raised by the Cpu (uffd's FORK
   * event, when the helper has it, is the cross-check). MAP_SHARED mappings
   * get none and stay shared (Linux's doing).
   *
   * Device-private pages (this process's allocations): made read-only
   * (`cow`: `hmm_range_fault` reports them without write and a write
   * migrates them back to RAM first; a CPU touch migrates them back as
   * before). The child cannot map the parent's device pages (its own uffd,
   * its own helper), so — like the simulated machine — its copy is
   * materialised at fork: the allocation's bytes at the fork are written
   * into the child's (absent, unregistered) pages through
   * `/proc/<child>/mem`. Unlike the simulated machine's read-only copy, that
   * page is the child's exclusively: the child's first write to it breaks no
   * COW (no CLEAR in the child).
   */
  const fork = Effect.suspend(() =>
    lock.withWrite(ifAlive(st, "fork", Effect.gen(function*() {
      const cow: Array<readonly [number, number]> = []
      for (const v of st.vmas()) {
        if (v.shared) continue
        for (const [s, e] of st.workload) {
          const a = Math.max(s, v.start)
          const b = Math.min(e, v.end)
          if (a < b) cow.push([a, b])
        }
      }
      const copies: Array<{ readonly start: number; readonly bytes: Uint8Array }> = []
      const body = Effect.gen(function*() {
        for (const a of st.allocs.values()) {
          a.cow = true
          for (const [s, e] of liveRuns(a)) copies.push({ start: s, bytes: a.bytes.slice(s - a.start, e - a.start) })
        }
        return yield* Effect.mapError(st.helper.forkChild(), (e) => bad(`fork: ${e.message}`))
      })
      let cmd = st.expecting(0, ADDRESS_LIMIT, body)
      for (let i = cow.length - 1; i >= 0; i--) cmd = notifiers.invalidate(cow[i]![0], cow[i]![1], "protection-page", cmd)
      const helper = yield* cmd
      st.touchMaps()
      const child = yield* build(helper)
      for (const c of copies) {
        yield* Effect.try({
          try: () => child.st.proc.writeMem(c.start, c.bytes),
          catch: (e) => bad(`fork: materialising the child's copy of device pages through /proc/${helper.pid}/mem: ${String(e)}`, c.start)
        })
      }
      child.st.workload = [...st.workload]
      for (const [s, e] of child.st.workload) yield* child.st.registerEvents(s, e)
      return child.ctx
    }))))

  return Cpu.of({ mmap, munmap, mprotect, madviseDontNeed, mremap, mlock, munlock, read, write, exit, fork })
}

/**
 * Makes a running helper a process of the machine (its state and services,
 * its resources in the machine's scope). `InvalidArgument` naming why not.
 *
 * @category models
 */
export type BuildProcess = (helper: Helper) => Effect.Effect<
  { readonly st: NativeState; readonly ctx: Context.Context<MachineServices> },
  InvalidArgument
>

/** `VmaNotFound` check of mprotect: every byte of `[start, end)` mapped. */
const checkAccessCover = (st: NativeState, start: number, end: number): string | undefined => {
  let at = start
  for (const v of st.intersecting(start, end)) {
    if (v.start > at) return "hole"
    at = v.end
  }
  return at >= end ? undefined : "hole"
}

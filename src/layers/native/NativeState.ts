/**
 * The state of one process of a native machine: the helper process and its
 * `/proc` files, the Node-side mmap lock and MMU notifier registry, the
 * workload's regions, the uffd bookkeeping, the DMA oracle's live mappings
 * and the process's device allocations; and what the processes of one
 * machine share ({@link NativeDevice}: the device memory's allocator,
 * migration lock, traffic and live device mappings, and the machine's
 * violations, injections and invalidation counters — kernel-semantics §11.17:
 * several processes share one GPU and its VRAM, pagemaps are per device).
 *
 * Single-threaded JS: plain fields mutated inside `Effect.sync`; the helper's
 * own concurrency is behind its protocol (see `Helper.ts`).
 *
 * @since 0.1.0
 */
import { Context, Effect, Semaphore } from "effect"
import { ADDRESS_LIMIT, PAGE_SIZE, overlaps } from "../../domain/Address.ts"
import { BadAddress, InvalidArgument } from "../../domain/Errors.ts"
import type { MmuEvent } from "../../domain/MmuRange.ts"
import type { Vma } from "../../domain/Vma.ts"
import type { Injection, MachineStats, Violation } from "../../services/Machine.ts"
import type { HelperFailed } from "./Errors.ts"
import type { Helper, Reply } from "./Helper.ts"
import { type MmapLock, makeMmapLock } from "../common/MmapLock.ts"
import { IntervalNotifiers } from "../common/IntervalNotifiers.ts"
import { type ProcFiles, isExclusive, isPresent, maybeHugetlb, toVma } from "./Proc.ts"

/**
 * How invalidations of CPU-side changes are raised.
 *
 * @category models
 */
export type NotifierSource = "cpu" | "uffd"

/**
 * Resolved options of a native machine.
 *
 * @category models
 */
export interface NativeConfig {
  readonly vramBytes: number
  readonly devicePrivateOwner: string
  readonly pagemapId: string
  readonly notifier: NotifierSource
  readonly timeoutMs: number
}

/**
 * A device allocation: the bytes of `[start, end)` held in Node ("VRAM"), at device address `devAddr`.
 *
 * @category models
 */
export interface DeviceAlloc {
  readonly id: number
  readonly start: number
  readonly end: number
  readonly devAddr: number
  readonly bytes: Uint8Array
  /** Effect-clock time (ms) before which a CPU touch waits (the populate timeslice); eviction ignores it. */
  readonly until: number
  /** Pages not yet released (munmap of part of the allocation drops pages). */
  live: number
  readonly gone: Uint8Array
  /**
   * Set by a fork of the owning process (kernel-semantics §11.17,
   * `copy_nonpresent_pte` → `make_readable_device_private_entry`): the
   * device-private entries are read-only now, so `hmm_range_fault` reports
   * them without write and a write (CPU or device) migrates them back to RAM.
   */
  cow: boolean
}

/**
 * What the processes of one native machine share (kernel-semantics §11.17):
 * the device memory (its first-fit allocator scans every process's
 * allocations; eviction picks the oldest allocation of any process), one
 * migration lock, the device's traffic and live `deviceMap` count, and the
 * machine's violations, injections and invalidation counters.
 *
 * Locking: `migLock` is taken after the caller's own mmap lock and never
 * while waiting for another process's mmap lock, so one process's migration
 * can evict another's allocation (`toRamLocked` hook) without deadlock.
 *
 * @category models
 * @since 0.4.0
 */
export class NativeDevice {
  /** Every process of the machine (spawned and forked ones included; a gone one holds no allocations). */
  readonly processes = new Set<NativeState>()
  /** One migration (either way, any process) at a time. */
  readonly migLock: Semaphore.Semaphore = Semaphore.makeUnsafe(1)
  readonly traffic = { bytesToVram: 0, bytesToRam: 0, pagesToVram: 0, pagesToRam: 0, evictions: 0 }
  /** Live `deviceMap` mappings. */
  deviceMappings = 0
  /** Next allocation id (machine-wide: ids order allocations for eviction). */
  nextAlloc = 1
  readonly violations: Array<Violation> = []
  readonly inject = { hmmBusy: 0, dmaMapFail: 0, vramAllocFail: 0, nonBlockable: 0 }
  readonly invalidations: Record<string, number> = {}

  /** Every live allocation of every process, oldest first. */
  allocations(): Array<DeviceAlloc> {
    const out: Array<DeviceAlloc> = []
    for (const p of this.processes) for (const a of p.allocs.values()) out.push(a)
    return out.sort((a, b) => a.id - b.id)
  }

  /** The process holding allocation `a`. */
  ownerOf(a: DeviceAlloc): NativeState | undefined {
    for (const p of this.processes) if (p.allocs.get(a.id) === a) return p
    return undefined
  }
}

/**
 * uffd bookkeeping counters.
 *
 * @category models
 */
export interface UffdCounters {
  events: number
  /** Events inside a change Node itself raised (the cross-check). */
  confirmed: number
  /** Events nobody raised beforehand: raised as invalidations from the event. */
  unsolicited: number
  pagefaults: number
  registerFailures: number
  /** `readRetry` pagemap re-checks that found changed PFNs. */
  pagemapChanges: number
  byKind: Record<string, number>
}

/**
 * The shared machine state.
 *
 * @category models
 */
export class NativeState {
  readonly helper: Helper
  readonly proc: ProcFiles
  readonly config: NativeConfig
  readonly lock: MmapLock = makeMmapLock()
  readonly notifiers: IntervalNotifiers
  /** What this machine's processes share. */
  readonly device: NativeDevice
  /** The machine's (shared through `device`). */
  readonly violations: Array<Violation>
  readonly inject: NativeDevice["inject"]
  readonly invalidations: Record<string, number>
  readonly uffd: UffdCounters = { events: 0, confirmed: 0, unsolicited: 0, pagefaults: 0, registerFailures: 0, pagemapChanges: 0, byKind: {} }
  /** Address-space references (`mmget_not_zero` / `mmput`). */
  mmRefs = 0
  /** False after `exit` (or the helper's death). */
  alive = true
  /** Set while `exit` runs: the helper's death is then expected. */
  exiting = false
  /** Set once `exitMmap` delivered (or started delivering) RELEASE and UNMAP: never twice. */
  torn = false
  /** Regions the workload mapped through `Cpu` (sorted, disjoint `[start, end)`). */
  workload: Array<readonly [number, number]> = []
  /** Windows of changes Node raised itself and is carrying out now. */
  readonly expects = new Set<{ readonly start: number; readonly end: number }>()
  /** Live DMA mappings by `addr:order`, and per physical page (the GPU's oracle). */
  readonly dmaByKey = new Map<string, number>()
  readonly dmaPages = new Map<number, number>()
  dmaLive = 0
  /** Per notifier id: the last rangeFault's window and raw pagemap words, for `readRetry`'s re-check. */
  readonly snapshots = new Map<number, { readonly seq: number; readonly start: number; readonly end: number; readonly words: Uint32Array }>()
  /** This process's device allocations, by id. */
  readonly allocs = new Map<number, DeviceAlloc>()
  /** The device's (shared through `device`). */
  readonly traffic: NativeDevice["traffic"]
  /** One user of the helper's rd/wr staging buffer at a time. */
  readonly ioLock: Semaphore.Semaphore = Semaphore.makeUnsafe(1)
  /** One migration (either way) at a time: the device's lock, shared by every process of the machine. */
  readonly migLock: Semaphore.Semaphore
  private mapsCache: ReadonlyArray<Vma> | undefined
  /** Hook set by the pagemap: migrate the allocations overlapping `[start, end)` back to RAM. */
  migrateBack: (start: number, end: number) => Effect.Effect<void, BadAddress> = () => Effect.void
  /** Hook set by the pagemap: copy allocation `a` of this process back to RAM and free it (caller holds `migLock`; cross-process eviction). */
  toRamLocked: (a: DeviceAlloc) => Effect.Effect<void, BadAddress> = () => Effect.void

  /**
   * A process over `helper`; `device` is the machine's shared part (a new
   * machine's when omitted: the first process). The process joins `device.processes`.
   */
  constructor(helper: Helper, proc: ProcFiles, config: NativeConfig, inject: Injection | undefined, device: NativeDevice = new NativeDevice()) {
    this.helper = helper
    this.proc = proc
    this.config = config
    this.device = device
    this.violations = device.violations
    this.inject = device.inject
    this.invalidations = device.invalidations
    this.traffic = device.traffic
    this.migLock = device.migLock
    device.processes.add(this)
    this.notifiers = new IntervalNotifiers({
      takeNonBlockable: () => {
        if (this.inject.nonBlockable <= 0) return false
        this.inject.nonBlockable--
        return true
      },
      nonBlockablePending: () => this.inject.nonBlockable > 0,
      onViolation: (v) => this.recordViolation(v),
      countEvent: (e: MmuEvent) => {
        this.invalidations[e] = (this.invalidations[e] ?? 0) + 1
      }
    })
    if (inject !== undefined) this.addInjection(inject)
    helper.whenDead((e) => {
      if (this.alive && !this.exiting) this.recordViolation({ invariant: "helper-died", detail: e.message })
      this.alive = false
      this.mapsCache = []
    })
  }

  recordViolation(v: Violation): void {
    this.violations.push(v)
  }

  addInjection(i: Injection): void {
    this.inject.hmmBusy += i.hmmBusy ?? 0
    this.inject.dmaMapFail += i.dmaMapFail ?? 0
    this.inject.vramAllocFail += i.vramAllocFail ?? 0
    this.inject.nonBlockable += i.nonBlockable ?? 0
  }

  /** Forget the cached VMA list (after any mapping change). */
  touchMaps(): void {
    this.mapsCache = undefined
  }

  /** The VMAs of the helper (`/proc/<pid>/maps`, + smaps for possible hugetlb), cached until the next change. */
  vmas(): ReadonlyArray<Vma> {
    if (this.mapsCache !== undefined) return this.mapsCache
    if (!this.alive) return (this.mapsCache = [])
    try {
      const entries = this.proc.maps()
      const sizes = entries.some(maybeHugetlb) ? this.proc.smapsPageSizes() : undefined
      this.mapsCache = entries.map((e) => toVma(e, sizes !== undefined && (sizes.get(e.start) ?? PAGE_SIZE) > PAGE_SIZE))
    } catch {
      this.mapsCache = []
    }
    return this.mapsCache
  }

  /** VMAs intersecting `[start, end)`. */
  intersecting(start: number, end: number): Array<Vma> {
    return this.vmas().filter((v) => v.start < end && start < v.end)
  }

  /**
   * Pages of `[start, end)` a store would copy (present, not mapped
   * exclusively, in a private writable VMA): the extent of the COW break a
   * write raises CLEAR over first (uffd never reports `wp_page_copy`). After
   * a fork (kernel-semantics §11.17) these are the pages the child shares.
   * Throws when the pagemap cannot be read.
   */
  cowExtent(start: number, end: number): readonly [number, number] | undefined {
    let lo = -1
    let hi = -1
    for (const v of this.intersecting(start, end)) {
      if (!v.prot.write || v.shared) continue
      const s = Math.max(start, v.start)
      const e = Math.min(end, v.end)
      const w = this.proc.pagemapRaw(s, e)
      for (let i = 0; i < w.length; i += 2) {
        const h = w[i + 1]!
        if (isPresent(h) && !isExclusive(h)) {
          const p = s + (i / 2) * PAGE_SIZE
          if (lo < 0) lo = p
          hi = p + PAGE_SIZE
        }
      }
    }
    return lo < 0 ? undefined : [lo, hi]
  }

  /** Device allocations overlapping `[start, end)`. */
  allocsIn(start: number, end: number): Array<DeviceAlloc> {
    const out: Array<DeviceAlloc> = []
    for (const a of this.allocs.values()) if (overlaps(a.start, a.end, start, end)) out.push(a)
    return out.sort((a, b) => a.start - b.start)
  }

  /** Adds `[start, end)` to the workload regions. */
  addWorkload(start: number, end: number): void {
    this.removeWorkload(start, end)
    this.workload.push([start, end])
    this.workload.sort((a, b) => a[0] - b[0])
  }

  /** Removes `[start, end)` from the workload regions (splitting edges). */
  removeWorkload(start: number, end: number): void {
    const next: Array<readonly [number, number]> = []
    for (const [s, e] of this.workload) {
      if (e <= start || s >= end) next.push([s, e])
      else {
        if (s < start) next.push([s, start])
        if (e > end) next.push([end, e])
      }
    }
    this.workload = next
  }

  /**
   * Runs `e` with `[start, end)` marked as a change Node raised itself: uffd
   * events inside it are confirmations, not new invalidations.
   */
  expecting<A, E, R>(start: number, end: number, e: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> {
    return Effect.suspend(() => {
      const w = { start, end }
      this.expects.add(w)
      return Effect.ensuring(e, Effect.sync(() => this.expects.delete(w)))
    })
  }

  /**
   * `exit_mmap`'s notifier events (kernel-semantics §11.1), once per machine:
   * RELEASE over the whole space (`mmu_notifier_release` → `mn_itree_release`,
   * `[0, ULONG_MAX)`; here `[0, ADDRESS_LIMIT)`), then UNMAP over the whole
   * space (`unmap_vmas`), with `change` (the process going away) inside the
   * UNMAP invalidation. Used by `Cpu.exit` and when the helper dies on its
   * own. The caller holds the mmap write lock. A second call is a no-op.
   */
  exitMmap<E>(change: Effect.Effect<void, E>): Effect.Effect<void, E> {
    return Effect.suspend(() => {
      if (this.torn) return Effect.void
      this.torn = true
      return Effect.andThen(
        this.notifiers.invalidate(0, ADDRESS_LIMIT, "release", Effect.void),
        this.notifiers.invalidate(0, ADDRESS_LIMIT, "unmap", this.expecting(0, ADDRESS_LIMIT, change))
      )
    })
  }

  /** Is `[start, end)` inside a change Node is carrying out? */
  isExpected(start: number, end: number): boolean {
    for (const w of this.expects) if (w.start <= start && end <= w.end) return true
    return false
  }

  /** A helper request whose helper failure becomes `InvalidArgument` (for the mapping calls). */
  requestArg(call: string, cmd: string, args: ReadonlyArray<number>): Effect.Effect<Reply, InvalidArgument> {
    return Effect.mapError(this.helper.request(cmd, args), (e: HelperFailed) => new InvalidArgument({ reason: `${call}: ${e.message}` }))
  }

  /** A helper request whose helper failure becomes `BadAddress` (for accesses and faults). */
  requestAddr(call: string, cmd: string, args: ReadonlyArray<number>, addr?: number): Effect.Effect<Reply, BadAddress> {
    return Effect.mapError(this.helper.request(cmd, args), (e: HelperFailed) =>
      addr === undefined ? new BadAddress({ reason: `${call}: ${e.message}` }) : new BadAddress({ reason: `${call}: ${e.message}`, addr }))
  }

  /** Registers `[start, end)` of the workload with the uffd in the given mode (1 missing, 2 wp); failures are counted, not thrown. */
  register(start: number, end: number, mode: number): Effect.Effect<boolean> {
    if (this.helper.hello.uffd !== 1 || end <= start) return Effect.succeed(false)
    return Effect.map(Effect.result(this.helper.request("reg", [start, end - start, mode])), (r) => {
      this.touchMaps() // registration splits and merges VMAs (their uffd flags differ)
      const ok = r._tag === "Success" && r.success.ok === 1
      if (!ok) this.uffd.registerFailures++
      return ok
    })
  }

  /**
   * Back to event-only registration for `[start, end)`: UFFDIO_REGISTER never
   * drops a mode (a WP request on a MISSING|WP range is skipped), so unregister
   * first, then register WP.
   */
  eventOnly(start: number, end: number): Effect.Effect<boolean> {
    if (end <= start) return Effect.succeed(false)
    return Effect.andThen(Effect.ignore(this.helper.request("unreg", [start, end - start])), this.register(start, end, 2))
  }

  /** Registers every workload region intersecting `[start, end)` for events (WP mode: no fault trapping). */
  registerEvents(start: number, end: number): Effect.Effect<void> {
    return Effect.suspend(() => {
      const parts: Array<readonly [number, number]> = []
      for (const v of this.intersecting(start, end)) {
        if (v.kind !== "anonymous" && v.kind !== "hugetlb") continue
        for (const [s, e] of this.workload) {
          const a = Math.max(s, v.start, start)
          const b = Math.min(e, v.end, end)
          if (a < b) parts.push([a, b])
        }
      }
      return Effect.forEach(parts, ([a, b]) => this.register(a, b, 2), { discard: true })
    })
  }

  /** Machine counters. */
  stats(): MachineStats {
    let bytes = 0
    for (const a of this.allocs.values()) bytes += a.live * PAGE_SIZE
    return {
      framesLive: this.alive ? this.proc.rssPages() : 0,
      bytesHeld: bytes,
      invalidations: { ...this.invalidations },
      dmaMappingsLive: this.dmaLive,
      notifiersLive: this.notifiers.live
    }
  }
}

/**
 * The internal state as a service (for the native GPU, pagemap and tests in this folder).
 *
 * @category services
 */
export class NativeStateKey extends Context.Service<NativeStateKey, NativeState>()("gpusvm/native/NativeState") {}

/**
 * Errno name → a short explanation prefix.
 *
 * @category functions
 */
export const errnoText = (r: Reply): string => `${r.err ?? "EOTHER"} (errno ${r.errno ?? "?"})`

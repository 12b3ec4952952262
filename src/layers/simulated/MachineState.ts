/**
 * The shared state of one simulated machine, its options, and the `SimState`
 * service that exposes it to later work in this folder (a simulated GPU
 * reaching memory through the IOMMU, VRAM / device-private pages,
 * `migrate_to_ram`).
 *
 * One `MachineState` is one process on the machine: its address space (VMAs,
 * page table, mmap lock, MMU notifiers, mm references). What the processes of
 * one machine share lives in its {@link MachineWorld} and is reached through
 * the same fields (`frames`, `cache`, `iommu`, `devmem`, `inject`,
 * `violations`, `invalidations`, `schedule`): system memory (frames, page
 * cache), the IOMMU, the device memory of its pagemaps (`devmem`, see
 * `Vram.ts` / `SimPagemap.ts`), fault-injection counters, violations and
 * counters (kernel-semantics §11.17: several processes share one GPU and its
 * VRAM). Every service of `Simulated.layer` closes over one instance; each
 * build of the layer makes a fresh machine with one process, and
 * {@link MachineState.spawn} / `fork` (`SimCpu.ts`) add processes.
 *
 * Locking: the structures are plain mutable JS objects changed only inside
 * single synchronous steps; the mmap lock orders CPU changes (writers) against
 * faults and walks (readers); notifier sequences and invalidation counts are
 * `TxRef`s (see `IntervalNotifiers.ts`).
 *
 * @since 0.1.0
 */
import type { Now } from "../../domain/Now.ts"
import { Context, Effect } from "effect"
import type { MmuEvent } from "../../domain/MmuRange.ts"
import { MMU_EVENTS } from "../../domain/MmuRange.ts"
import type { BadAddress } from "../../domain/Errors.ts"
import type { Injection, MachineStats, Violation } from "../../services/Machine.ts"
import { Frames } from "./Frames.ts"
import { Iommu, type IommuMapping } from "./Iommu.ts"
import { makeMmapLock, type MmapLock } from "../common/MmapLock.ts"
import { IntervalNotifiers } from "../common/IntervalNotifiers.ts"
import { PageCache } from "./PageCache.ts"
import { PageTable, type DevicePte } from "./PageTable.ts"
import { makeYieldSchedule, type YieldSchedule, type ScheduleOptions } from "./SeededYields.ts"
import { Vmas } from "./Vmas.ts"
import { Interleaving, type InterleavingApi, lockWait, uncontrolled } from "../../services/Interleaving.ts"
import { Devmem } from "./Vram.ts"

/**
 * Options of `Simulated.layer`.
 *
 * @category models
 */
export interface SimulatedOptions {
  /** Seeded yield points at every service call (reproducible interleavings). */
  readonly schedule?: ScheduleOptions
  /** Initial fault injections (same meaning as `Machine.inject`). */
  readonly inject?: Injection
  /** Transparent huge pages for private anonymous memory (default true). */
  readonly thp?: boolean
  /** First IOVA the IOMMU hands out (default 0x1000_0000). */
  readonly iovaBase?: number
  /**
   * Device memory regions (`drm_pagemap`s), in order; the first is the default
   * `DevicePagemap`. Defaults per entry: `id` `"vram<i>"`, `owner`
   * {@link SimulatedOptions.devicePrivateOwner} (or `"gpusvm"`), `proto`
   * `"vram"`. `vramBytes` is rounded down to a multiple of 4 KiB; a size that
   * is not a non-negative safe integer ≤ 2^40 gives a zero-size pagemap and a
   * `bad-pagemap-option` violation. Ids must be distinct (a duplicate is a
   * defect when the layer is built).
   */
  readonly pagemaps?: ReadonlyArray<PagemapOptions>
  /** Shorthand for one pagemap `{ id: "vram0", owner: devicePrivateOwner, vramBytes, proto: "vram" }` (ignored when `pagemaps` is given). */
  readonly vramBytes?: number
  /** Default device-private owner of the pagemaps (default `"gpusvm"`). */
  readonly devicePrivateOwner?: string
}

/**
 * One configured device memory region (see {@link SimulatedOptions.pagemaps}).
 *
 * @category models
 */
export interface PagemapOptions {
  readonly id?: string
  readonly owner?: string
  readonly vramBytes: number
  readonly proto?: string
}

/**
 * Pending fault injections (counts of next calls to fail).
 *
 * @category models
 */
export interface InjectionCounters {
  hmmBusy: number
  dmaMapFail: number
  vramAllocFail: number
  nonBlockable: number
  copyFail: number
  seqRace: number
  evictPfnAllocFail: number
}

/**
 * Hooks. `cpuTouchedDevicePage` is the `migrate_to_ram` entry point: called
 * (before the access proceeds, mmap read lock held) for every device-private
 * entry a CPU access, or a faulting `hmm_range_fault` not owning the page (or
 * asking to write a read-only one), meets; it must replace the entry with a
 * system one (or find it already replaced). Installed by `SimPagemap.ts` when
 * the machine has device memory; unset, such a touch fails with `BadAddress`.
 *
 * @category models
 */
export interface MachineHooks {
  cpuTouchedDevicePage: ((addr: number, pte: DevicePte) => Effect.Effect<void, BadAddress>) | undefined
  /** `cpuTouchedDevicePage` in the calling step, or `NOT_NOW` with nothing done (issue #16, `Migrate.migrateToRamNow`). */
  cpuTouchedDevicePageNow: ((addr: number, pte: DevicePte) => Now<void>) | undefined
}

/**
 * What the processes of one simulated machine share (kernel-semantics §11.17):
 * the live processes (for the shmem objects several address spaces map, and
 * for the no-leak checks) and the next process id.
 *
 * @category models
 * @since 0.4.0
 */
export class MachineWorld {
  /** The processes of the machine that have not been reaped, in creation order. */
  readonly processes = new Set<MachineState>()
  /** The pid the next process gets. */
  nextPid = 1
}

/**
 * The state of one process of a simulated machine (and, through its shared
 * fields, of the machine).
 *
 * @category models
 */
export class MachineState {
  /** The machine's shared part (every process of the machine has the same one). */
  readonly world: MachineWorld
  /** This process's id (1 for the machine's first process). */
  readonly pid: number
  readonly options: SimulatedOptions
  /** Every violation recorded, in order (machine-wide). */
  readonly violations: Array<Violation>
  /** Invalidations raised, by event. */
  readonly invalidations: Record<MmuEvent, number>
  /** Pending injections. */
  readonly inject: InjectionCounters
  readonly frames: Frames
  readonly cache: PageCache
  readonly iommu: Iommu
  readonly vmas = new Vmas()
  readonly pt = new PageTable()
  readonly lock: MmapLock
  readonly notifiers: IntervalNotifiers
  readonly schedule: YieldSchedule
  /** Device-private entries currently in the page table. */
  devicePtes = 0
  /** Device-exclusive entries currently in the page table (kernel-semantics §11.17; 0 skips every scan for them). */
  exclusivePtes = 0
  /** Device memory of the configured pagemaps (`Vram.ts`), by id (machine-wide). */
  readonly devmem: Devmem
  /** References taken by `Mm.acquire` and not yet released (`mmget_not_zero` / `mmput`). */
  mmRefs = 0
  /** False once the process exited (`mm_users == 0`). */
  alive = true
  readonly hooks: MachineHooks = { cpuTouchedDevicePage: undefined, cpuTouchedDevicePageNow: undefined }
  /** Is THP enabled for private anonymous memory? */
  readonly thp: boolean
  /**
   * Swap entries of reclaimed anonymous pages (kernel-semantics §11.17, `KernelMoves.ts`): by
   * virtual page number, the page's saved bytes (`undefined`: it read as zeros). A vpn here has no
   * page-table entry; a fault on it swaps in (`do_swap_page`, `CpuFault.faultPage`).
   */
  readonly swap = new Map<number, Uint8Array | undefined>()
  /** Kernel-initiated page moves done so far (`KernelMoves.ts`), by kind: pages moved. */
  readonly kernelMoves: Record<string, number> = {}
  /** `mmu_interval_read_retry` checks that found the sequence moved (`SimMmuNotifier.ts`). */
  readRetriesMoved = 0

  /** The run's yield-point source (`Interleaving`), read when the machine was built. */
  readonly interleaving: InterleavingApi

  /**
   * A fresh machine with one process (no `sibling`), or a new process on the
   * machine of `sibling`, sharing its memory, IOMMU, device memory, injections,
   * violations, counters and schedule (kernel-semantics §11.17).
   */
  constructor(options: SimulatedOptions = {}, interleaving: InterleavingApi = uncontrolled, sibling?: MachineState) {
    this.options = sibling?.options ?? options
    this.interleaving = sibling?.interleaving ?? interleaving
    this.world = sibling?.world ?? new MachineWorld()
    this.pid = this.world.nextPid++
    this.world.processes.add(this)
    this.lock = makeMmapLock({ slowPath: lockWait(this.interleaving, "mmap lock") })
    if (sibling !== undefined) {
      this.violations = sibling.violations
      this.invalidations = sibling.invalidations
      this.inject = sibling.inject
      this.frames = sibling.frames
      this.cache = sibling.cache
      this.iommu = sibling.iommu
      this.devmem = sibling.devmem
    } else {
      this.violations = []
      this.invalidations = Object.fromEntries(MMU_EVENTS.map((e) => [e, 0])) as Record<MmuEvent, number>
      this.inject = { hmmBusy: 0, dmaMapFail: 0, vramAllocFail: 0, nonBlockable: 0, copyFail: 0, seqRace: 0, evictPfnAllocFail: 0 }
      this.addInjection(options.inject ?? {})
      const recordViolation = (v: Violation) => this.recordViolation(v)
      this.frames = new Frames(recordViolation)
      this.cache = new PageCache(this.frames)
      this.iommu = new Iommu(this.frames, options.iovaBase ?? 0x1000_0000)
      this.devmem = new Devmem()
    }
    const onViolation = (v: Violation) => this.recordViolation(v)
    this.notifiers = new IntervalNotifiers({
      takeNonBlockable: () => {
        if (this.inject.nonBlockable <= 0) return false
        this.inject.nonBlockable--
        return true
      },
      nonBlockablePending: () => this.inject.nonBlockable > 0,
      onViolation,
      countEvent: (e) => {
        this.invalidations[e]++
      },
      ...(interleaving.controlled ? { afterCallbacks: interleaving.point("mmu notifiers returned") } : {})
    })
    this.schedule = sibling?.schedule ?? makeYieldSchedule(options.schedule, interleaving)
    this.thp = this.options.thp ?? true
  }

  /**
   * A new, empty process on this machine (no VMAs, no notifiers), sharing its
   * memory, IOMMU and device memory: another program opening the same GPU
   * (kernel-semantics §11.17, IGT `processes-*`).
   */
  spawn(): MachineState {
    return new MachineState(this.options, this.interleaving, this)
  }

  /** Records a violation (never throws). */
  recordViolation(v: Violation): void {
    this.violations.push(v)
  }

  /** Adds injections (counts add up; negative or non-integer counts are ignored). */
  addInjection(i: Injection): void {
    const n = (x: number | undefined) => (x !== undefined && Number.isSafeInteger(x) && x > 0 ? x : 0)
    this.inject.hmmBusy += n(i.hmmBusy)
    this.inject.dmaMapFail += n(i.dmaMapFail)
    this.inject.vramAllocFail += n(i.vramAllocFail)
    this.inject.nonBlockable += n(i.nonBlockable)
    this.inject.copyFail += n(i.copyFail)
    this.inject.seqRace += n(i.seqRace)
    this.inject.evictPfnAllocFail += n(i.evictPfnAllocFail)
  }

  /** Current counters (`Machine.stats`). `framesLive` counts live 4 KiB base frames (a 2 MiB frame counts 512). */
  stats(): MachineStats {
    return {
      framesLive: this.frames.liveBasePages,
      bytesHeld: this.frames.bytesHeld,
      invalidations: { ...this.invalidations },
      dmaMappingsLive: this.iommu.size,
      notifiersLive: this.notifiers.live
    }
  }

  /** For the simulated device: IOVA → base pfn + offset, `undefined` = IOMMU fault (the caller records it). */
  translateIova(iova: number): { readonly pfn: number; readonly offset: number; readonly mapping: IommuMapping } | undefined {
    return this.iommu.translate(iova)
  }

  /** Reads `length` bytes of base page `pfn` from `offset` (within one page). Poisoned (freed) frames read as `undefined`. */
  readFrame(pfn: number, offset: number, length: number): Uint8Array | undefined {
    if (!this.frames.isLive(pfn)) return undefined
    const out = new Uint8Array(length)
    this.frames.read(pfn, offset, out, 0, length)
    return out
  }

  /** Writes bytes into base page `pfn` at `offset` (within one page); false if the frame is not live (or is the zero page). */
  writeFrame(pfn: number, offset: number, bytes: Uint8Array): boolean {
    if (pfn === 0 || !this.frames.isLive(pfn)) return false
    this.frames.write(pfn, offset, bytes, 0, bytes.length)
    return true
  }
}

/**
 * Creates a fresh machine.
 *
 * @category functions
 */
export const makeMachine = (options?: SimulatedOptions): Effect.Effect<MachineState> =>
  Effect.map(Interleaving, (il) => new MachineState(options, il))

/**
 * The machine's internal state, provided by `Simulated.layer` next to the
 * kernel-interface services, for tests and for later simulated components in
 * this folder. Not part of the kernel contract: code under test must not use it.
 *
 * @category services
 */
export class SimState extends Context.Service<SimState, MachineState>()("gpusvm/layers/simulated/SimState") {}

/**
 * The shared state of one simulated machine, its options, and the `SimState`
 * service that exposes it to later work in this folder (a simulated GPU
 * reaching memory through the IOMMU, VRAM / device-private pages,
 * `migrate_to_ram`).
 *
 * One `MachineState` holds one address space (VMAs, page table, mmap lock, MMU
 * notifiers), system memory (frames, page cache), the IOMMU, the device
 * memory of its pagemaps (`devmem`, see `Vram.ts` / `SimPagemap.ts`),
 * fault-injection counters, violations and counters. Every service of `Simulated.layer` closes
 * over the same instance; each build of the layer makes a fresh one.
 *
 * Locking: the structures are plain mutable JS objects changed only inside
 * single synchronous steps; the mmap lock orders CPU changes (writers) against
 * faults and walks (readers); notifier sequences and invalidation counts are
 * `TxRef`s (see `IntervalNotifiers.ts`).
 *
 * @since 0.1.0
 */
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
}

/**
 * The state of one simulated machine.
 *
 * @category models
 */
export class MachineState {
  readonly options: SimulatedOptions
  /** Every violation recorded, in order. */
  readonly violations: Array<Violation> = []
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
  /** Device memory of the configured pagemaps (`Vram.ts`), by id. */
  readonly devmem = new Devmem()
  /** References taken by `Mm.acquire` and not yet released (`mmget_not_zero` / `mmput`). */
  mmRefs = 0
  /** False once the process exited (`mm_users == 0`). */
  alive = true
  readonly hooks: MachineHooks = { cpuTouchedDevicePage: undefined }
  /** Is THP enabled for private anonymous memory? */
  readonly thp: boolean

  /** The run's yield-point source (`Interleaving`), read when the machine was built. */
  readonly interleaving: InterleavingApi

  constructor(options: SimulatedOptions = {}, interleaving: InterleavingApi = uncontrolled) {
    this.options = options
    this.interleaving = interleaving
    this.lock = makeMmapLock({ slowPath: lockWait(interleaving, "mmap lock") })
    this.invalidations = Object.fromEntries(MMU_EVENTS.map((e) => [e, 0])) as Record<MmuEvent, number>
    this.inject = { hmmBusy: 0, dmaMapFail: 0, vramAllocFail: 0, nonBlockable: 0, copyFail: 0, seqRace: 0, evictPfnAllocFail: 0 }
    this.addInjection(options.inject ?? {})
    const onViolation = (v: Violation) => this.recordViolation(v)
    this.frames = new Frames(onViolation)
    this.cache = new PageCache(this.frames)
    this.iommu = new Iommu(this.frames, options.iovaBase ?? 0x1000_0000)
    this.notifiers = new IntervalNotifiers({
      takeNonBlockable: () => {
        if (this.inject.nonBlockable <= 0) return false
        this.inject.nonBlockable--
        return true
      },
      onViolation,
      countEvent: (e) => {
        this.invalidations[e]++
      },
      ...(interleaving.controlled ? { afterCallbacks: interleaving.point("mmu notifiers returned") } : {})
    })
    this.schedule = makeYieldSchedule(options.schedule, interleaving)
    this.thp = options.thp ?? true
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

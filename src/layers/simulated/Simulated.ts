/**
 * The simulated machine: one `Simulated.layer(options)` provides `Cpu`, `Mm`,
 * `MmuNotifier`, `Hmm`, `Dma`, `Machine`, `KernelAlloc`, the simulated `Gpu`,
 * `DevicePagemap(s)` and `Pagemaps` from one shared machine state, so a test swaps the whole machine in one
 * line. Each build of the layer is a fresh machine (fresh address space, fresh
 * memory, fresh IOMMU).
 *
 * What it models (design §5, kernel-semantics §6–§8): VMAs with Linux-like
 * split/merge (`Vmas.ts`); lazily materialised system memory with map counts,
 * poisoning and never-reused pfns (`Frames.ts`); page caches of simulated
 * files and shmem objects (`PageCache.ts`); a page table with 2 MiB THP /
 * hugetlb mappings and room for device-private entries (`PageTable.ts`);
 * faults and COW (`Fault.ts`); the mmap read/write lock (`../common/MmapLock.ts`); MMU
 * interval notifiers raised before every CPU-side change (`../common/IntervalNotifiers.ts`);
 * `hmm_range_fault` (`SimHmm.ts`); an IOMMU behind the DMA API (`Iommu.ts`,
 * `SimDma.ts`); device memory with migration (`Vram.ts`, `SimPagemap.ts`);
 * seeded yield points (`SeededYields.ts`) and fault injection.
 *
 * @since 0.1.0
 */
import { Context, Effect, Layer } from "effect"
import { KernelAlloc } from "../../services/KernelAlloc.ts"
import { Machine, type MachineServices } from "../../services/Machine.ts"
import { Interleaving } from "../../services/Interleaving.ts"
import { MachineState, SimState, type SimulatedOptions } from "./MachineState.ts"
import { machineContext } from "../common/MachineContext.ts"
import { makeCpu } from "./SimCpu.ts"
import { makeGpu } from "./SimGpu.ts"
import { makeDma } from "./SimDma.ts"
import { makeHmm } from "./SimHmm.ts"
import { makeKernelAlloc } from "./SimKernelAlloc.ts"
import { makeMachineService } from "./SimMachine.ts"
import { makeMm } from "./SimMm.ts"
import { makeMmuNotifier } from "./SimMmuNotifier.ts"
import { makePagemaps } from "./SimPagemap.ts"

/** Options of `Simulated.layer` (see `MachineState.ts`). */
export type { SimulatedOptions } from "./MachineState.ts"
/** The internal machine state, its service key and constructor, for later simulated components. */
export { MachineState, SimState, makeMachine } from "./MachineState.ts"

/** Options of one configured pagemap. */
export type { PagemapOptions } from "./MachineState.ts"

/**
 * Everything `Simulated.layer` provides (plus the `Pagemaps` reference): the
 * kernel interfaces, the GPU and its device memory.
 *
 * @category models
 * @since 0.1.0
 */
export type SimulatedServices = MachineServices | KernelAlloc

/**
 * The services of an existing machine state, as a `Context` (for building
 * bigger machines in this folder). Builds the machine's pagemaps on first use
 * (later calls for the same state share them).
 *
 * @category functions
 */
export const contextOf = (st: MachineState): Context.Context<SimulatedServices | SimState> => {
  const pm = makePagemaps(st)
  return machineContext({
    cpu: makeCpu(st, contextOf),
    mm: makeMm(st),
    mmu: makeMmuNotifier(st),
    hmm: makeHmm(st),
    dma: makeDma(st),
    machine: makeMachineService(st, contextOf),
    gpu: makeGpu(st),
    pagemaps: pm.all,
    primary: pm.primary,
    mappers: pm.mappers
  }).pipe(Context.add(KernelAlloc, makeKernelAlloc(st)), Context.add(SimState, st))
}

/**
 * `Simulated.layer(options)`: a fresh simulated machine providing every
 * kernel-interface service from one shared state, its GPU (the fault handler is
 * registered by `Driver.layer`), its device memory: `DevicePagemaps` (every
 * configured pagemap, possibly none), `DevicePagemap` (the first one; with none
 * configured, an empty pagemap `"none"` of 0 bytes whose `populateMm` fails
 * with `OutOfMemory` — chosen so `DevicePagemap` is always present and its type
 * stays simple) and the `Pagemaps` registry the GPU SVM core resolves device
 * pages through.
 * Options: `schedule: { seed }` for reproducible interleavings, `inject` for
 * initial fault injections, `thp` (default true), `iovaBase`, `pagemaps` /
 * `vramBytes` + `devicePrivateOwner` for device memory.
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = (options: SimulatedOptions = {}): Layer.Layer<SimulatedServices> => layerWithState(options)

/**
 * `Simulated.layer` plus the machine's internal state `SimState`, for white-box
 * tests and benchmarks inside this repository (not exported by the package).
 *
 * @category layers
 * @since 0.2.0
 */
export const layerWithState = (options: SimulatedOptions = {}): Layer.Layer<SimulatedServices | SimState> =>
  Layer.effectContext(Effect.map(Interleaving, (il) => contextOf(new MachineState(options, il))))

/**
 * The simulated machine's public API.
 *
 * @category layers
 * @since 0.1.0
 */
export const Simulated = { layer } as const

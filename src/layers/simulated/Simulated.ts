/**
 * The simulated machine: one `Simulated.layer(options)` provides `Cpu`, `Mm`,
 * `MmuNotifier`, `Hmm`, `Dma` and `Machine` — plus the internal `SimState` —
 * from one shared machine state, so a test swaps the whole machine in one
 * line. Each build of the layer is a fresh machine (fresh address space, fresh
 * memory, fresh IOMMU).
 *
 * What it models (design §5, kernel-semantics §6–§8): VMAs with Linux-like
 * split/merge (`Vmas.ts`); lazily materialised system memory with map counts,
 * poisoning and never-reused pfns (`Frames.ts`); page caches of simulated
 * files and shmem objects (`PageCache.ts`); a page table with 2 MiB THP /
 * hugetlb mappings and room for device-private entries (`PageTable.ts`);
 * faults and COW (`Fault.ts`); the mmap read/write lock (`MmapLock.ts`); MMU
 * interval notifiers raised before every CPU-side change (`Notifiers.ts`);
 * `hmm_range_fault` (`SimHmm.ts`); an IOMMU behind the DMA API (`Iommu.ts`,
 * `SimDma.ts`); seeded yield points (`Schedule.ts`) and fault injection.
 *
 * @since 0.1.0
 */
import { Context, Effect, Layer } from "effect"
import { Cpu } from "../../services/Cpu.ts"
import { Dma } from "../../services/Dma.ts"
import { Hmm } from "../../services/Hmm.ts"
import { Machine } from "../../services/Machine.ts"
import { Mm } from "../../services/Mm.ts"
import { MmuNotifier } from "../../services/MmuNotifier.ts"
import { MachineState, SimState, type SimulatedOptions } from "./MachineState.ts"
import { makeCpu } from "./SimCpu.ts"
import { makeDma } from "./SimDma.ts"
import { makeHmm } from "./SimHmm.ts"
import { makeMachineService } from "./SimMachine.ts"
import { makeMm } from "./SimMm.ts"
import { makeMmuNotifier } from "./SimMmuNotifier.ts"

/** Options of `Simulated.layer` (see `MachineState.ts`). */
export type { SimulatedOptions } from "./MachineState.ts"
/** The internal machine state, its service key and constructor, for later simulated components. */
export { MachineState, SimState, makeMachine } from "./MachineState.ts"

/** Everything `Simulated.layer` provides. */
export type SimulatedServices = Cpu | Mm | MmuNotifier | Hmm | Dma | Machine | SimState

/** The services of an existing machine state, as a `Context` (for building bigger machines in this folder). */
export const contextOf = (st: MachineState): Context.Context<SimulatedServices> =>
  Context.make(Cpu, makeCpu(st)).pipe(
    Context.add(Mm, makeMm(st)),
    Context.add(MmuNotifier, makeMmuNotifier(st)),
    Context.add(Hmm, makeHmm(st)),
    Context.add(Dma, makeDma(st)),
    Context.add(Machine, makeMachineService(st)),
    Context.add(SimState, st)
  )

/**
 * `Simulated.layer(options)`: a fresh simulated machine providing every
 * kernel-interface service from one shared state (plus `SimState`).
 * Options: `schedule: { seed }` for reproducible interleavings, `inject` for
 * initial fault injections, `thp` (default true), `iovaBase`.
 */
export const layer = (options: SimulatedOptions = {}): Layer.Layer<SimulatedServices> =>
  Layer.effectContext(Effect.sync(() => contextOf(new MachineState(options))))

/** The simulated machine's public API. */
export const Simulated = { layer, contextOf } as const

/**
 * The context every machine layer provides (`MachineServices` plus the
 * `Pagemaps` registry), from the machine's service objects: the one place the
 * simulated and the native machine put their services together, so both
 * always provide the same set under the same keys.
 *
 * @since 0.2.0
 */
import { Context } from "effect"
import { Cpu } from "../../services/Cpu.ts"
import { DevicePagemap, type DevicePagemapApi, DevicePagemaps } from "../../services/DevicePagemap.ts"
import { Dma } from "../../services/Dma.ts"
import { Gpu } from "../../services/Gpu.ts"
import { Hmm } from "../../services/Hmm.ts"
import { Machine, type MachineServices } from "../../services/Machine.ts"
import { Mm } from "../../services/Mm.ts"
import { MmuNotifier } from "../../services/MmuNotifier.ts"
import { type DeviceMapper, Pagemaps } from "../../services/Pagemaps.ts"

/**
 * A machine's service objects.
 *
 * @category models
 * @since 0.2.0
 */
export interface MachineParts {
  readonly cpu: Cpu["Service"]
  readonly mm: Mm["Service"]
  readonly mmu: MmuNotifier["Service"]
  readonly hmm: Hmm["Service"]
  readonly dma: Dma["Service"]
  readonly machine: Machine["Service"]
  readonly gpu: Gpu["Service"]
  /** Every pagemap (possibly none). */
  readonly pagemaps: ReadonlyArray<DevicePagemapApi>
  /** The default `DevicePagemap` (the first, or the machine's empty stand-in). */
  readonly primary: DevicePagemapApi
  /** The registry GPU SVM resolves device pages through. */
  readonly mappers: ReadonlyMap<string, DeviceMapper>
}

/**
 * The context of a machine's parts: `Cpu`, `Mm`, `MmuNotifier`, `Hmm`, `Dma`,
 * `Machine`, `Gpu`, `DevicePagemaps`, `DevicePagemap` and `Pagemaps`.
 *
 * @category constructors
 * @since 0.2.0
 */
export const machineContext = (p: MachineParts): Context.Context<MachineServices> =>
  Context.make(Cpu, p.cpu).pipe(
    Context.add(Mm, p.mm),
    Context.add(MmuNotifier, p.mmu),
    Context.add(Hmm, p.hmm),
    Context.add(Dma, p.dma),
    Context.add(Machine, p.machine),
    Context.add(Gpu, p.gpu),
    Context.add(DevicePagemaps, { all: p.pagemaps }),
    Context.add(DevicePagemap, p.primary),
    Context.add(Pagemaps, p.mappers)
  )

/**
 * The native machine's GPU (`Gpu` service): the shared GPU engine
 * (`layers/common/GpuEngine.ts`: page table, read / write / atomic accesses,
 * the bounded fault loop, `stale-device-access` recording, counters — the
 * simulated GPU's design) over a real process.
 *
 * There is no IOMMU and no way to read memory by physical address here, so a
 * system-memory PTE holds the page's physical address (`Dma` = `PFN << 12`)
 * and is used as a checking oracle: each touch first checks that a live
 * DMA mapping covers that physical page and that `/proc/<pid>/pagemap` still
 * shows that PFN at the virtual address; only then are the bytes read or
 * written through `/proc/<pid>/mem` at the virtual address. A mismatch is a
 * `stale-device-access` violation and a `GpuFaultError` (invariant 2: no
 * stale device access). Device-memory PTEs reach the pagemap's bytes
 * directly (synchronously, through the native pagemap's own accessors).
 *
 * @since 0.1.0
 */
import { hex, PAGE_SIZE } from "../../domain/Address.ts"
import type { Gpu } from "../../services/Gpu.ts"
import { type GpuMemoryPort, makeGpuEngine, refused } from "../common/GpuEngine.ts"
import type { NativeState } from "./NativeState.ts"
import { isMapped } from "./NativeDma.ts"
import type { NativePagemap } from "./NativePagemap.ts"
import { isPresent, pfnOf } from "./Proc.ts"

/** Fault rounds per page before the access gives up (the engine's bound). */
export { MAX_FAULTS_PER_PAGE } from "../common/GpuEngine.ts"

/** The native machine's memories as the GPU engine sees them (DMA oracle + `/proc/<pid>/mem`, native pagemaps). */
const memoryOf = (st: NativeState, pagemaps: ReadonlyArray<NativePagemap>): GpuMemoryPort => {
  // Pagemaps sharing a protocol (several regions of one device) are told apart by device-physical address.
  const byProto = new Map<string, Array<NativePagemap>>()
  for (const p of pagemaps) byProto.set(p.proto, [...(byProto.get(p.proto) ?? []), p])
  const pagemapFor = (proto: string, at: number): NativePagemap | undefined => {
    const list = byProto.get(proto)
    if (list === undefined) return undefined
    return list.length === 1 ? list[0] : (list.find((p) => at >= p.dpaBase && at < p.dpaBase + p.totalBytes) ?? list[0])
  }
  return {
    touchSystem: (pte, va, pageOff, len, write, buf, bufOff) => {
      const phys = pte.devAddr + pageOff
      if (!isMapped(st, phys)) return refused(`DMA oracle: physical address ${hex(phys)} has no live mapping`)
      if (!st.alive) return refused(`the address space has exited`)
      try {
        const w = st.proc.pagemapRaw(va, va + PAGE_SIZE)
        const pfn = isPresent(w[1]!) ? pfnOf(w[0]!, w[1]!) : -1
        if (pfn * PAGE_SIZE !== pte.devAddr) {
          return refused(`DMA oracle: ${hex(va)} now maps ${pfn < 0 ? "no page" : `pfn ${hex(pfn)}`}, the PTE holds ${hex(pte.devAddr)}`)
        }
        const bytes = buf.subarray(bufOff, bufOff + len)
        if (write) st.proc.writeMem(va + pageOff, bytes)
        else st.proc.readMem(va + pageOff, bytes)
      } catch (e) {
        return refused(`access of ${hex(va)} through /proc/${st.helper.pid}/mem: ${String(e)}`)
      }
      return undefined
    },
    touchDevice: (pte, _va, pageOff, len, write, buf, bufOff) => {
      const at = pte.devAddr + pageOff
      const pm = pagemapFor(pte.proto, at)
      if (pm === undefined) return refused(`no device memory speaks protocol "${pte.proto}"`)
      if (write) {
        const r = pm.writeSync(at, buf.subarray(bufOff, bufOff + len))
        return r === undefined ? undefined : refused(`VRAM write at ${hex(at)}: ${r}`)
      }
      const r = pm.readSync(at, len)
      if (typeof r === "string") return refused(`VRAM read at ${hex(at)}: ${r}`)
      buf.set(r, bufOff)
      return undefined
    },
    recordViolation: (v) => st.recordViolation(v)
  }
}

/**
 * Builds the GPU of machine `st`; `pagemaps` are the device memories it can
 * reach directly. No explorer yield points (the native machine is not explored).
 *
 * @category functions
 */
export const makeGpu = (st: NativeState, pagemaps: ReadonlyArray<NativePagemap>): Gpu["Service"] =>
  makeGpuEngine(memoryOf(st, pagemaps))

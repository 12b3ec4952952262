/**
 * The simulated GPU (`Gpu` service): the shared GPU engine
 * (`layers/common/GpuEngine.ts`: page table, read / write / atomic accesses,
 * the bounded fault loop, `stale-device-access` recording, counters) over the
 * simulated machine's memories.
 *
 * A present system-memory PTE reaches memory only through the IOMMU model
 * (`MachineState.translateIova`): an IOVA with no live mapping, or a frame that
 * was freed, is a `stale-device-access` violation and the access fails with
 * `GpuFaultError`. Device-memory PTEs reach VRAM directly (the machine's device
 * memory of that protocol and address), through the VRAM's own access check
 * (which records its violations itself).
 *
 * Under the explorer a bind and an access are steps of their own
 * (`gpu.bind`, `gpu.access`), so that whatever the driver checked before a
 * bind can be invalidated in between unless the driver holds the notifier lock
 * across both.
 *
 * @since 0.1.0
 */
import { hex, PAGE_SIZE } from "../../domain/Address.ts"
import type { Gpu } from "../../services/Gpu.ts"
import { alreadyRecorded, type GpuMemoryPort, makeGpuEngine, refused } from "../common/GpuEngine.ts"
import type { MachineState } from "./MachineState.ts"
import type { Vram } from "./Vram.ts"

/** Fault rounds per page before the access gives up (the engine's bound). */
export { MAX_FAULTS_PER_PAGE } from "../common/GpuEngine.ts"

/** The simulated machine's memories as the GPU engine sees them (IOMMU model, VRAM). */
const memoryOf = (st: MachineState): GpuMemoryPort => {
  /** The device memory a device-physical address of protocol `proto` lies in. */
  const vramFor = (proto: string, dpa: number): Vram | undefined => {
    for (const v of st.devmem.byId.values()) if (v.proto === proto && v.ownsAddress(dpa)) return v
    return undefined
  }
  return {
    touchSystem: (pte, _va, pageOff, len, write, buf, bufOff) => {
      const at = pte.devAddr + pageOff
      const t = st.translateIova(at)
      if (t === undefined) return refused(`IOMMU fault: IOVA ${hex(at)} has no live mapping`)
      if (!write) {
        const got = st.readFrame(t.pfn, t.offset, len)
        if (got === undefined) return refused(`frame ${t.pfn} behind IOVA ${hex(pte.devAddr)} was freed`)
        buf.set(got, bufOff)
        return undefined
      }
      if (!st.writeFrame(t.pfn, t.offset, buf.subarray(bufOff, bufOff + len))) {
        return refused(`frame ${t.pfn} behind IOVA ${hex(pte.devAddr)} is not writable (freed or zero page)`)
      }
      return undefined
    },
    touchDevice: (pte, _va, pageOff, len, write, buf, bufOff) => {
      const at = pte.devAddr + pageOff
      const vram = vramFor(pte.proto, at)
      if (vram === undefined) return refused(`no device memory of protocol "${pte.proto}" at ${hex(at)}`)
      const err = vram.checkAccess(write ? "device write" : "device read", at, len)
      if (err !== undefined) return alreadyRecorded(err)
      const pfn = Math.floor(at / PAGE_SIZE)
      if (write) vram.writePage(pfn, pageOff, buf, bufOff, len)
      else vram.readPage(pfn, pageOff, buf, bufOff, len)
      vram.touch(pfn)
      return undefined
    },
    recordViolation: (v) => st.recordViolation(v)
  }
}

/**
 * Builds the GPU of machine `st`; it reaches the machine's device memories (`st.devmem`) directly.
 *
 * @category functions
 */
export const makeGpu = (st: MachineState): Gpu["Service"] =>
  makeGpuEngine(memoryOf(st), {
    // yield points only under the explorer (seeded schedules keep their old draws)
    accessPoint: st.interleaving.controlled ? st.schedule.at("gpu.access") : undefined,
    bindPoint: st.interleaving.controlled ? st.schedule.at("gpu.bind") : undefined
  })

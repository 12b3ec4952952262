/**
 * CPU mappings of buffer objects on the simulated machine (`Cpu.mmap({ bo })`,
 * Xe `xe_bo_map_fixed` → `ttm_bo_mmap_obj`; kernel-semantics §11.17, IGT
 * xe_exec_system_allocator `new-bo-map`, `evict-malloc-mix-bo`): VM_PFNMAP
 * VMAs over the BO's device pages, split, moved and unmapped like any VMA,
 * holding the BO's memory until the last of them goes.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { InvalidArgument } from "../../../src/domain/Errors.ts"
import { PROT_READ } from "../../../src/domain/Prot.ts"
import { DevicePagemap } from "../../../src/services/DevicePagemap.ts"
import { onMachine, pattern, services } from "./support.ts"

const KiB = 1024
const P = 4 * KiB

describe("§11.17 CPU mappings of buffer objects (simulated)", () => {
  it.effect("§11.17 xe_bo_map_fixed: the mapping is a shared special VMA; stores reach the BO's device pages (readDevice sees them), no CPU page-table entry is made", () =>
    onMachine(Effect.gen(function*() {
      const { cpu, st } = yield* services
      const pm = yield* DevicePagemap
      const bo = yield* pm.allocateBo(16 * KiB)
      const a = yield* cpu.mmap({ length: 16 * KiB, bo })
      const v = st.vmas.find(a)!
      assert.deepInclude({ kind: v.kind, shared: v.shared }, { kind: "special", shared: true })
      const bytes = pattern(16 * KiB, 3)
      yield* cpu.write(a, bytes)
      assert.deepStrictEqual(yield* cpu.read(a, 16 * KiB), bytes)
      let ptes = 0
      st.pt.forEachIn(a / P, a / P + 4, () => ptes++)
      assert.strictEqual(ptes, 0)
      // the device sees the same bytes at the BO's device addresses, page by page
      for (let i = 0; i < 4; i++) {
        const dev = yield* pm.readDevice(bo.addrs[0]!.addr + i * P, P)
        assert.deepStrictEqual(dev, bytes.subarray(i * P, (i + 1) * P), `page ${i}`)
      }
    }), { vramBytes: 1024 * KiB }))

  it.effect("§11.17 split by mprotect and moved by mremap, every part keeps its offset into the BO; mlock leaves it unlocked (VM_SPECIAL)", () =>
    onMachine(Effect.gen(function*() {
      const { cpu, st } = yield* services
      const pm = yield* DevicePagemap
      const bo = yield* pm.allocateBo(16 * KiB)
      const a = yield* cpu.mmap({ length: 16 * KiB, bo })
      const bytes = pattern(16 * KiB, 9)
      yield* cpu.write(a, bytes)
      yield* cpu.mprotect(a + 4 * KiB, 4 * KiB, PROT_READ)
      assert.strictEqual(st.vmas.intersecting(a, a + 16 * KiB).length, 3)
      const target = yield* cpu.mmap({ length: 8 * KiB })
      const moved = yield* cpu.mremap(a + 8 * KiB, 8 * KiB, 8 * KiB, { newAddr: target })
      assert.deepStrictEqual(yield* cpu.read(moved, 8 * KiB), bytes.subarray(8 * KiB))
      assert.deepStrictEqual(yield* cpu.read(a, 8 * KiB), bytes.subarray(0, 8 * KiB))
      yield* cpu.mlock(a, 8 * KiB)
      assert.isTrue(st.vmas.intersecting(a, a + 8 * KiB).every((v) => v.locked !== true))
      const grow = yield* Effect.flip(cpu.mremap(moved, 8 * KiB, 16 * KiB))
      assert.instanceOf(grow, InvalidArgument)
      assert.match(grow.reason, /cannot grow/)
    }), { vramBytes: 1024 * KiB }))

  it.effect("§11.17 the memory is released with the BO's last mapping once it is closed (freeBo), not before: part of the mapping keeps it", () =>
    onMachine(Effect.gen(function*() {
      const { cpu } = yield* services
      const pm = yield* DevicePagemap
      const bo = yield* pm.allocateBo(16 * KiB)
      const a = yield* cpu.mmap({ length: 16 * KiB, bo })
      yield* cpu.write(a + 12 * KiB, pattern(4 * KiB, 1))
      yield* pm.freeBo(bo)
      yield* cpu.munmap(a, 8 * KiB)
      assert.strictEqual((yield* pm.usage).usedBytes, 16 * KiB, "the tail still maps it")
      assert.deepStrictEqual(yield* cpu.read(a + 12 * KiB, 4 * KiB), pattern(4 * KiB, 1))
      yield* cpu.munmap(a + 8 * KiB, 8 * KiB)
      assert.strictEqual((yield* pm.usage).usedBytes, 0)
      // a released BO cannot be mapped again
      const again = yield* Effect.flip(cpu.mmap({ length: 4 * KiB, bo }))
      assert.instanceOf(again, InvalidArgument)
    }), { vramBytes: 1024 * KiB }))

  it.effect("§11.17 bad input: a BO not in this machine's device memory, or a mapping past its end, is InvalidArgument", () =>
    onMachine(Effect.gen(function*() {
      const { cpu } = yield* services
      const pm = yield* DevicePagemap
      const foreign = yield* Effect.flip(cpu.mmap({ length: 4 * KiB, bo: { bytes: 4 * KiB, addrs: [] } }))
      assert.instanceOf(foreign, InvalidArgument)
      const bo = yield* pm.allocateBo(8 * KiB)
      const past = yield* Effect.flip(cpu.mmap({ length: 12 * KiB, bo }))
      assert.instanceOf(past, InvalidArgument)
      assert.match(past.reason, /past the end/)
    }), { vramBytes: 1024 * KiB }))

  it.effect("§11.17 exit drops the mappings: a closed BO's memory goes with them", () =>
    onMachine(Effect.gen(function*() {
      const { cpu } = yield* services
      const pm = yield* DevicePagemap
      const bo = yield* pm.allocateBo(8 * KiB)
      yield* cpu.mmap({ length: 8 * KiB, bo })
      yield* pm.freeBo(bo)
      assert.strictEqual((yield* pm.usage).usedBytes, 8 * KiB)
      yield* cpu.exit
      assert.strictEqual((yield* pm.usage).usedBytes, 0)
    }), { vramBytes: 1024 * KiB }))
})

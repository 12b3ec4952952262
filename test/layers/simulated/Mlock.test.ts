/**
 * mlock / MAP_LOCKED on the simulated machine (kernel-semantics §11.17, issue
 * #14 part 4; IGT xe_exec_system_allocator's LOCK sections, e.g.
 * `once-malloc-mlock`): VM_LOCKED is set over the window, the pages are
 * populated at mlock (`__mm_populate`), locked VMAs do not merge with unlocked
 * neighbours, and munlock merges them back.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import type { MmuRange } from "../../../src/domain/MmuRange.ts"
import type { NotifierHandle } from "../../../src/domain/NotifierHandle.ts"
import { PROT_NONE, PROT_READ } from "../../../src/domain/Prot.ts"
import { vpnOf } from "../../../src/layers/simulated/PageTable.ts"
import { onMachine, services } from "./support.ts"

const P = 4096
const KiB = 1024

/** Present entries of `[addr, addr + len)`. */
const present = (st: { readonly pt: { forEachIn: (s: number, e: number, f: (vpn: number) => void) => void } }, addr: number, len: number) => {
  let n = 0
  st.pt.forEachIn(vpnOf(addr), vpnOf(addr + len), () => {
    n++
  })
  return n
}

describe("§11.17 mlock / munlock (simulated)", () => {
  it.effect("§11.17 mlock populates every page of the window (mm_populate) and sets VM_LOCKED; IGT once-malloc-mlock", () =>
    onMachine(Effect.gen(function*() {
      const { cpu, st } = yield* services
      const a = yield* cpu.mmap({ length: 64 * KiB })
      assert.strictEqual(present(st, a, 64 * KiB), 0)
      yield* cpu.mlock(a + 100, 16 * KiB) // rounded out to pages, as do_mlock does: 5 pages
      assert.strictEqual(present(st, a, 64 * KiB), 5)
      const locked = st.vmas.list.filter((v) => v.locked === true)
      assert.deepStrictEqual(locked.map((v) => [v.start - a, v.end - a]), [[0, 5 * P]])
      // private writable: populated for writing (FOLL_WRITE), so no later COW fault
      st.pt.forEachIn(vpnOf(a), vpnOf(a + 5 * P), (_v, pte) => {
        assert.isTrue(pte.kind === "system" && pte.writable)
      })
    })))

  it.effect("§11.17 a VM_LOCKED VMA does not merge with its unlocked neighbours; munlock merges them back", () =>
    onMachine(Effect.gen(function*() {
      const { cpu, st } = yield* services
      const a = yield* cpu.mmap({ length: 64 * KiB })
      yield* cpu.mlock(a + 16 * KiB, 16 * KiB)
      assert.deepStrictEqual(st.vmas.list.map((v) => [v.start - a, v.end - a, v.locked === true]), [
        [0, 16 * KiB, false],
        [16 * KiB, 32 * KiB, true],
        [32 * KiB, 64 * KiB, false]
      ])
      // a new MAP_LOCKED mapping right after a locked one merges with it only if both are locked
      const b = yield* cpu.mmap({ length: 16 * KiB, addr: a + 64 * KiB, fixed: true, locked: true })
      assert.strictEqual(st.vmas.list.length, 4)
      assert.strictEqual(present(st, b, 16 * KiB), 4, "MAP_LOCKED populates at mmap")
      yield* cpu.munlock(a, 80 * KiB)
      assert.deepStrictEqual(st.vmas.list.map((v) => [v.start - a, v.end - a, v.locked === true]), [[0, 80 * KiB, false]])
    })))

  it.effect("§11.17 mlock of a window with a hole is VmaNotFound (Linux ENOMEM) and changes nothing; a PROT_NONE part is locked, not populated, and is ENOMEM too (Linux 6.x)", () =>
    onMachine(Effect.gen(function*() {
      const { cpu, st } = yield* services
      const a = yield* cpu.mmap({ length: 64 * KiB })
      yield* cpu.munmap(a + 16 * KiB, 16 * KiB)
      const e = yield* Effect.flip(cpu.mlock(a, 64 * KiB))
      assert.strictEqual(e._tag, "VmaNotFound")
      assert.isTrue(st.vmas.list.every((v) => v.locked !== true))
      assert.strictEqual(present(st, a, 64 * KiB), 0)
      // an accessible part, a PROT_NONE part, an accessible part: Linux locks all three, populates the
      // first, fails at the second (GUP without FOLL_FORCE) and leaves the third unpopulated
      const g = yield* cpu.mmap({ length: 48 * KiB })
      yield* cpu.mprotect(g + 16 * KiB, 16 * KiB, PROT_NONE)
      const none = yield* Effect.flip(cpu.mlock(g, 48 * KiB))
      assert.strictEqual(none._tag, "VmaNotFound")
      assert.strictEqual(present(st, g, 16 * KiB), 4)
      assert.strictEqual(present(st, g + 16 * KiB, 32 * KiB), 0)
      assert.isTrue(st.vmas.intersecting(g, g + 48 * KiB).every((v) => v.locked === true))
      const bad = yield* Effect.flip(cpu.mlock(-1, P))
      assert.strictEqual(bad._tag, "InvalidArgument")
    })))

  it.effect("§11.17 mlock's populate breaks COW on a read-faulted private page with a CLEAR first; a read-only VMA is populated for reading", () =>
    onMachine(Effect.gen(function*() {
      const { cpu, mn, st } = yield* services
      const a = yield* cpu.mmap({ length: 16 * KiB })
      yield* cpu.read(a, 16 * KiB) // zero-page entries, read-only
      const log: Array<MmuRange> = []
      const cell: { h?: NotifierHandle } = {}
      cell.h = yield* mn.insert(a, 16 * KiB, (r, cur) => Effect.andThen(Effect.sync(() => log.push(r)), Effect.as(mn.setSeq(cell.h!, cur), true)))
      yield* cpu.mlock(a, 16 * KiB)
      assert.deepStrictEqual(log.map((r) => [r.event, r.start - a, r.end - a]), [["clear", 0, 16 * KiB]])
      const r = yield* cpu.mmap({ length: 8 * KiB, prot: PROT_READ })
      yield* cpu.mlock(r, 8 * KiB)
      st.pt.forEachIn(vpnOf(r), vpnOf(r + 8 * KiB), (_v, pte) => {
        assert.isFalse(pte.writable)
      })
      assert.strictEqual(present(st, r, 8 * KiB), 2)
    })))

  it.effect("§11.17 madvise(MADV_DONTNEED) of a VM_LOCKED VMA is InvalidArgument (Linux EINVAL); the VMAs before it are dropped, the locked pages stay", () =>
    onMachine(Effect.gen(function*() {
      const { cpu, st } = yield* services
      const a = yield* cpu.mmap({ length: 32 * KiB })
      yield* cpu.write(a, new Uint8Array(32 * KiB).fill(7))
      yield* cpu.mlock(a + 16 * KiB, 16 * KiB)
      const e = yield* Effect.flip(cpu.madviseDontNeed(a, 32 * KiB))
      assert.strictEqual(e._tag, "InvalidArgument")
      assert.strictEqual(present(st, a, 16 * KiB), 0, "the unlocked VMA before the locked one was dropped")
      assert.strictEqual(present(st, a + 16 * KiB, 16 * KiB), 4, "the locked pages stay")
      assert.deepStrictEqual(yield* cpu.read(a + 16 * KiB, 4), new Uint8Array(4).fill(7))
    })))
})

/**
 * The GPU VM binding structure (kernel-semantics §11.17, `src/domain/VmBinds.ts`;
 * IGT xe_exec_system_allocator `bo-unmap`, `busy`): mirror holes and BO
 * bindings against a plain per-page model over random operation sequences.
 */
import { assert, describe, it } from "@effect/vitest"
import { Arbitrary, Schema } from "effect"
import { VmBinds } from "../../src/domain/VmBinds.ts"

const int = (minimum: number, maximum: number) => Arbitrary.schema(Schema.Int.check(Schema.isBetween({ minimum, maximum })))
const PAGES = 32
const P = 4096

describe("§11.17 VmBinds (GPU VM bindings beside the mirror)", () => {
  it.prop(
    "§11.17 mirror holes and BO bindings match a per-page model (unmirror, mirror, bindBo, unbindBo)",
    { ops: Arbitrary.array(Arbitrary.all([int(0, 3), int(0, PAGES - 1), int(1, 8)]), { minLength: 20, maxLength: 80 }) },
    ({ ops }) => {
      const v = new VmBinds()
      const hole = new Array<boolean>(PAGES).fill(false)
      const bo = new Array<number>(PAGES).fill(0)
      let next = 1
      for (const [kind, a, n] of ops) {
        const s = a
        const e = Math.min(PAGES, a + n)
        if (kind === 0) {
          v.unmirror(s * P, e * P)
          for (let i = s; i < e; i++) hole[i] = true
        } else if (kind === 1) {
          v.mirror(s * P, e * P)
          for (let i = s; i < e; i++) hole[i] = false
        } else if (kind === 2) {
          // bind only where no BO is bound (the driver checks the same)
          if (v.bosIn(s * P, e * P).length > 0) {
            assert.isTrue(bo.slice(s, e).some((x) => x !== 0))
            continue
          }
          assert.isTrue(bo.slice(s, e).every((x) => x === 0))
          const id = next++
          v.bindBo(id, s * P, e * P)
          for (let i = s; i < e; i++) bo[i] = id
        } else {
          const id = bo[a]!
          if (id === 0) continue
          const b = v.unbindBo(id)
          assert.isDefined(b)
          for (let i = 0; i < PAGES; i++) if (bo[i] === id) bo[i] = 0
        }
        for (let i = 0; i < PAGES; i++) {
          assert.strictEqual(v.boAt(i * P + 100)?.bo ?? 0, bo[i])
          assert.strictEqual(v.mirrored(i * P), !hole[i] && bo[i] === 0)
        }
        // holes stay sorted, disjoint and merged
        for (let i = 1; i < v.holes.length; i++) assert.isTrue(v.holes[i - 1]![1] < v.holes[i]![0])
        assert.strictEqual(v.plain, hole.every((h) => !h) && bo.every((b) => b === 0))
      }
    }
  )
})

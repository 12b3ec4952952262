/**
 * Property: random sequences of mmap / munmap / mprotect / mremap / writes keep
 * the VMA list sorted, non-overlapping, maximally merged and equal to a plain
 * page-array model, and keep every page's bytes where the model says.
 */
import { assert, describe, it } from "@effect/vitest"
import { Arbitrary, Effect, Schema } from "effect"
import { PROT_READ, PROT_RW } from "../../../src/domain/Prot.ts"
import { MMAP_BASE } from "../../../src/layers/simulated/Vmas.ts"
import { onMachine, services } from "./support.ts"

const P = 4096

interface PageAttr {
  readonly write: boolean
  readonly shared: boolean
  /** 0 = private anonymous; else the model's shmem object id. */
  readonly obj: number
  /** Page offset in the object. */
  readonly off: number
  /** Private anonymous contents (byte at offset 0), if written. */
  readonly data?: number
}

interface ModelVma {
  start: number
  end: number
  write: boolean
  shared: boolean
}

class Model {
  pages = new Map<number, PageAttr>()
  objData = new Map<number, Map<number, number>>()
  nextObj = 1

  free(p: number, n: number): boolean {
    for (let i = p; i < p + n; i++) if (this.pages.has(i)) return false
    return true
  }
  firstFit(n: number): number {
    let p = 0
    while (!this.free(p, n)) p++
    return p
  }
  unmap(p: number, n: number) {
    for (let i = p; i < p + n; i++) this.pages.delete(i)
  }
  map(p: number, n: number, write: boolean, shared: boolean) {
    this.unmap(p, n)
    const obj = shared ? this.nextObj++ : 0
    for (let i = 0; i < n; i++) this.pages.set(p + i, { write, shared, obj, off: i })
  }
  mergeable(a: PageAttr, b: PageAttr): boolean {
    return a.write === b.write && a.shared === b.shared && a.obj === b.obj && (a.obj === 0 || b.off === a.off + 1)
  }
  vmas(): Array<ModelVma> {
    const keys = [...this.pages.keys()].sort((x, y) => x - y)
    const out: Array<ModelVma> = []
    let prev: PageAttr | undefined
    for (const k of keys) {
      const a = this.pages.get(k)!
      const last = out[out.length - 1]
      if (last !== undefined && last.end === k && prev !== undefined && this.mergeable(prev, a)) last.end = k + 1
      else out.push({ start: k, end: k + 1, write: a.write, shared: a.shared })
      prev = a
    }
    return out
  }
  byte(p: number): number {
    const a = this.pages.get(p)!
    return a.obj === 0 ? (a.data ?? 0) : (this.objData.get(a.obj)?.get(a.off) ?? 0)
  }
  write(p: number, b: number) {
    const a = this.pages.get(p)!
    if (a.obj === 0) this.pages.set(p, { ...a, data: b })
    else {
      const m = this.objData.get(a.obj) ?? new Map<number, number>()
      m.set(a.off, b)
      this.objData.set(a.obj, m)
    }
  }
  /** Moves pages [p, p+n) to q (old pages removed). */
  move(p: number, n: number, q: number) {
    const moved: Array<PageAttr> = []
    for (let i = 0; i < n; i++) moved.push(this.pages.get(p + i)!)
    this.unmap(p, n)
    moved.forEach((a, i) => this.pages.set(q + i, a))
  }
  /** Extends the mapping ending at page e-1 to [e, e+k) (fresh pages, offsets continuing). */
  extend(e: number, k: number) {
    const last = this.pages.get(e - 1)!
    for (let i = 0; i < k; i++) this.pages.set(e + i, { write: last.write, shared: last.shared, obj: last.obj, off: last.off + 1 + i })
  }
}

const Int = Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 1_000_000 }))

describe("simulated VMA list vs a plain model (kernel-semantics §6, §7)", () => {
  it.effect.prop(
    "§6 random mmap/munmap/mprotect/mremap sequences keep the VMA list equal to the model",
    { ops: Arbitrary.array(Arbitrary.schema(Int), { minLength: 1, maxLength: 40 }) },
    ({ ops }) =>
      onMachine(Effect.gen(function*() {
        const { cpu, mm } = yield* services
        const m = new Model()
        const addr = (p: number) => MMAP_BASE + p * P
        for (const x of ops) {
          const op = x % 7
          const p = Math.floor(x / 7) % 48
          const n = 1 + (Math.floor(x / 336) % 8)
          const k = 1 + (Math.floor(x / 2688) % 8)
          const flag = Math.floor(x / 21504) % 4
          const write = flag !== 1
          const shared = flag === 3
          switch (op) {
            case 0: {
              const got = yield* cpu.mmap({ length: n * P, prot: write ? PROT_RW : PROT_READ, shared })
              const want = m.firstFit(n)
              assert.strictEqual(got, addr(want), "mmap placement")
              m.map(want, n, write, shared)
              break
            }
            case 1: {
              yield* cpu.mmap({ addr: addr(p), fixed: true, length: n * P, prot: write ? PROT_RW : PROT_READ, shared })
              m.map(p, n, write, shared)
              break
            }
            case 2: {
              yield* cpu.munmap(addr(p), n * P)
              m.unmap(p, n)
              break
            }
            case 3: {
              const r = yield* Effect.result(cpu.mprotect(addr(p), n * P, write ? PROT_RW : PROT_READ))
              let covered = true
              for (let i = p; i < p + n; i++) if (!m.pages.has(i)) covered = false
              assert.strictEqual(r._tag, covered ? "Success" : "Failure", "mprotect outcome")
              if (covered) {
                for (let i = p; i < p + n; i++) m.pages.set(i, { ...m.pages.get(i)!, write })
              }
              break
            }
            case 4:
            case 5: {
              const withNewAddr = op === 5
              const q = (p + 16 + (Math.floor(x / 86016) % 32)) % 96
              const vma = m.vmas().find((v) => v.start <= p && p < v.end)
              const overlapsNew = withNewAddr && q < p + n && p < q + k
              const r = yield* Effect.result(
                cpu.mremap(addr(p), n * P, k * P, withNewAddr ? { newAddr: addr(q) } : undefined)
              )
              if (vma === undefined || p + n > vma.end || overlapsNew) {
                assert.strictEqual(r._tag, "Failure", "mremap must fail")
                break
              }
              assert.strictEqual(r._tag, "Success", "mremap must succeed")
              if (r._tag !== "Success") break
              if (!withNewAddr) {
                if (k === n) {
                  assert.strictEqual(r.success, addr(p))
                } else if (k < n) {
                  m.unmap(p + k, n - k)
                  assert.strictEqual(r.success, addr(p))
                } else if (p + n === vma.end && m.free(p + n, k - n)) {
                  m.extend(p + n, k - n)
                  assert.strictEqual(r.success, addr(p))
                } else {
                  const t = m.firstFit(k)
                  assert.strictEqual(r.success, addr(t), "mremap move target")
                  m.move(p, n, t)
                  m.extend(t + n, k - n)
                }
              } else {
                assert.strictEqual(r.success, addr(q))
                m.unmap(q, k)
                let len = n
                if (k < n) {
                  m.unmap(p + k, n - k)
                  len = k
                }
                m.move(p, len, q)
                if (k > len) m.extend(q + len, k - len)
              }
              break
            }
            case 6: {
              const a = m.pages.get(p)
              const b = x % 251
              const r = yield* Effect.result(cpu.write(addr(p), new Uint8Array([b])))
              assert.strictEqual(r._tag, a !== undefined && a.write ? "Success" : "Failure", "write outcome")
              if (r._tag === "Success") m.write(p, b)
              break
            }
          }
          // invariant after every step: sorted, non-overlapping, equal to the model
          const got = yield* mm.vmas
          for (let i = 1; i < got.length; i++) assert.isTrue(got[i - 1]!.end <= got[i]!.start, "sorted, disjoint")
          assert.deepStrictEqual(
            got.map((v) => ({ start: (v.start - MMAP_BASE) / P, end: (v.end - MMAP_BASE) / P, write: v.prot.write, shared: v.shared })),
            m.vmas()
          )
        }
        for (const p of [...m.pages.keys()].sort((a, b) => a - b)) {
          const got = yield* cpu.read(addr(p), 1)
          assert.strictEqual(got[0], m.byte(p), `byte of page ${p}`)
        }
      }), { thp: false }),
    { arbitrary: { runs: 120 } }
  )
})

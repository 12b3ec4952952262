/**
 * The concurrency workload of `Driver.concurrency.test.ts` (kernel-semantics §6, §10; design.md §8):
 * GPU-access fibers and CPU fibers (munmap, madvise, mprotect, re-mmap at the same address, CPU touches
 * of memory the GPU may have migrated) race on one buffer; each fiber owns a quarter it writes and
 * verifies exactly, the last quarter is chaos. `runSeed(seed)` runs workload `seed` once and returns the
 * problems found (empty = pass): wrong bytes, machine violations, leaks after exit. Shared by the
 * explorer's test and the fast-path test (`FastPath.test.ts`), which runs it under a preempting scheduler.
 */
import { Effect, Option } from "effect"
import { asActor } from "../../src/services/Interleaving.ts"
import { PROT_READ, PROT_RW } from "../../src/domain/Prot.ts"
import { Cpu } from "../../src/services/Cpu.ts"
import { DevicePagemaps } from "../../src/services/DevicePagemap.ts"
import { Gpu } from "../../src/services/Gpu.ts"
import { GpuSvm } from "../../src/services/GpuSvm.ts"
import { Machine } from "../../src/services/Machine.ts"
import { GpuSvmTest } from "../../src/testing/index.ts"

const KiB = 1024
const Q = 256 * KiB
const SIZE = 4 * Q

const lcg = (seed: number) => {
  let s = seed >>> 0
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    return s / 4294967296
  }
}

/** Pages migrated each way over all runs (the runs must really exercise device memory). */
export const exercised = { toVram: 0, toRam: 0 }

/** One run of workload `seed`; returns the problems found (empty = pass). */
export const runSeed = (seed: number) => {
  const problems: Array<string> = []
  const policy = (["xe", "always", "never"] as const)[seed % 3]!
  return Effect.gen(function*() {
    const cpu = yield* Cpu
    const gpu = yield* Gpu
    const svm = yield* GpuSvm
    const machine = yield* Machine
    const rand = lcg(seed)
    const base = yield* cpu.mmap({ length: SIZE, align: 2 * 1024 * KiB })
    const model = [new Uint8Array(Q), new Uint8Array(Q), new Uint8Array(Q)]
    const fill = (q: number, off: number, len: number, v: number) => {
      const bytes = new Uint8Array(len).fill(v)
      model[q]!.set(bytes, off)
      return bytes
    }
    // Start from known bytes everywhere.
    for (let q = 0; q < 3; q++) yield* cpu.write(base + q * Q, fill(q, 0, Q, 10 + q))

    const check = (who: string, q: number, off: number, got: Uint8Array | void) => {
      const want = model[q]!
      if (!(got instanceof Uint8Array)) return problems.push(`seed ${seed} ${who}: no bytes`)
      for (let i = 0; i < got.length; i++) {
        if (got[i] !== want[off + i]) {
          problems.push(`seed ${seed} (${policy}) ${who}: quarter ${q} offset ${off + i} is ${got[i]}, expected ${want[off + i]}`)
          return
        }
      }
    }
    const pick = () => {
      const off = Math.floor(rand() * (Q / 4096)) * 4096
      const len = Math.min(4096 * (1 + Math.floor(rand() * 8)), Q - off)
      return { off, len }
    }

    const gpuOwner = (q: number) =>
      Effect.gen(function*() {
        for (let i = 0; i < 6; i++) {
          const { off, len } = pick()
          if (rand() < 0.5) {
            const r = yield* Effect.result(gpu.access(base + q * Q + off, len, "write", fill(q, off, len, (seed + i + q) % 251)))
            if (r._tag === "Failure") problems.push(`seed ${seed} gpu${q} write failed: ${r.failure.message}`)
          } else {
            const r = yield* Effect.result(gpu.access(base + q * Q + off, len, "read"))
            if (r._tag === "Failure") problems.push(`seed ${seed} gpu${q} read failed: ${r.failure.message}`)
            else check(`gpu${q} read`, q, off, r.success)
          }
        }
      })

    const cpuOwner = Effect.gen(function*() {
      const q = 2
      for (let i = 0; i < 6; i++) {
        const { off, len } = pick()
        if (rand() < 0.5) yield* cpu.write(base + q * Q + off, fill(q, off, len, (seed * 7 + i) % 253))
        else check("cpu read", q, off, yield* cpu.read(base + q * Q + off, len))
        if (rand() < 0.3) {
          // the GPU reads the CPU's quarter too (no concurrent writer of it right now but us)
          const r = yield* Effect.result(gpu.access(base + q * Q + off, len, "read"))
          if (r._tag === "Success") check("gpu read of cpu quarter", q, off, r.success)
          else problems.push(`seed ${seed} gpu read of cpu quarter failed: ${r.failure.message}`)
        }
      }
    })

    const chaos = Effect.gen(function*() {
      const at = base + 3 * Q
      for (let i = 0; i < 5; i++) {
        const op = Math.floor(rand() * 5)
        if (op === 0) yield* cpu.madviseDontNeed(at, Q)
        else if (op === 1) yield* cpu.mprotect(at, Q, rand() < 0.5 ? PROT_READ : PROT_RW).pipe(Effect.ignore)
        else if (op === 2) {
          yield* cpu.munmap(at, Q)
          yield* cpu.mmap({ length: Q, addr: at, fixed: true })
        } else if (op === 3) yield* cpu.write(at, new Uint8Array(8192).fill(99)).pipe(Effect.ignore)
        else {
          const r = yield* Effect.result(gpu.access(at, 8192, "read"))
          if (r._tag === "Success" && r.success instanceof Uint8Array) {
            const v = r.success.find((b) => b !== 0 && b !== 99)
            if (v !== undefined) problems.push(`seed ${seed} chaos read saw ${v}, expected 0 or 99`)
          }
        }
      }
    })

    // bounded work and deadlock freedom are the explorer's to check (livelock / deadlock violations)
    yield* Effect.all([asActor(gpuOwner(0), "gpu0"), asActor(gpuOwner(1), "gpu1"), asActor(cpuOwner, "cpu"), asActor(chaos, "chaos")], {
      concurrency: "unbounded",
      discard: true
    })
    // final coherence of every owned byte, through the CPU
    for (let q = 0; q < 3; q++) check(`final cpu read`, q, 0, yield* cpu.read(base + q * Q, Q))
    for (const v of yield* machine.violations) problems.push(`seed ${seed} (${policy}) violation ${v.invariant}: ${v.detail}`)
    yield* cpu.exit
    yield* svm.fini
    const stats = yield* machine.stats
    if (stats.dmaMappingsLive !== 0 || stats.notifiersLive !== 0) problems.push(`seed ${seed}: leak after exit: ${JSON.stringify(stats)}`)
    for (const p of (yield* Effect.serviceOption(DevicePagemaps)).pipe(Option.map((x) => x.all), Option.getOrElse(() => []))) {
      const t = yield* p.traffic
      exercised.toVram += t.pagesToVram
      exercised.toRam += t.pagesToRam
      const u = yield* p.usage
      if (u.usedBytes !== 0) problems.push(`seed ${seed}: ${u.usedBytes} VRAM bytes leaked`)
    }
    return problems
  }).pipe(Effect.provide(GpuSvmTest.layer({ machine: { vramBytes: 8 * 1024 * KiB, devicePrivateOwner: "test-gpu" }, policy })))
}


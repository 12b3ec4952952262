/**
 * The IGT exec model and the subtest generator (issue #17 parts 3 and 4):
 * `gpu-exec` against what IGT's exec does (the batch fetched by the GPU, the
 * dword stored, the fence signalled and polled, `-race`'s fence inside the
 * data buffer, `fault`'s bad batch address), and the generated scenarios of a
 * handful of subtests checked step by step against expectations written by
 * hand from tests/intel/xe_exec_system_allocator.c (da668d6).
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit } from "effect"
import { simulated } from "../../src/cli/machines.ts"
import { decodeScenario } from "../../src/domain/Scenario.ts"
import { patternByte } from "../../src/domain/scenario/Patterns.ts"
import { BATCH_DATA, bbSize, build, type Built, EXEC_DATA } from "../../src/igt/Generate.ts"
import { subtest } from "../../src/igt/Subtests.ts"
import * as Runner from "../../src/programs/ScenarioRunner.ts"
import { decodeBatch, encodeBatch, MI } from "../../src/programs/scenario/ExecSteps.ts"

const G = 0x1_0000_0000 // the first address the simulated machine (and the generator) places at
const K64 = 0x10000

const scenarioOf = (name: string): Extract<Built, { kind: "scenario" }> => {
  const t = subtest(name)
  assert.isDefined(t, name)
  const b = build(t!)
  if (b.kind !== "scenario") assert.fail(`${name}: ${b.kind}: ${b.reason}`)
  return b as Extract<Built, { kind: "scenario" }>
}
const stepsOf = (name: string) => {
  const f = scenarioOf(name).file
  return (f.threads ?? f.processes?.[0]?.threads)![0]!.steps
}

/** `expected_data` after `memset(data, 5, …)`: the u32 at `offset`, as the cpu-write of pattern 5 lays the bytes. */
const memsetDword = (offset: number) => [0, 1, 2, 3].reduce((v, k) => v + patternByte(5, offset + k) * 256 ** k, 0)

const runFile = (json: unknown) =>
  Effect.gen(function*() {
    const exit = decodeScenario(json, "test")
    if (Exit.isFailure(exit)) return assert.fail(String(exit.cause))
    return yield* Runner.run(exit.value, simulated)
  })

describe("#17 part 3: gpu-exec, IGT's exec", () => {
  it("#17 part 3 the batch encodes as IGT's write_dword (MI_STORE_DWORD_IMM addr lo/hi value, MI_BATCH_BUFFER_END) and decodes back", () => {
    const b = encodeBatch([0x1_2345_6788], 0xdeadbeef, false)
    assert.strictEqual(b.length, 20)
    assert.deepStrictEqual(decodeBatch(b), [{ kind: "store", addr: 0x1_2345_6788, value: 0xdeadbeef }])
    assert.deepStrictEqual(decodeBatch(encodeBatch([0x1000], 0, true)), [{ kind: "atomic", addr: 0x1000 }])
    assert.strictEqual(typeof decodeBatch(new Uint8Array(8).fill(5)), "string", "junk is not a batch")
    assert.strictEqual(MI.BATCH_BUFFER_END, 0x05000000)
  })

  it.effect("#17 part 3 once-malloc's exec: the GPU fetches the batch from SVM memory, stores the dword, signals the fence; the CPU sees both", () =>
    Effect.gen(function*() {
      const r = yield* runFile({
        name: "exec",
        steps: [
          { op: "mmap", as: "d", length: "64K" },
          { op: "mmap", as: "f", length: "4K", shared: true },
          { op: "cpu-write", buf: "d", pattern: 5 },
          { op: "gpu-exec", batch: { buf: "d" }, store: { buf: "d", offset: 152 }, value: 0x12345678, fence: { buf: "f" } },
          { op: "expect-dword", buf: "d", offset: 152, value: 0x12345678 },
          { op: "expect-dword", buf: "f", value: 0 } // exec_ufence[0] = 0 after the poll
        ]
      })
      assert.deepStrictEqual(r.failures, [])
      assert.isTrue(r.ok)
      assert.isAtLeast(r.metrics.faults, 1, "the batch fetch and the store fault through the fault path")
    }))

  it.effect("#17 part 3 -race: the fence inside the data buffer (exec_sync zeroed before the exec), and an atomic batch (MI_ATOMIC_INC after value - 1)", () =>
    Effect.gen(function*() {
      const r = yield* runFile({
        name: "race",
        steps: [
          { op: "mmap", as: "d", length: "64K" },
          { op: "gpu-exec", batch: { buf: "d" }, store: { buf: "d", offset: 152 }, value: 7, fence: { buf: "d", offset: 144 }, fenceReset: "before" },
          { op: "gpu-exec", batch: { buf: "d", offset: 160 }, store: { buf: "d", offset: 312 }, value: 9, atomic: true, fence: { buf: "d", offset: 304 }, fenceReset: "before", queue: 1 }
        ]
      })
      assert.deepStrictEqual(r.failures, [])
      assert.isTrue(r.ok)
    }))

  it.effect("#17 part 3 IGT fault: a batch at batch_addr * 2 faults, the fence stays unsignalled and the queue is banned", () =>
    Effect.gen(function*() {
      const steps = [
        { op: "mmap", as: "d", length: "2M" },
        { op: "mmap", as: "f", length: "4K", shared: true },
        { op: "gpu-exec", batch: { buf: "d" }, store: { buf: "d", offset: 152 }, value: 1, fence: { buf: "f" }, badBatch: true, check: false }
      ]
      const ok = yield* runFile({ name: "fault", steps })
      assert.deepStrictEqual(ok.failures, [])
      const again = yield* runFile({ name: "fault", steps: [...steps, { op: "gpu-exec", batch: { buf: "d", offset: 160 }, store: { buf: "d", offset: 312 }, value: 2, fence: { buf: "f" } }] })
      assert.match(again.failures[0]?.detail ?? "", /exec queue 0 is banned/)
    }))

  it.effect("#17 part 3 a batch slot that holds no batch (writeBatch: false, nothing written) hangs the GPU: a failure, never a pass", () =>
    Effect.gen(function*() {
      const r = yield* runFile({
        name: "nobatch",
        steps: [
          { op: "mmap", as: "d", length: "64K" },
          { op: "cpu-write", buf: "d", pattern: 5 },
          { op: "gpu-exec", batch: { buf: "d" }, store: { buf: "d", offset: 152 }, value: 3, writeBatch: false }
        ]
      })
      assert.isFalse(r.ok)
      assert.match(r.failures[0]?.detail ?? "", /is not a batch/)
    }))
})

describe("#17 part 4: generated subtests, step by step against IGT", () => {
  it("#17 part 4 once-malloc: test_exec(1 queue, 1 exec, bo_size 0): aligned_alloc, memset 5, bind fence, exec_ufence, one exec, frees", () => {
    const bo = bbSize(160) // xe_bb_size(sizeof(test_exec_data) * 1) = 64K
    assert.strictEqual(bo, K64)
    assert.deepStrictEqual(stepsOf("once-malloc"), [
      { op: "mmap", as: "data0", length: K64, addr: G, fixed: true },
      { op: "cpu-write", buf: "data0", length: K64, pattern: 5 },
      { op: "cpu-write", buf: "data0", offset: 136, length: 8, pattern: 0 },
      { op: "mmap", as: "ufence1", length: 4096, addr: G + K64, fixed: true, shared: true },
      { op: "cpu-write", buf: "ufence1", length: 4096, pattern: 5 },
      { op: "gpu-exec", batch: { buf: "data0", offset: 0 }, store: { buf: "data0", offset: 152 }, value: memsetDword(156), fence: { buf: "ufence1" }, queue: 0 },
      { op: "munmap", buf: "ufence1" },
      { op: "munmap", buf: "data0" }
    ])
  })

  it("#17 part 4 once-malloc-race: no exec_ufence; the fence is data[0].exec_sync, zeroed before the exec", () => {
    assert.deepStrictEqual(stepsOf("once-malloc-race"), [
      { op: "mmap", as: "data0", length: K64, addr: G, fixed: true },
      { op: "cpu-write", buf: "data0", length: K64, pattern: 5 },
      { op: "cpu-write", buf: "data0", offset: 136, length: 8, pattern: 0 },
      {
        op: "gpu-exec",
        batch: { buf: "data0", offset: 0 },
        store: { buf: "data0", offset: 152 },
        value: memsetDword(156),
        fence: { buf: "data0", offset: 144 },
        fenceReset: "before",
        queue: 0
      },
      { op: "munmap", buf: "data0" }
    ])
  })

  it("#17 part 4 twice-mmap-remap: after each wait the buffer moves (mremap MAYMOVE|FIXED onto a fresh reservation), the check reads the new place", () => {
    const v0 = memsetDword(156)
    const v1 = memsetDword(160 + 156)
    assert.deepStrictEqual(stepsOf("twice-mmap-remap"), [
      { op: "mmap", as: "data0", length: K64, addr: G, fixed: true },
      { op: "cpu-write", buf: "data0", length: K64, pattern: 5 },
      { op: "cpu-write", buf: "data0", offset: 136, length: 8, pattern: 0 },
      { op: "mmap", as: "ufence1", length: 4096, addr: G + K64, fixed: true, shared: true },
      { op: "cpu-write", buf: "ufence1", length: 4096, pattern: 5 },
      { op: "gpu-exec", batch: { buf: "data0", offset: 0 }, store: { buf: "data0", offset: 152 }, value: v0, fence: { buf: "ufence1" }, queue: 0, check: false },
      { op: "mmap", as: "next2", length: K64, addr: G + 2 * K64, fixed: true, prot: "none" },
      { op: "mremap", buf: "data0", newLength: K64, as: "data3", newAddr: G + 2 * K64 },
      { op: "expect-dword", buf: "data3", offset: 152, value: v0 },
      { op: "gpu-exec", batch: { buf: "data3", offset: 160 }, store: { buf: "data3", offset: 312 }, value: v1, fence: { buf: "ufence1" }, queue: 0, check: false },
      { op: "mmap", as: "next4", length: K64, addr: G, fixed: true, prot: "none" },
      { op: "mremap", buf: "data3", newLength: K64, as: "data5", newAddr: G },
      { op: "expect-dword", buf: "data5", offset: 312, value: v1 },
      { op: "munmap", buf: "ufence1" },
      { op: "munmap", buf: "data5" }
    ])
  })

  it("#17 part 4 many-stride-malloc and many-execqueues-malloc: data[i * 256] per exec in a stride-sized buffer; exec queue i % 16", () => {
    const stride = stepsOf("many-stride-malloc")
    assert.deepStrictEqual(stride[0], { op: "mmap", as: "data0", length: bbSize(256 * 128 * 160), addr: G, fixed: true })
    const execs = stride.filter((s) => s.op === "gpu-exec")
    assert.strictEqual(execs.length, 128)
    assert.deepStrictEqual(execs.slice(0, 2).map((s) => s.batch), [{ buf: "data0", offset: 0 }, { buf: "data0", offset: 256 * 160 }])
    const queues = stepsOf("many-execqueues-malloc").filter((s) => s.op === "gpu-exec").map((s) => s.queue)
    assert.deepStrictEqual(queues.slice(0, 18), [...Array.from({ length: 16 }, (_, i) => i), 0, 1])
  })

  it("#17 part 4 partial-remap-cpu-fault: two batches written ahead, munmap of the first half after exec 0, MAP_LOCKED remap that holds exec 1's fence", () => {
    const v1 = memsetDword(0x100000 + 160 + 156)
    assert.deepStrictEqual(stepsOf("partial-remap-cpu-fault"), [
      { op: "mmap", as: "res0", length: 0x400000, addr: G, fixed: true, prot: "none" },
      { op: "mmap", as: "data1", length: 0x200000, addr: G, fixed: true },
      { op: "cpu-write", buf: "data1", length: 0x200000, pattern: 5 },
      { op: "cpu-write", buf: "data1", offset: 136, length: 8, pattern: 0 },
      { op: "mmap", as: "ufence2", length: 4096, addr: G + 0x400000, fixed: true, shared: true },
      { op: "cpu-write", buf: "ufence2", length: 4096, pattern: 5 },
      { op: "gpu-exec", batch: { buf: "data1", offset: 0 }, store: { buf: "data1", offset: 152 }, value: memsetDword(156), exec: false },
      { op: "gpu-exec", batch: { buf: "data1", offset: 0x100000 + 160 }, store: { buf: "data1", offset: 0x100000 + 312 }, value: v1, exec: false },
      { op: "gpu-exec", batch: { buf: "data1", offset: 0 }, store: { buf: "data1", offset: 152 }, value: memsetDword(156), writeBatch: false, fence: { buf: "ufence2" } },
      { op: "munmap", buf: "data1", offset: 0, length: 0x100000 },
      { op: "mmap", as: "new3", length: 0x100000, addr: G, fixed: true, locked: true },
      { op: "gpu-exec", batch: { buf: "data1", offset: 0x100000 + 160 }, store: { buf: "data1", offset: 0x100000 + 312 }, value: v1, writeBatch: false, fence: { buf: "new3" } },
      { op: "munmap", buf: "ufence2" },
      { op: "munmap", buf: "res0" }
    ])
  })

  it("#17 part 4 unaligned-alloc: many_allocs(12M, 1.5M, 4K): 9 allocations, 384 batches each written before any exec, one fence on the last", () => {
    const steps = stepsOf("unaligned-alloc")
    const mmaps = steps.filter((s) => s.op === "mmap" && String(s.as).startsWith("alloc"))
    assert.strictEqual(mmaps.length, 9) // (9 * (12M / 1.5M)) / 8
    assert.isTrue(mmaps.every((s) => s.length === 0x180000 && Number(s.addr) % 0x200000 === 0), "aligned_alloc(SZ_2M, 1.5M)")
    const writes = steps.filter((s) => s.op === "gpu-exec" && s.exec === false)
    const execs = steps.filter((s) => s.op === "gpu-exec" && s.exec !== false)
    assert.strictEqual(writes.length, 9 * 384)
    assert.strictEqual(execs.filter((s) => s.fence !== undefined).length, 9, "num_syncs = 1 only on the last exec of each alloc")
    assert.strictEqual(steps.filter((s) => s.op === "expect-dword").length, 9 * 384)
  })

  it("#17 part 5 vacuous and skipped subtests say so (IGT's early return; compute), never a scenario", () => {
    const b = (n: string) => build(subtest(n)!)
    assert.strictEqual(b("once-malloc-multi-fault").kind, "vacuous")
    assert.strictEqual(b("threads-many-malloc-fork-read").kind, "vacuous")
    for (const n of ["once-new-bo-map", "many-new-bo-map-nomemset", "evict-malloc-mix-bo", "processes-evict-malloc-mix-bo"]) {
      assert.strictEqual(b(n).kind, "scenario", `${n}: BO CPU mappings exist (bo-mmap)`)
    }
    assert.strictEqual(b("compute").kind, "skipped")
    assert.match((b("compute") as { reason: string }).reason, /compute kernel/)
  })

  it("#17 part 5 IGT twice-new-bo-map (BO_MAP, test_exec): exec 1 ends by reserving a fresh window, creating a VRAM BO, mapping it there (xe_bo_map_fixed) and binding it; at cleanup the mirror is bound over it, it is unmapped and closed", () => {
    const steps = stepsOf("twice-new-bo-map")
    const bo = steps.findIndex((s) => s.op === "bo-create")
    assert.isAbove(bo, 0)
    const res = steps[bo - 1]!
    assert.deepInclude(res, { op: "mmap", prot: "none", length: steps[bo]!.length })
    assert.deepStrictEqual(ops(steps.slice(bo, bo + 3)), ["bo-create", "bo-mmap", "bo-bind"])
    assert.strictEqual(steps[bo + 1]!.buf, res.as)
    // both execs ran before it (odd(i) at the end of exec 1) and no exec uses the BO: cleanup drops it
    assert.strictEqual(steps.slice(bo).filter((s) => s.op === "gpu-exec").length, 0)
    const tail = ops(steps.slice(bo + 3))
    assert.deepStrictEqual(tail.slice(0, 4), ["cpu-write", "vm-bind", "munmap", "bo-destroy"], "memset through the mapping, then the cleanup's if (bo)")
    assert.strictEqual(steps.filter((s) => s.op === "munmap" && s.buf === res.as).length, 1, "data is not freed again")
  })

  it("#17 part 5 IGT many-new-bo-map (BO_MAP): every exec after an odd one runs in the BO mapped there; the next exec first binds the mirror over it, unmaps it and closes it", () => {
    const steps = stepsOf("many-new-bo-map")
    const mapped = new Set(steps.filter((s) => s.op === "bo-mmap").map((s) => s.buf))
    assert.strictEqual(mapped.size, 64, "odd(i) for 128 execs")
    const inBo = steps.filter((s) => s.op === "gpu-exec" && s.exec !== false && mapped.has((s.batch as { buf: string }).buf))
    assert.strictEqual(inBo.length, 63, "the exec after each odd one, but after the last")
    for (const b of mapped) {
      const at = steps.findIndex((s) => s.op === "vm-bind" && s.buf === b)
      assert.deepStrictEqual(ops(steps.slice(at, at + 3)), ["vm-bind", "munmap", "bo-destroy"], String(b))
    }
  })

  it("#17 part 5 IGT evict-malloc-mix-bo (MIX_BO_ALLOC, many_allocs): odd allocations are a PROT_NONE reservation of alloc_size + 2 MiB with a VRAM BO mapped and bound at its 2 MiB-aligned pointer; touched and checked through the mapping; __aligned_free, then gem_close", () => {
    const steps = stepsOf("evict-malloc-mix-bo")
    const creates = steps.flatMap((s, i) => s.op === "bo-create" ? [i] : [])
    const allocs = steps.filter((s) => s.op === "mmap" && s.prot !== "none")
    assert.isAbove(creates.length, 0)
    assert.approximately(creates.length, allocs.filter((s) => String(s.as).startsWith("alloc")).length, 1, "every other allocation")
    for (const i of creates) {
      const res = steps[i - 1]!
      assert.deepInclude(res, { op: "mmap", prot: "none", length: (steps[i]!.length as number) + 0x200000 })
      const base = Math.ceil((res.addr as number) / 0x200000) * 0x200000 - (res.addr as number)
      assert.deepStrictEqual(ops(steps.slice(i, i + 3)), ["bo-create", "bo-mmap", "bo-bind"])
      assert.strictEqual(steps[i + 1]!.offset ?? 0, base)
      const checks = steps.filter((s) => s.op === "expect-dword" && s.buf === res.as)
      assert.isAbove(checks.length, 0)
      const free = steps.findIndex((s) => s.op === "munmap" && s.buf === res.as)
      assert.deepInclude(steps[free + 1]!, { op: "bo-destroy", bo: steps[i]!.as })
    }
  })
})

type Proc = { readonly name: string; readonly vms?: ReadonlyArray<string>; readonly threads?: ReadonlyArray<{ readonly vm?: string; readonly steps: ReadonlyArray<Record<string, unknown>> }>; readonly steps?: ReadonlyArray<Record<string, unknown>> }
const processesOf = (name: string): ReadonlyArray<Proc> => {
  const f = scenarioOf(name).file
  assert.isDefined(f.processes, `${name} uses the processes form`)
  return f.processes as ReadonlyArray<Proc>
}
const ops = (steps: ReadonlyArray<Record<string, unknown>>) => steps.map((s) => s.op)

describe("#17 part 5: the worlds switched on, step by step against IGT", () => {
  it("#17 part 5 once-malloc-fork-read (FORK_READ): after the wait, igt_fork: the child reads data[0].data, the parent reads it too, then igt_waitchildren", () => {
    const [main, child, ...rest] = processesOf("once-malloc-fork-read")
    assert.strictEqual(rest.length, 0)
    const steps = main!.threads![0]!.steps
    const exec = steps.find((s) => s.op === "gpu-exec")!
    assert.strictEqual(exec.check, false, "the check moves after the fork")
    const i = steps.findIndex((s) => s.op === "fork")
    assert.deepStrictEqual(ops(steps.slice(i, i + 3)), ["fork", "expect-dword", "wait"])
    assert.strictEqual(steps[i]!.as, child!.name)
    assert.deepStrictEqual(child!.steps, [steps[i + 1]!], "the child's igt_assert_eq(data[idx].data, READ_VALUE)")
    assert.deepStrictEqual(steps[i + 1], { op: "expect-dword", buf: "data0", offset: EXEC_DATA.data, value: memsetDword(EXEC_DATA.expected) })
    const after = processesOf("once-malloc-fork-read-after")[0]!.threads![0]!.steps
    const j = after.findIndex((s) => s.op === "fork")
    assert.deepStrictEqual(ops(after.slice(j, j + 3)), ["fork", "wait", "expect-dword"], "FORK_READ_AFTER: the parent reads after igt_waitchildren")
  })

  it("#17 part 5 threads-many-malloc: threads() without a shared VM: each thread's test_exec runs in its own VM", () => {
    const f = scenarioOf("threads-many-malloc").file
    assert.deepStrictEqual(f.vms, ["vm0"])
    assert.strictEqual(f.threads![0]!.vm, "vm0")
    assert.isUndefined(scenarioOf("threads-shared-vm-many-malloc").file.vms, "shared_vm: the one VM")
    const shared = scenarioOf("threads-shared-vm-many-mmap").file.threads![0]!.steps
    assert.deepStrictEqual(shared.at(-1), { op: "vm-unbind" }, "shared_vm with MMAP: unbind_system_allocator() must succeed after the joins")
  })

  it("#17 part 5 process-many-malloc and processes-evict-malloc: igt_fork one child per engine, its own VM; the parent waits", () => {
    const [main, child] = processesOf("process-many-malloc")
    assert.deepStrictEqual(main!.threads![0]!.steps, [{ op: "fork", as: child!.name }, { op: "wait", process: child!.name }])
    assert.strictEqual(child!.steps!.filter((s) => s.op === "gpu-exec").length, 128)
    const [emain, echild] = processesOf("processes-evict-malloc")
    assert.deepStrictEqual(ops(emain!.threads![0]!.steps), ["fork", "wait"])
    // many_allocs(visible VRAM / 1 engine, 8M, 1M): (9 * (256M / 8M)) / 8 = 36 allocations
    assert.strictEqual(echild!.steps!.filter((s) => s.op === "mmap" && String(s.as).startsWith("alloc")).length, 36)
  })

  it("#17 part 5 fault-process-benchmark (CPU_FAULT_PROCESS): 8 forked children, each checks every 8th batch after the go barrier; the parent waits for all", () => {
    const [main, ...children] = processesOf("fault-process-benchmark")
    assert.strictEqual(children.length, 8)
    const steps = main!.threads![0]!.steps
    assert.deepStrictEqual(ops(steps.slice(-18)), [...Array(8).fill("fork"), "barrier", ...Array(8).fill("wait"), "munmap"])
    assert.strictEqual(children[0]!.steps![0]!.op, "barrier")
    assert.strictEqual(children[3]!.steps![1]!.offset, 3 * 0x1000 + BATCH_DATA.data, "child 3 starts at ptr + stride * 3")
    assert.strictEqual(children.reduce((n, c) => n + c.steps!.filter((s) => s.op === "expect-dword").length, 0), 16384)
  })

  it("#17 part 5 once-malloc-bo-unmap (BO_UNMAP) and once-malloc-busy (BUSY): the BO bound and the mirror rebound over it; unbind_system_allocator() is EBUSY", () => {
    const steps = stepsOf("once-malloc-bo-unmap")
    const i = steps.findIndex((s) => s.op === "bo-create")
    assert.deepStrictEqual(steps.slice(i, i + 5), [
      { op: "bo-create", as: "bo1", length: K64 },
      { op: "bo-bind", bo: "bo1", buf: "data0" },
      { op: "vm-bind", buf: "data0", length: K64 },
      { op: "cpu-write", buf: "data0", offset: EXEC_DATA.vmSync, length: 8, pattern: 0 },
      { op: "bo-destroy", bo: "bo1" }
    ])
    assert.isBelow(i, steps.findIndex((s) => s.op === "mmap" && String(s.as).startsWith("ufence")), "before the exec_ufence")
    const busy = stepsOf("once-malloc-busy")
    const j = busy.findIndex((s) => s.op === "expect-error")
    assert.deepStrictEqual(busy[j], { op: "expect-error", step: { op: "vm-unbind" }, tag: "Busy" })
    assert.deepStrictEqual(busy[j + 1], { op: "munmap", buf: "ufence1" }, "at cleanup, before the exec_ufence goes")
  })

  it("#17 part 5 madvise-preffered-loc-atomic-vram, madvise-split-vma, pat-index multi-vma: xe_vm_parse_execute_madvise step for step", () => {
    const vram = stepsOf("madvise-preffered-loc-atomic-vram")
    assert.deepStrictEqual(vram.filter((s) => s.op === "madvise"), [
      { op: "madvise", buf: "data0", length: K64, preferredLoc: "system", migrationPolicy: "all-pages" },
      { op: "madvise", buf: "data0", length: K64, atomic: "device" }
    ])
    assert.isTrue(vram.filter((s) => s.op === "gpu-exec").every((s) => s.atomic === true), "ATOMIC_BATCH: MI_ATOMIC_INC")
    assert.deepStrictEqual(ops(stepsOf("madvise-split-vma")).filter((o) => String(o).startsWith("bo-") || o === "vm-bind" || o === "madvise"), ["bo-create", "bo-bind", "vm-bind", "bo-destroy", "madvise"])
    const pat = stepsOf("pat-index-madvise-pat-idx-wt-multi-vma")
    const M4 = 0x400000
    assert.deepStrictEqual(pat.filter((s) => s.op === "madvise").map((s) => [s.buf, s.offset ?? 0, s.length, s.atomic ?? s.pat]), [
      // MADVISE_MULTI_VMA's own block first (atomic device, PAT wb = 2), then MADVISE_PAT_INDEX's (wt = 15)
      ["data0", M4 / 2, M4 / 2, "device"], ["data0", M4 / 2, M4 / 2, 2], ["past1", 0, M4, "device"], ["data0", 0, M4, 2],
      ["past1", 0, M4 / 2, 15], ["data0", 0, M4, 15], ["data0", M4 / 2, M4 / 4, 15]
    ])
    assert.deepStrictEqual(pat.find((s) => s.op === "expect-attrs")!.ranges, [
      { offset: 0, length: M4 / 2, pat: 15 }, { offset: M4 / 2, length: M4 / 4, pat: 15 }, { offset: (3 * M4) / 4, length: M4 / 4, pat: 15 }
    ])
  })
})

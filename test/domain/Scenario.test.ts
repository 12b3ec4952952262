import { assert, describe, it } from "@effect/vitest"
import { Arbitrary, Effect, Exit, Schema } from "effect"
import * as S from "../../src/domain/Scenario.ts"
import * as R from "../../src/domain/ScenarioResult.ts"

const KiB = 1024
const MiB = 1024 * KiB

/** Decodes and returns the scenario, failing the test with the error lines. */
const ok = (json: unknown): S.Scenario => {
  const exit = S.decodeScenario(json, "ok.json")
  if (Exit.isSuccess(exit)) return exit.value
  const reason = exit.cause.reasons[0]
  assert.fail(reason?._tag === "Fail" ? reason.error.message : `unexpected cause ${String(exit.cause)}`)
}

/** Decodes, expects a `ScenarioDecodeError`, returns it. */
const bad = (json: unknown, file = "bad.json"): S.ScenarioDecodeError => {
  const exit = S.decodeScenario(json, file)
  assert.isTrue(Exit.isFailure(exit), `expected a decode failure for ${JSON.stringify(json)}`)
  if (Exit.isSuccess(exit)) throw new Error("unreachable")
  const reason = exit.cause.reasons[0]
  if (reason?._tag !== "Fail") return assert.fail(`expected a typed failure, got ${String(exit.cause)}`)
  assert.instanceOf(reason.error, S.ScenarioDecodeError)
  assert.strictEqual(reason.error._tag, "ScenarioDecodeError")
  return reason.error
}

/** Expects exactly one problem, at `path`, whose reason includes `fragment`; checks the one-line message. */
const rejects = (json: unknown, path: string, fragment: string): S.ScenarioDecodeError => {
  const e = bad(json)
  assert.deepStrictEqual(e.issues.map((i) => i.path), [path], e.message)
  assert.strictEqual(e.path, path)
  assert.include(e.reason, fragment)
  assert.strictEqual(e.message, `bad.json: ${path}: ${e.reason}`)
  assert.notInclude(e.message, "\n")
  return e
}

const one = (steps: ReadonlyArray<unknown>, extra: Record<string, unknown> = {}) => ({ name: "t", steps, ...extra })
const MMAP_A = { op: "mmap", as: "a", length: "2M" }

describe("Scenario: valid files", () => {
  it("decodes every op, in the one-thread form, with defaults and normalisation", () => {
    const s = ok({
      name: "every-op-1",
      description: "all ops",
      machine: { vramBytes: "256M", schedule: { seed: 7 }, inject: { hmmBusy: 1, dmaMapFail: "0x2", vramAllocFail: 0, nonBlockable: "3" } },
      svm: { chunkSizes: ["2M", "64K", "4K"], notifierSize: "512M", checkPagesThreshold: "64K", gpuvaStart: 0, gpuvaEnd: "0x800000000000" },
      steps: [
        { op: "mmap", as: "a", length: "2M", addr: "0x7f0000000000", fixed: true, align: "2M", kind: "anonymous", shared: false, prot: "rw" },
        { op: "mmap", as: "f", length: 8192, kind: "file", shared: true, prot: "r" },
        { op: "mmap", as: "h", length: "2M", kind: "hugetlb", prot: "rwx" },
        { op: "cpu-write", buf: "a", pattern: 7 },
        { op: "gpu-write", buf: "a", offset: "4K", length: 100, pattern: "0xff" },
        { op: "cpu-read", buf: "a", offset: 1, length: 3, expect: 8 },
        { op: "gpu-read", buf: "a", expect: "zero" },
        { op: "gpu-atomic-inc", buf: "a", offset: "0x1000" },
        { op: "gpu-fault", buf: "a", offset: 0, write: true },
        { op: "prefetch", buf: "a", to: "vram" },
        { op: "prefetch", buf: "a", offset: "1M", length: "1M", to: "system" },
        { op: "evict-all" },
        { op: "mprotect", buf: "a", offset: "1M", length: "4K", prot: "none" },
        { op: "madvise-dontneed", buf: "a", length: "64K" },
        { op: "mremap", buf: "a", newLength: "4M", as: "b", dontUnmap: true },
        { op: "munmap", buf: "b", offset: "2M", length: "2M" },
        { op: "expect-error", step: { op: "gpu-fault", buf: "b", offset: "3M" }, tag: "BadAddress" },
        { op: "expect-ranges", ranges: [["0x7f0000000000", "0x7f0000200000"], [0, 4096]] },
        { op: "barrier", name: "b1" },
        { op: "munmap", buf: "a" },
        { op: "expect-metrics", faults: { min: 1 }, bytesToVram: { eq: "64K" }, invalidations: { unmap: { max: 3 } } },
        { op: "mmap", as: "l", length: "64K", locked: true },
        { op: "mlock", buf: "l", offset: "4K", length: "8K" },
        { op: "munlock", buf: "l" },
        { op: "gpu-exec", batch: { buf: "l" }, store: { buf: "l", offset: 152 }, value: 1, exec: false },
        { op: "expect-dword", buf: "l", offset: 152, value: 1 },
        { op: "madvise", buf: "l", offset: "4K", length: "8K", preferredLoc: "system", migrationPolicy: "all-pages", atomic: "cpu", pat: 3 },
        { op: "expect-attrs", buf: "l", length: "64K", ranges: [{ offset: 0, length: "64K", atomic: "undefined" }] },
        // kernel-semantics §11.17: the kernel page-move steps
        { op: "kernel-reclaim", buf: "l", offset: "4K", length: "4K" },
        { op: "kernel-compact", buf: "l" },
        { op: "kernel-collapse", buf: "l" },
        { op: "kernel-ksm-merge", buf: "l" },
        { op: "kernel-split-thp", buf: "l" },
        { op: "bo-create", as: "o", length: "64K" },
        { op: "mmap", as: "m", length: "64K" },
        { op: "bo-bind", bo: "o", buf: "m" },
        { op: "bo-unbind", bo: "o" },
        { op: "bo-mmap", bo: "o", buf: "m" },
        { op: "bo-destroy", bo: "o" },
        { op: "vm-unbind", buf: "m" },
        { op: "vm-bind" },
        { op: "fork", as: "c" },
        { op: "wait", process: "c" },
        { op: "make-exclusive", buf: "l", offset: "16K", length: "8K" },
        { op: "exit" }
      ]
    })
    assert.strictEqual(s.name, "every-op-1")
    assert.deepStrictEqual(s.policy, { migrate: "xe" })
    assert.strictEqual(s.threads.length, 1)
    const steps = s.threads[0]!.steps
    assert.deepStrictEqual(
      [...new Set(steps.map((x) => x.op))].sort(),
      [...S.STEP_OPS].sort(),
      "every op appears"
    )
    assert.deepStrictEqual(steps[0], {
      op: "mmap",
      as: "a",
      length: 2 * MiB,
      addr: 0x7f00_0000_0000,
      fixed: true,
      align: 2 * MiB,
      kind: "anonymous",
      shared: false,
      prot: "rw"
    })
    assert.deepStrictEqual(steps[4], { op: "gpu-write", buf: "a", offset: 4096, length: 100, pattern: 255 })
    assert.deepStrictEqual(steps[6], { op: "gpu-read", buf: "a", expect: "zero" })
    assert.deepStrictEqual(steps[16], { op: "expect-error", step: { op: "gpu-fault", buf: "b", offset: 3 * MiB }, tag: "BadAddress" })
    assert.deepStrictEqual(steps[17], { op: "expect-ranges", ranges: [[0x7f00_0000_0000, 0x7f00_0020_0000], [0, 4096]] })
    // §11.17 part 7: expect-metrics bounds decode like lengths
    assert.deepStrictEqual(steps[20], { op: "expect-metrics", faults: { min: 1 }, bytesToVram: { eq: 64 * KiB }, invalidations: { unmap: { max: 3 } } })
    // §11.17 part 4: mmap locked, mlock / munlock windows
    assert.deepStrictEqual(steps.slice(21, 24), [
      { op: "mmap", as: "l", length: 64 * KiB, locked: true },
      { op: "mlock", buf: "l", offset: 4 * KiB, length: 8 * KiB },
      { op: "munlock", buf: "l" }
    ])
    // Xe madvise attributes: sizes decode like lengths
    const madv = steps.findIndex((x) => x.op === "madvise")
    assert.deepStrictEqual(steps.slice(madv, madv + 2), [
      { op: "madvise", buf: "l", offset: 4 * KiB, length: 8 * KiB, preferredLoc: "system", migrationPolicy: "all-pages", atomic: "cpu", pat: 3 },
      { op: "expect-attrs", buf: "l", length: 64 * KiB, ranges: [{ offset: 0, length: 64 * KiB, atomic: "undefined" }] }
    ])
    // §11.17 part 5: make-exclusive windows decode like lengths
    assert.deepStrictEqual(steps.find((s) => s.op === "make-exclusive"), { op: "make-exclusive", buf: "l", offset: 16 * KiB, length: 8 * KiB })
    assert.deepStrictEqual(s.machine, {
      vramBytes: 256 * MiB,
      schedule: { seed: 7 },
      inject: { hmmBusy: 1, dmaMapFail: 2, vramAllocFail: 0, nonBlockable: 3 }
    })
    assert.deepStrictEqual(s.svm, {
      chunkSizes: [2 * MiB, 64 * KiB, 4 * KiB],
      notifierSize: 512 * MiB,
      checkPagesThreshold: 64 * KiB,
      gpuvaStart: 0,
      gpuvaEnd: 2 ** 47
    })
    assert.deepStrictEqual(S.stepPath(s, 0, 3), "steps[3]")
  })

  it("decodes the threads form, with cross-thread buffers and an explicit policy", () => {
    const s = ok({
      name: "two-threads",
      policy: { migrate: "always" },
      threads: [
        { steps: [{ op: "mmap", as: "shared", length: "64K" }, { op: "barrier", name: "ready" }, { op: "gpu-read", buf: "other", expect: 1 }] },
        { steps: [{ op: "barrier", name: "ready" }, { op: "cpu-write", buf: "shared", offset: "60K", length: "4K", pattern: 1 }, { op: "mmap", as: "other", length: 4096 }] }
      ]
    })
    assert.strictEqual(s.threads.length, 2)
    assert.deepStrictEqual(s.policy, { migrate: "always" })
    assert.deepStrictEqual(s.threads[1]!.steps[1], { op: "cpu-write", buf: "shared", offset: 60 * KiB, length: 4 * KiB, pattern: 1 })
    assert.strictEqual(S.stepPath(s, 1, 2), "threads[1].steps[2]")
  })

  it("accepts numbers in every notation", () => {
    const lengths = [8192, "8192", "0x2000", "0X2000", "8K", "2M", "1G", "1T", 4096]
    const s = ok(one(lengths.map((length, i) => ({ op: "mmap", as: `b${i}`, length }))))
    assert.deepStrictEqual(
      s.threads[0]!.steps.map((x) => (x.op === "mmap" ? x.length : -1)),
      [8192, 8192, 8192, 8192, 8192, 2 * MiB, 1024 * MiB, 2 ** 40, 4096]
    )
  })

  it("keeps an empty scenario, and an mremap without `as` resizes the buffer under its name", () => {
    assert.deepStrictEqual(ok(one([])).threads, [{ steps: [] }])
    ok(one([{ op: "mmap", as: "a", length: "4K" }, { op: "mremap", buf: "a", newLength: "8K" }, { op: "cpu-read", buf: "a", offset: "4K", expect: 0 }]))
  })

  it("lets the inner step of expect-error reach past the buffer, but not name an unknown one", () => {
    ok(one([MMAP_A, { op: "expect-error", step: { op: "cpu-read", buf: "a", offset: "4M", expect: 0 }, tag: "BadAddress" }]))
    rejects(one([MMAP_A, { op: "expect-error", step: { op: "cpu-read", buf: "x", expect: 0 }, tag: "BadAddress" }]), "steps[1].step.buf", `unknown buffer "x"`)
  })

  it.effect("the Effect variant and the text variant agree with decodeScenario", () =>
    Effect.gen(function*() {
      const s = yield* S.decodeScenarioEffect(one([MMAP_A]))
      assert.strictEqual(s.threads[0]!.steps.length, 1)
      const e = yield* Effect.flip(S.decodeScenarioEffect(one([{ op: "foo" }]), "x.json"))
      assert.strictEqual(e.message, `x.json: steps[0].op: ${e.reason}`)
      const text = S.decodeScenarioText(JSON.stringify(one([MMAP_A])))
      assert.isTrue(Exit.isSuccess(text))
      const broken = S.decodeScenarioText("{ \"name\": ", "broken.json")
      assert.isTrue(Exit.isFailure(broken))
      if (Exit.isFailure(broken)) {
        const r = broken.cause.reasons[0]
        assert.strictEqual(r?._tag, "Fail")
        if (r?._tag === "Fail") {
          assert.strictEqual(r.error.path, "<root>")
          assert.match(r.error.message, /^broken\.json: <root>: invalid JSON: /)
        }
      }
    }))
})

describe("Scenario: rejected files name the JSON path", () => {
  it("invalid JSON shape: the root is not an object", () => {
    rejects([], "<root>", "expected object")
    rejects("scenario", "<root>", "expected object")
  })
  it("invalid JSON shape: wrong types", () => {
    rejects({ name: 3, steps: [] }, "name", "expected string")
    rejects(one("mmap" as never), "steps", "expected array")
    rejects(one({ a: "x".repeat(500) } as never), "steps", "expected array, got an object")
    rejects(one([{ op: "mmap", as: { x: 1 }, length: "4K" }]), "steps[0].as", "expected string, got an object")
    rejects(one([MMAP_A, { op: "cpu-write", buf: "a", pattern: 1 }], { machine: { inject: { hmmBusy: true } } }), "machine.inject.hmmBusy", "expected a non-negative integer")
    rejects(one([{ op: "mmap", as: "a", length: "4K", fixed: "yes" }]), "steps[0].fixed", "expected boolean")
    rejects(one([{ op: "mmap", as: "a", length: "4K", kind: "anon" }]), "steps[0].kind", `"anonymous" | "file" | "hugetlb"`)
    rejects(one([], { policy: { migrate: "sometimes" } }), "policy.migrate", `"never" | "always" | "xe"`)
    rejects(one([{ op: "expect-ranges", ranges: [[0]] }]), "steps[0].ranges[0][1]", "missing")
    rejects(one([{ op: "expect-ranges", ranges: [[8192, 4096]] }]), "steps[0].ranges[0][1]", "above the start")
  })
  it("a missing required key", () => {
    rejects({ steps: [] }, "name", "missing")
    rejects(one([{ op: "mmap", as: "a" }]), "steps[0].length", "missing")
    rejects(one([MMAP_A, { op: "cpu-read", buf: "a" }]), "steps[1].expect", "missing")
  })
  it("unknown op: names the op and the path", () => {
    const e = rejects(one([MMAP_A, { op: "cpu-write", buf: "a", pattern: 1 }, { op: "foo", buf: "a" }]), "steps[2].op", `unknown op "foo"`)
    assert.strictEqual(e.message.split(": ")[1], "steps[2].op")
    rejects(one([{ as: "a" }]), "steps[0].op", "missing")
    rejects(one([{ op: 5 }]), "steps[0].op", "expected an op name, got 5")
    rejects(one([7]), "steps[0]", "expected a step object")
    rejects(one([MMAP_A, { op: "expect-error", step: { op: "expect-error", step: { op: "exit" }, tag: "X" }, tag: "Y" }]), "steps[1].step.op", "cannot be nested")
    rejects({ name: "t", threads: [{ steps: [] }, { steps: [{ op: "bogus" }] }] }, "threads[1].steps[0].op", `unknown op "bogus"`)
  })
  it("unknown buffer name: the first undefined reference", () => {
    const e = rejects(one([MMAP_A, { op: "cpu-write", buf: "b", pattern: 1 }, { op: "cpu-read", buf: "b", expect: 1 }]), "steps[1].buf", `unknown buffer "b"`)
    assert.include(e.message, "bad.json: steps[1].buf: unknown buffer")
    rejects(one([{ op: "cpu-write", buf: "a", pattern: 1 }, MMAP_A]), "steps[0].buf", `buffer "a" is used before the step that creates it`)
    rejects({ name: "t", threads: [{ steps: [MMAP_A] }, { steps: [{ op: "gpu-fault", buf: "nope" }] }] }, "threads[1].steps[0].buf", `unknown buffer "nope"`)
    // an `as` inside expect-error creates nothing
    rejects(one([{ op: "expect-error", step: { op: "mmap", as: "z", length: "4K", prot: "none" }, tag: "BadAddress" }, { op: "munmap", buf: "z" }]), "steps[1].buf", `unknown buffer "z"`)
  })
  it("negative length", () => {
    rejects(one([{ op: "mmap", as: "a", length: -4096 }]), "steps[0].length", "expected a positive integer, got -4096")
    rejects(one([MMAP_A, { op: "cpu-write", buf: "a", length: "-4K", pattern: 1 }]), "steps[1].length", "expected a positive integer")
    rejects(one([MMAP_A, { op: "munmap", buf: "a", length: 0 }]), "steps[1].length", "expected a positive integer, got 0")
    rejects(one([MMAP_A, { op: "cpu-read", buf: "a", offset: -1, expect: 0 }]), "steps[1].offset", "expected a non-negative integer, got -1")
  })
  it("unaligned length (mmap/munmap/mprotect/madvise/mremap); reads and writes may be any length", () => {
    rejects(one([{ op: "mmap", as: "a", length: 6000 }]), "steps[0].length", "multiple of 4096")
    rejects(one([MMAP_A, { op: "munmap", buf: "a", length: "1K" }]), "steps[1].length", "multiple of 4096")
    rejects(one([MMAP_A, { op: "mprotect", buf: "a", length: 100, prot: "r" }]), "steps[1].length", "multiple of 4096")
    rejects(one([MMAP_A, { op: "madvise-dontneed", buf: "a", length: "0x1001" }]), "steps[1].length", "multiple of 4096")
    rejects(one([MMAP_A, { op: "mremap", buf: "a", newLength: 5000 }]), "steps[1].newLength", "multiple of 4096")
    ok(one([MMAP_A, { op: "cpu-write", buf: "a", offset: 3, length: 5, pattern: 1 }, { op: "gpu-read", buf: "a", offset: 3, length: 5, expect: 4 }]))
  })
  it("offset past the buffer", () => {
    rejects(one([{ op: "mmap", as: "a", length: "8K" }, { op: "cpu-write", buf: "a", offset: "8K", pattern: 1 }]), "steps[1].offset", `offset past the buffer "a"`)
    rejects(one([{ op: "mmap", as: "a", length: "8K" }, { op: "gpu-read", buf: "a", offset: "4K", length: "8K", expect: 0 }]), "steps[1].length", `past the buffer "a"`)
    rejects(one([{ op: "mmap", as: "a", length: "8K" }, { op: "gpu-atomic-inc", buf: "a", offset: 8192 }]), "steps[1].offset", "offset past the buffer")
    // the length after an mremap counts
    rejects(one([{ op: "mmap", as: "a", length: "8K" }, { op: "mremap", buf: "a", newLength: "4K", as: "b" }, { op: "gpu-fault", buf: "b", offset: "4K" }]), "steps[2].offset", `offset past the buffer "b"`)
    // a buffer from another thread with one known length
    rejects({ name: "t", threads: [{ steps: [{ op: "mmap", as: "a", length: "4K" }] }, { steps: [{ op: "prefetch", buf: "a", offset: "4K", to: "vram" }] }] }, "threads[1].steps[0].offset", "offset past the buffer")
  })
  it("a hugetlb length that is not a multiple of 2 MiB, and an unaligned atomic offset", () => {
    rejects(one([{ op: "mmap", as: "h", length: "1M", kind: "hugetlb" }]), "steps[0].length", "multiple of 2 MiB")
    ok(one([{ op: "mmap", as: "h", length: "4M", kind: "hugetlb" }]))
    rejects(one([MMAP_A, { op: "gpu-atomic-inc", buf: "a", offset: 6 }]), "steps[1].offset", "4-byte aligned")
    ok(one([MMAP_A, { op: "gpu-atomic-inc", buf: "a", offset: 8 }]))
  })
  it("two threads creating buffers of the same name (names are shared by all threads)", () => {
    const mk = (p: number) => ({ steps: [{ op: "mmap", as: "a", length: "64K" }, { op: "cpu-write", buf: "a", pattern: p }] })
    rejects({ name: "t", threads: [mk(1), mk(2)] }, "threads[1].steps[0].as", `buffer "a" is also created by threads[0]`)
    // one thread may re-create its own buffer (free and reuse), and others may use it
    ok({ name: "t", threads: [{ steps: [MMAP_A, { op: "munmap", buf: "a" }, MMAP_A] }, { steps: [{ op: "barrier", name: "x" }] }] })
  })
  it("bad name", () => {
    rejects(one([], { name: "Bad Name" }), "name", "[a-z0-9-]+")
    rejects(one([], { name: "" }), "name", "[a-z0-9-]+")
    rejects(one([], { name: "under_score" }), "name", "[a-z0-9-]+")
  })
  it("both steps and threads, or neither", () => {
    rejects({ name: "t", steps: [], threads: [{ steps: [] }] }, "threads", `either "steps"`)
    rejects({ name: "t" }, "steps", `"steps" (one thread) or "threads"`)
    rejects({ name: "t", threads: [] }, "threads", "at least one thread")
  })
  it("unknown key, at any depth", () => {
    rejects(one([], { nmae: "x" }), "nmae", "unknown key")
    rejects(one([MMAP_A, { op: "cpu-write", buf: "a", patern: 1, pattern: 1 }]), "steps[1].patern", "unknown key")
    rejects(one([], { machine: { inject: { hmmbusy: 1 } } }), "machine.inject.hmmbusy", "unknown key")
    rejects(one([], { svm: { chunksizes: [4096] } }), "svm.chunksizes", "unknown key")
    rejects({ name: "t", threads: [{ steps: [], name: "x" }] }, "threads[0].name", "unknown key")
    rejects(one([{ op: "evict-all", all: true }]), "steps[0].all", "unknown key")
  })
  it(`non-integer "2.5K" and other bad numbers`, () => {
    rejects(one([{ op: "mmap", as: "a", length: "2.5K" }]), "steps[0].length", `expected a positive integer, got "2.5K"`)
    rejects(one([{ op: "mmap", as: "a", length: 4096.5 }]), "steps[0].length", "expected a positive integer, got 4096.5")
    rejects(one([{ op: "mmap", as: "a", length: "4k" }]), "steps[0].length", `"64K"`)
    rejects(one([{ op: "mmap", as: "a", length: "0x20000000000000" }]), "steps[0].length", "below 2^53")
    rejects(one([{ op: "mmap", as: "a", length: 2 ** 53 }]), "steps[0].length", "below 2^53")
    rejects(one([{ op: "mmap", as: "a", length: null }]), "steps[0].length", "expected a positive integer")
    rejects(one([MMAP_A, { op: "cpu-write", buf: "a", pattern: 256 }]), "steps[1].pattern", "0 to 255")
    rejects(one([MMAP_A, { op: "cpu-read", buf: "a", expect: "zeros" }]), "steps[1].expect", `or "zero"`)
    rejects(one([{ op: "mmap", as: "a", length: "4K", align: 3 * 4096 }]), "steps[0].align", "power of two")
  })
  it("svm settings that break the GpuSvmConfig rules", () => {
    rejects(one([], { svm: { chunkSizes: ["64K", "2M", "4K"] } }), "svm.chunkSizes", "descending")
    rejects(one([], { svm: { gpuvaStart: "1M", gpuvaEnd: "1M" } }), "svm.gpuvaEnd", "above gpuvaStart")
    rejects(one([], { svm: { gpuvaStart: "3K" } }), "svm.gpuvaStart", "aligned")
    rejects(one([], { svm: { kernel: "6.1" } }), "svm.kernel", "6.17")
  })
  it("§11.14 svm notifierSize below the (default) largest chunk is accepted: that chunk is never chosen", () => {
    assert.isTrue(Exit.isSuccess(S.decodeScenario(one([], { svm: { notifierSize: "1M" } }), "ok.json")))
  })
  it("reports every problem, one line each, in file order", () => {
    const e = bad({ name: "X", steps: [{ op: "mmap", as: "a", length: -1 }, { op: "foo" }] }, "many.json")
    assert.deepStrictEqual(e.issues.map((i) => i.path), ["name", "steps[0].length", "steps[1].op"])
    assert.deepStrictEqual(e.message.split("\n").map((l) => l.split(": ").slice(0, 2).join(": ")), [
      "many.json: name",
      "many.json: steps[0].length",
      "many.json: steps[1].op"
    ])
    assert.strictEqual(e.path, "name")
    // without a file, lines are PATH: MESSAGE
    const nofile = S.decodeScenario({ name: "X", steps: [] })
    assert.isTrue(Exit.isFailure(nofile))
    if (Exit.isFailure(nofile)) {
      const r = nofile.cause.reasons[0]
      if (r?._tag === "Fail") assert.match(r.error.message, /^name: expected a name/)
    }
  })
})

describe("Scenario: numbers", () => {
  const Safe = Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER }))
  const decodeNumber = (u: unknown): number | undefined => {
    const exit = Schema.decodeUnknownExit(S.NonNegativeIntLike)(u)
    return Exit.isSuccess(exit) ? exit.value : undefined
  }

  it.prop("every safe integer round-trips through \"0x…\"", [Safe], ([n]) => {
    assert.strictEqual(decodeNumber(S.formatHex(n)), n)
    assert.strictEqual(decodeNumber(S.formatHex(n).toUpperCase().replace("0X", "0x")), n)
    assert.strictEqual(decodeNumber(String(n)), n)
    assert.strictEqual(decodeNumber(n), n)
  })

  it.prop(
    "K and M multiples round-trip through \"NK\" / \"NM\" and formatSize",
    {
      k: Arbitrary.schema(Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 2 ** 43 - 1 }))),
      m: Arbitrary.schema(Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 2 ** 33 - 1 })))
    },
    ({ k, m }) => {
      assert.strictEqual(decodeNumber(`${k}K`), k * KiB)
      assert.strictEqual(decodeNumber(`${m}M`), m * MiB)
      assert.strictEqual(decodeNumber(S.formatSize(k * KiB)), k * KiB)
      assert.strictEqual(decodeNumber(S.formatSize(m * MiB)), m * MiB)
    }
  )

  it("formatSize picks the largest exact unit", () => {
    assert.strictEqual(S.formatSize(0), "0")
    assert.strictEqual(S.formatSize(4095), "4095")
    assert.strictEqual(S.formatSize(64 * KiB), "64K")
    assert.strictEqual(S.formatSize(2 * MiB), "2M")
    assert.strictEqual(S.formatSize(3 * 1024 * MiB), "3G")
    assert.strictEqual(S.formatSize(1536 * KiB), "1536K")
  })

  it("parseIntLike names the problem", () => {
    const fail = (u: number | string) => {
      const r = S.parseIntLike(u)
      return r._tag === "Failure" ? r.failure : "ok"
    }
    assert.strictEqual(fail("2.5K"), "not-an-integer")
    assert.strictEqual(fail(1.5), "not-an-integer")
    assert.strictEqual(fail("-1"), "negative")
    assert.strictEqual(fail(-1), "negative")
    assert.strictEqual(fail("8T0"), "not-a-number")
    assert.strictEqual(fail(""), "not-a-number")
    assert.strictEqual(fail(Number.NaN), "not-a-number")
    assert.strictEqual(fail("9007199254740992"), "too-large")
    assert.strictEqual(fail("8192T"), "too-large")
    assert.strictEqual(fail("8191T"), "ok")
    assert.strictEqual(fail("0x1fffffffffffff"), "ok")
    assert.strictEqual(fail(Number.MAX_SAFE_INTEGER), "ok")
    assert.strictEqual(fail("0x20000000000000"), "too-large")
    assert.strictEqual(fail(-0), "ok")
  })
})

describe("Scenario: patterns", () => {
  it("patternByte and expectedBytes", () => {
    assert.strictEqual(S.patternByte(0, 0), 0)
    assert.strictEqual(S.patternByte(250, 10), 4)
    assert.deepStrictEqual([...S.expectedBytes(254, 4)], [254, 255, 0, 1])
    assert.deepStrictEqual([...S.expectedBytes(1, 3, 4096)], [1, 2, 3])
    assert.deepStrictEqual([...S.expectedBytes(0, 2, 255)], [255, 0])
    assert.deepStrictEqual([...S.expectedBytes("zero", 3, 7)], [0, 0, 0])
  })
})

describe("ScenarioResult", () => {
  const SAMPLE = {
    scenario: "approx-partial-munmap-cpu-fault",
    ok: true,
    violations: [],
    failures: [],
    metrics: {
      faults: 3,
      faultRetries: { EAGAIN: 0, EBUSY: 0, EOPNOTSUPP: 0, EFAULT: 0, EPERM: 0 },
      rangesCreated: 2,
      rangesRemoved: 2,
      notifiersCreated: 1,
      notifiersRemoved: 1,
      invalidations: { unmap: 1, clear: 0, migrate: 2 },
      bytesToVram: 2097152,
      bytesToRam: 1048576,
      evictions: 0,
      gcRuns: 1,
      dmaMappingsLive: 0,
      deviceBytesLive: 0
    },
    ranges: [{ start: 0, end: 0, flags: {} }],
    notifiers: [{ start: 0, end: 0 }],
    durationMs: 1.9
  }
  const paths = (u: unknown): ReadonlyArray<string> => {
    const exit = R.decodeScenarioResult(u)
    if (Exit.isSuccess(exit)) return []
    const r = exit.cause.reasons[0]
    return r?._tag === "Fail" ? S.describeIssue(r.error.issue).map((i) => i.path) : ["<defect>"]
  }

  it("the sample of scenarios.md decodes", () => {
    const exit = R.decodeScenarioResult(SAMPLE)
    assert.isTrue(Exit.isSuccess(exit))
    if (Exit.isSuccess(exit)) assert.strictEqual(exit.value.metrics.invalidations.migrate, 2)
  })
  it("other invalidation events, range flags, violations and failures decode", () => {
    const r = {
      ...SAMPLE,
      ok: false,
      violations: [{ invariant: "no-leaks", detail: "1 notifier left" }],
      failures: [{ step: "threads[1].steps[3]", detail: "read 0x07, expected 0x08" }, { step: "<scenario>", detail: "x" }],
      metrics: { ...SAMPLE.metrics, invalidations: { unmap: 1, clear: 0, migrate: 2, "protection-vma": 4 } },
      ranges: [{ start: 4096, end: 8192, flags: { unmapped: true, hasDmaMapping: false } }]
    }
    assert.deepStrictEqual(paths(r), [])
  })
  it("a missing metric key fails with its path", () => {
    const { gcRuns: _, ...metrics } = SAMPLE.metrics
    assert.deepStrictEqual(paths({ ...SAMPLE, metrics }), ["metrics.gcRuns"])
    const { EPERM: __, ...faultRetries } = SAMPLE.metrics.faultRetries
    assert.deepStrictEqual(paths({ ...SAMPLE, metrics: { ...SAMPLE.metrics, faultRetries } }), ["metrics.faultRetries.EPERM"])
    const { migrate: ___, ...invalidations } = SAMPLE.metrics.invalidations
    assert.deepStrictEqual(paths({ ...SAMPLE, metrics: { ...SAMPLE.metrics, invalidations } }), ["metrics.invalidations.migrate"])
  })
  it("rejects unknown keys, negative counts, and an ok that contradicts the lists", () => {
    assert.deepStrictEqual(paths({ ...SAMPLE, extra: 1 }), ["extra"])
    assert.deepStrictEqual(paths({ ...SAMPLE, metrics: { ...SAMPLE.metrics, faults: -1 } }), ["metrics.faults"])
    assert.deepStrictEqual(paths({ ...SAMPLE, failures: [{ step: "steps[0]", detail: "x" }] }), ["ok"])
  })
})

describe("Scenario: hostile files are rejected before anything runs (#18)", () => {
  it("§11.16 expect-error with an unknown tag is rejected at steps[N].tag, listing the known tags", () => {
    const e = rejects(one([MMAP_A, { op: "expect-error", step: { op: "gpu-read", buf: "a", expect: 1 }, tag: "GpuFault" }]), "steps[1].tag", `unknown error tag "GpuFault"`)
    for (const t of S.EXPECTABLE_ERROR_TAGS) assert.include(e.reason, t)
    // every known tag is accepted
    for (const tag of S.EXPECTABLE_ERROR_TAGS) ok(one([MMAP_A, { op: "expect-error", step: { op: "gpu-read", buf: "a", expect: 1 }, tag }]))
    rejects({ name: "t", threads: [{ steps: [MMAP_A] }, { steps: [{ op: "expect-error", step: { op: "exit" }, tag: "EFAULT" }] }] }, "threads[1].steps[0].tag", `unknown error tag "EFAULT"`)
  })
  it("§11.16 EXPECTABLE_ERROR_TAGS is exactly the _tag of every error class of domain/Errors.ts and of the runner's StepError", async () => {
    const classes = { ...(await import("../../src/domain/Errors.ts")), ...(await import("../../src/programs/scenario/StepError.ts")) }
    type ErrorClass = new(a: object) => { readonly _tag: string }
    const tags = (Object.values(classes) as ReadonlyArray<unknown>)
      .filter((v): v is ErrorClass => typeof v === "function" && v.prototype instanceof Error)
      .map((C) => new C({ reason: "", addr: 0, field: "", buf: "", barrier: "", retries: 0 })._tag)
    assert.isAtLeast(tags.length, 14)
    assert.deepStrictEqual([...S.EXPECTABLE_ERROR_TAGS].sort(), [...tags].sort())
  })
  it("§3 a second mmap with the same `as` in one thread names both steps", () => {
    const e = rejects(one([MMAP_A, { op: "cpu-write", buf: "a", pattern: 1 }, MMAP_A]), "steps[2].as", `buffer "a" is still live`)
    assert.include(e.reason, "steps[0] (mmap)")
    assert.include(e.reason, "steps[2] (mmap)")
    rejects({ name: "t", threads: [{ steps: [MMAP_A, { op: "barrier", name: "x" }, MMAP_A] }, { steps: [{ op: "barrier", name: "x" }] }] }, "threads[0].steps[2].as", "threads[0].steps[0] (mmap)")
    // a name freed by a whole-buffer munmap, or moved away by mremap, may be used again
    ok(one([MMAP_A, { op: "munmap", buf: "a" }, MMAP_A]))
    ok(one([MMAP_A, { op: "mremap", buf: "a", newLength: "8K", as: "b" }, MMAP_A]))
    // a partial munmap keeps the buffer live
    rejects(one([{ op: "mmap", as: "a", length: "8K" }, { op: "munmap", buf: "a", length: "4K" }, MMAP_A]), "steps[2].as", "steps[0] (mmap)")
  })
  it("§3 an mremap whose `as` names a live buffer names both steps", () => {
    const MMAP_B = { op: "mmap", as: "b", length: "4K" }
    const e = rejects(one([MMAP_A, MMAP_B, { op: "mremap", buf: "a", newLength: "8K", as: "b" }]), "steps[2].as", `buffer "b" is still live`)
    assert.include(e.reason, "steps[1] (mmap)")
    assert.include(e.reason, "steps[2] (mremap)")
    // dontUnmap keeps the old name live
    rejects(one([MMAP_A, { op: "mremap", buf: "a", newLength: "8K", as: "b", dontUnmap: true }, MMAP_A]), "steps[2].as", "steps[0] (mmap)")
    // mremap under its own name is a resize, not a second buffer
    ok(one([MMAP_A, { op: "mremap", buf: "a", newLength: "8K", as: "a" }]))
  })
  it("§9 machine.vramBytes must be a page multiple (0 = no device memory)", () => {
    rejects(one([], { machine: { vramBytes: 1000 } }), "machine.vramBytes", "multiple of 4096")
    rejects(one([], { machine: { vramBytes: "0x1001" } }), "machine.vramBytes", "multiple of 4096")
    ok(one([], { machine: { vramBytes: 0 } }))
    ok(one([], { machine: { vramBytes: "64K" } }))
  })
  it("§2 svm.notifierSize 2^60 (or 3, or 2^53 - 1) says it must be a power of two ≤ 2^52", () => {
    for (const n of [2 ** 60, "0x1000000000000000", 3, 2 ** 53 - 1, 2 ** 52 + 4096]) {
      const e = rejects(one([], { svm: { notifierSize: n } }), "svm.notifierSize", "power of two ≤ 2^52")
      assert.notInclude(e.reason, "below 2^53")
    }
    ok(one([], { svm: { notifierSize: 2 ** 52 } }))
  })
})

/**
 * kernel-semantics §11.16 through the command line (spawned): each
 * `kernel617-*` built-in fails (exit 1, the violation named) with
 * `--kernel 6.17` and passes with the default profile; `svm.kernel` in a
 * scenario file selects the profile and `--kernel` overrides it; a bad
 * `--kernel` is bad input (exit 2).
 */
import { assert, describe, it } from "@effect/vitest"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { gpusvm, SCENARIOS, show, tempDir } from "./support.ts"

/** Each 6.17 bug's scenario and the text its failure must name. */
const BUGS = [
  ["kernel617-unbounded-retry", "livelock"],
  ["kernel617-cve-2025-40336", "CVE-2025-40336"],
  ["kernel617-evict-mmref-leak", "mm-ref-leak"],
  ["kernel617-readonly-bidirectional", "readonly-mapped-bidirectional"]
] as const

const NAMES = BUGS.map(([name]) => name)

/** One spawned run of all four per profile (spawns are the slow part), shared by the per-scenario tests. */
const once = <A>(f: () => Promise<A>) => {
  let p: Promise<A> | undefined
  return () => (p ??= f())
}
const legacyRun = once(() => gpusvm(["simulate", ...NAMES, "--kernel", "6.17", "--json"], 60_000))
const defaultRun = once(() => gpusvm(["simulate", ...NAMES, "--json"], 60_000))

interface Result {
  readonly scenario: string
  readonly ok: boolean
  readonly violations: ReadonlyArray<{ readonly invariant: string; readonly detail: string }>
}
const results = (stdout: string): ReadonlyArray<Result> => stdout.trim().split("\n").map((l) => JSON.parse(l) as Result)

describe.concurrent("§11.16 kernel profiles on the CLI (spawned)", { timeout: 60_000 }, () => {
  it("§11.16 the four kernel617-* built-ins exit 1 with --kernel 6.17 and 0 with the default profile", async () => {
    const [legacy, fixed] = await Promise.all([legacyRun(), defaultRun()])
    assert.strictEqual(legacy.status, 1, show(legacy))
    assert.strictEqual(fixed.status, 0, show(fixed))
  })

  for (const [name, named] of BUGS) {
    it(`§11.16 ${name}: with --kernel 6.17 it fails naming ${named}; with the default (7.0) it passes`, async () => {
      const [legacy, fixed] = await Promise.all([legacyRun(), defaultRun()])
      const bad = results(legacy.stdout).find((r) => r.scenario === name)
      assert.isDefined(bad, show(legacy))
      assert.isFalse(bad!.ok, show(legacy))
      assert.isTrue(bad!.violations.some((v) => v.invariant.includes(named) || v.detail.includes(named)), show(legacy))
      const good = results(fixed.stdout).find((r) => r.scenario === name)
      assert.isDefined(good, show(fixed))
      assert.isTrue(good!.ok, show(fixed))
    })
  }

  it("§11.16 svm.kernel in a scenario file selects 6.17; --kernel 7.0 overrides it", async () => {
    const tmp = tempDir()
    try {
      const raw = JSON.parse(readFileSync(join(SCENARIOS, "kernel617-cve-2025-40336.json"), "utf8"))
      const file = tmp.write("cve.json", { ...raw, svm: { ...raw.svm, kernel: "6.17" } })
      const legacy = await gpusvm(["simulate", file], 60_000)
      assert.strictEqual(legacy.status, 1, show(legacy))
      assert.include(legacy.stdout, "CVE-2025-40336", show(legacy))
      const fixed = await gpusvm(["simulate", file, "--kernel", "7.0"], 60_000)
      assert.strictEqual(fixed.status, 0, show(fixed))
      const bad = tmp.write("bad.json", { ...raw, svm: { ...raw.svm, kernel: "6.1" } })
      const rejected = await gpusvm(["simulate", bad], 60_000)
      assert.strictEqual(rejected.status, 2, show(rejected))
      assert.include(rejected.stderr, "svm.kernel", show(rejected))
    } finally {
      tmp.remove()
    }
  })

  it("§11.16 --kernel with anything but 6.17 or 7.0 is bad input (exit 2, one line)", async () => {
    const r = await gpusvm(["simulate", "kernel617-cve-2025-40336", "--kernel", "6.1"], 60_000)
    assert.strictEqual(r.status, 2, show(r))
    assert.include(r.stderr, "--kernel", show(r))
    assert.strictEqual(r.stdout, "", show(r))
  })
})

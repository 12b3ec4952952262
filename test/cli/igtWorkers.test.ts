/**
 * `--workers N` (issue #17 part 5): the IGT subtests run across worker
 * threads give the same output as in one thread. `gpusvm simulate 'igt:…'
 * --json` prints the same result objects in the same order with 1 and 2
 * workers (a glob with passing, vacuous and skipped subtests, and a built-in
 * scenario after them, which goes to a worker too), and `gpusvm igt report
 * --json` the same outcomes and totals; only the timings may differ.
 */
import { assert, describe, it } from "@effect/vitest"
import { Option } from "effect"
import { parseWorkers } from "../../src/cli/igt.ts"
import { gpusvm, show } from "./support.ts"

/** `once-malloc*`: 16 pass, 1 vacuous (multi-fault without a BO); `compute`: skipped (a compute kernel). */
const WORDS = ["igt:once-malloc*", "igt:compute", "approx-once-malloc"]

/** A JSON line without its timings (`durationMs` of a result, `ms` of an outcome, `wallMs` and `workers` of the totals). */
const untimed = (line: string): unknown => {
  const { durationMs: _d, ms: _m, wallMs: _w, workers: _k, ...rest } = JSON.parse(line) as Record<string, unknown>
  return rest
}

const lines = (stdout: string) => stdout.split("\n").filter((l) => l.length > 0)

describe.concurrent("--workers N: same output as one thread (#17 part 5)", () => {
  it("gpusvm simulate 'igt:…' --json: the same result objects in the same order with --workers 1 and 2", async () => {
    const [one, two] = await Promise.all([
      gpusvm(["simulate", ...WORDS, "--json", "--workers", "1"], 60_000),
      gpusvm(["simulate", ...WORDS, "--json", "--workers", "2"], 60_000)
    ])
    assert.strictEqual(one.status, 0, show(one))
    assert.strictEqual(two.status, 0, show(two))
    const a = lines(one.stdout)
    const b = lines(two.stdout)
    assert.strictEqual(a.length, 19, show(one))
    const names = a.map((l) => (JSON.parse(l) as { scenario: string }).scenario)
    assert.strictEqual(names[0], "igt-once-malloc")
    assert.strictEqual(names[17], "igt-compute")
    assert.strictEqual(names[18], "approx-once-malloc")
    assert.deepStrictEqual(b.map(untimed), a.map(untimed))
    const kinds = a.map((l) => JSON.parse(l) as { ok: boolean; skipped?: string; vacuous?: string })
    assert.strictEqual(kinds.filter((r) => r.vacuous !== undefined).length, 1)
    assert.strictEqual(kinds.filter((r) => r.skipped !== undefined && r.vacuous === undefined).length, 1)
  }, 90_000)

  it("gpusvm igt report --json: the same outcomes in the same order, and the same totals, with --workers 1 and 2", async () => {
    const [one, two] = await Promise.all([
      gpusvm(["igt", "report", "--filter", "once-malloc*", "--json", "--workers", "1"], 60_000),
      gpusvm(["igt", "report", "--filter", "once-malloc*", "--json", "--workers", "2"], 60_000)
    ])
    assert.strictEqual(one.status, 0, show(one))
    assert.strictEqual(two.status, 0, show(two))
    const a = lines(one.stdout)
    const b = lines(two.stdout)
    assert.strictEqual(a.length, 18, show(one))
    assert.deepStrictEqual(b.map(untimed), a.map(untimed))
    assert.deepStrictEqual(untimed(a[17]!), { total: 17, passed: 16, failed: 0, skipped: 0, vacuous: 1 })
    assert.strictEqual((JSON.parse(b[17]!) as { workers: number }).workers, 2)
  }, 90_000)

  it("--workers: a whole number from 1 to 64; absent, one per core (at least 1)", () => {
    assert.strictEqual(parseWorkers(Option.some("3")), 3)
    assert.isAtLeast(parseWorkers(Option.none()) as number, 1)
    for (const bad of ["0", "65", "many", "1.5", "-2", ""]) {
      assert.strictEqual(parseWorkers(Option.some(bad)), `--workers: expected a whole number from 1 to 64, got "${bad}"`)
    }
  })
})

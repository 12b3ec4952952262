/**
 * Barrier deadlocks end at once (issue #18's hangs; design.md §8 bounded
 * work): threads block only at barriers, so when every running thread waits at
 * one the runner reports violation `deadlock` naming each thread's step and
 * barrier, exit 1, in well under a second of work — and a deadlocked scenario
 * among others does not stop the others from reporting.
 */
import { assert, describe, expect, it } from "@effect/vitest"
import { gpusvm, show, tempDir } from "./support.ts"

const threads = (...xs: ReadonlyArray<ReadonlyArray<string>>) => ({ threads: xs.map((bs) => ({ steps: bs.map((name) => ({ op: "barrier", name })) })) })

describe.concurrent("gpusvm simulate: barrier deadlocks (spawned)", { timeout: 60_000 }, () => {
  const cases = [
    ["opposite-orders", threads(["x", "y"], ["y", "x"]), ["threads[0].steps[0] at barrier x", "threads[1].steps[0] at barrier y"]],
    ["twice-vs-once", threads(["x", "x"], ["x"]), ["threads[0].steps[1] at barrier x"]],
    ["three-cycle", threads(["p", "q"], ["q", "r"], ["r", "p"]), ["threads[0].steps[0] at barrier p", "threads[1].steps[0] at barrier q", "threads[2].steps[0] at barrier r"]]
  ] as const
  for (const [name, body, waits] of cases) {
    it(`${name}: exit 1 with violation deadlock naming every wait`, async () => {
      const t = tempDir()
      try {
        const file = t.write(`${name}.json`, { name, ...body })
        const r = await gpusvm(["simulate", file, "--json"])
        assert.strictEqual(r.status, 1, show(r))
        const result = JSON.parse(r.stdout) as { ok: boolean; violations: ReadonlyArray<{ invariant: string; detail: string }> }
        expect(result.ok).toBe(false)
        const v = result.violations.find((x) => x.invariant === "deadlock")
        assert.isDefined(v, show(r))
        for (const w of waits) expect(v!.detail).toContain(w)
        expect(r.ms).toBeLessThan(20_000)
      } finally {
        t.remove()
      }
    })
  }

  it("threads meeting at x, y, x again are no deadlock (released waiters are not counted), under simulate and under every interleaving", async () => {
    const t = tempDir()
    try {
      const three = t.write("chain3.json", { name: "chain3", ...threads(["x", "y", "x"], ["x", "y", "x"], ["y"]) })
      const r = await gpusvm(["simulate", three])
      assert.strictEqual(r.status, 0, show(r))
      const ok = t.write("chain-ok.json", { name: "chain-ok", ...threads(["x", "y", "x"], ["x", "y", "x"]) })
      const a = await gpusvm(["simulate", ok])
      assert.strictEqual(a.status, 0, show(a))
      const e = await gpusvm(["explore", ok, "--preemptions", "all"])
      assert.strictEqual(e.status, 0, show(e))
      expect(e.stdout).toContain("complete: every schedule")
    } finally {
      t.remove()
    }
  })

  it("a deadlocked scenario between passing ones: every scenario reports, the deadlocked one fails", async () => {
    const t = tempDir()
    try {
      const file = t.write("dl.json", { name: "dl", ...threads(["x", "y"], ["y", "x"]) })
      const r = await gpusvm(["simulate", "--json", "approx-once-malloc", file, "approx-once-malloc"])
      assert.strictEqual(r.status, 1, show(r))
      const lines = r.stdout.trim().split("\n").map((l) => JSON.parse(l) as { scenario: string; ok: boolean })
      expect(lines.map((l) => [l.scenario, l.ok])).toEqual([["approx-once-malloc", true], ["dl", false], ["approx-once-malloc", true]])
    } finally {
      t.remove()
    }
  })
})
